"""`TinyPolicy`: a small CPU policy that zooms and answers THROUGH TEXT, with exact log-probs.

Every action is two "tokens" of a small discrete vocabulary:

| token 1 (type)        | token 2                                           | action text                  |
|-----------------------|---------------------------------------------------|------------------------------|
| `0` = answer          | the option letter (A, B, ...)                     | `<answer>B</answer>`         |
| `k` = crop at scale k | a cell of an `H x W` grid over the current view   | `<crop>[x1, y1, x2, y2]</crop>` |

A crop at scale k centred on cell (i, j) is the box of `scales[k-1]` times the view's width and
height, centred on the cell's centre and slid inside the view; it is written in the env's
`coord_frame` (`info["coord_frame"]`, `info["view_size"]`, `info["view_box"]`) by `format_crop`,
so the env parses it back like any model's text.

Network (fully convolutional up to the heads; every input is rebuilt from the observation and
the info the policy saw, so log-probs recompute exactly):

* Fixed per-view features at the view's NATIVE resolution (no learning, cached per observation),
  pooled onto an `H x W` grid (`grid`): 16 narrowly hue-tuned chroma channels and the chroma
  magnitude of each cell's most saturated pixel (a thin saturated ring outline survives), and the
  energy of grey differences at offsets 1-2 px in 4 directions (average-pooled, log): the fine
  stripes, dots or checks inside a ring, legible only when the view shows it near full resolution.
* Where: the colour the question names ("What fills the red ring?" -> a one-hot over
  `COLOUR_WORDS`) gives learned weights over the colour channels (a direct, linear path), and the
  whole question (hashed bag of words) FiLM-modulates a small conv stack over the colour
  channels; their sum is a target map M (H, W). One row of weights per colour: only questions
  about that colour update it (a shared text embedding let always-present words chase the colour
  of the latest batch under Adam). The score of a crop at scale k centred on a cell is
  the log-mean-exp of M over the crop's footprint (a soft max filter) times a learned
  gain: choosing a region is a spatial softmax, far easier to learn than a flat softmax over
  region ids. Token 1 is "answer" (a logit from the answer head) or "crop at scale k" with
  P(crop) x P(k | crop), P(k | crop) from the log-sum-exp of scale k's scores plus a learned
  bias; token 2 is the softmax over the cells of the chosen scale.
  A saliency prior (`saliency_prior`) starts M as the chroma magnitude, so untrained crops land on
  saturated objects (any ring); which colour the question names is learned.
* How wide (`scale_head=True`): that log-sum-exp cannot tell a small target from a large one (a
  small crop on a large ring's outline scores as high as on a small ring, and a large ring
  offers more such positions), so the scale logits get a linear function of the target's
  apparent extent: the log of, for each scale, the most of softmax(M) (a distribution over
  cells) that one footprint of that scale holds (`extent_coverage`): about 1 at every scale for
  a ring of one cell, near 0 at the small scale for a ring wider than its footprint.
  Zero-initialised, so a new head changes no probability; checkpoints without it load with the
  head at zero.
* What: the texture energies pooled globally, under a centred window (a crop centred on the ring
  puts its content there) and under an attention on M, with the zoomed flag and the number of
  crops so far, feed the "answer now" logit and an answer vector whose dot product with each
  option's hashed-word embedding scores the options: the head reads the option TEXT, so option
  order does not matter.
* After `max_crops` crops in an episode the policy must answer (crop types masked out), so
  episodes end in an answer; before `min_crops` crops it must crop (the answer type masked out),
  so every episode's crop scale is a choice the policy made.

`act` samples with `torch.multinomial` on the global torch RNG (seed it with `torch.manual_seed`;
trainers checkpoint `torch.get_rng_state()`). `trajectory_logprobs` rebuilds every turn's input
from the stored observation and the info the policy saw (`Trajectory.info_before_turn`), so
it recomputes exactly the log-probs `act` returned (tested to < 1e-5).
"""  # noqa: E501 (table rows)

from __future__ import annotations

import hashlib
import math
import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from agents.algos.exploration import floor_mix
from agents.policies.base import Generation, ScaleBehaviour, Trajectory
from grounding_gym.actions import action_frame, format_answer, format_crop
from grounding_gym.geometry import Box, from_original, to_original
from grounding_gym.lru import LRU

__all__ = ["TinyPolicy", "hash_words", "parse_prompt"]

_WORD_RE = re.compile(r"[a-z0-9]+")
_OPTION_RE = re.compile(r"^\(([A-Z])\)\s*(.*)$")
_DECIMALS = {"view": 0, "original": 0, "norm1000": 1, "norm1": 4}


def hash_words(text: str, buckets: int) -> list[int]:
    """Stable bucket ids (crc32) of the lower-cased words of `text`; never empty.

    >>> hash_words("The red ring", 1000) == hash_words("the RED ring?", 1000)
    True
    """
    words = _WORD_RE.findall(text.lower()) or ["<empty>"]
    return [zlib.crc32(w.encode()) % buckets for w in words]


COLOUR_WORDS: tuple[str, ...] = (
    "red",
    "orange",
    "yellow",
    "green",
    "cyan",
    "blue",
    "purple",
    "magenta",
    "pink",
    "brown",
    "black",
    "white",
    "grey",
    "gray",
)
"""Basic colour terms the policy recognises in a question (the colour query)."""


def colour_query(question: str) -> np.ndarray:
    """One-hot (multi-hot) float32 `(len(COLOUR_WORDS),)` of the colour words in `question`.

    >>> colour_query("What fills the red ring?")[COLOUR_WORDS.index("red")]
    1.0
    """
    words = set(_WORD_RE.findall(question.lower()))
    return np.array([w in words for w in COLOUR_WORDS], dtype=np.float32)


def parse_prompt(text: str) -> tuple[str, list[str]]:
    """(question, option texts) of a GroundedVQA first prompt ("Question: ...", "(A) ...").

    Falls back to the whole text as the question and no options.
    """
    question, options = "", []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("Question:"):
            question = line[len("Question:") :].strip()
        elif (match := _OPTION_RE.match(line)) is not None:
            options.append(match.group(2))
    return (question or text), options


def _first_prompt(observation: dict[str, Any], info: dict[str, Any]) -> str:
    """Text of the first user turn: from `info["messages"]` when present, else the dialogue."""
    for message in info.get("messages", ()):
        if message.get("role") == "user":
            return " ".join(
                c.get("text", "") for c in message["content"] if c.get("type") == "text"
            )
    return str(observation.get("dialogue", ""))


@dataclass
class _Batch:
    """Network inputs of N turns."""

    colour: torch.Tensor  # (N, N_HUES + 1, H, W) hue channels and |chroma| (no gradient)
    texture: torch.Tensor  # (N, N_TEXTURE, H, W) log texture energy (no gradient)
    question: list[list[int]]  # hashed words per turn
    colour_query: torch.Tensor  # (N, len(COLOUR_WORDS)) one-hot of the colour words asked about
    options: list[list[list[int]]]  # hashed words per option per turn
    n_options: torch.Tensor  # (N,) int64
    n_crops: torch.Tensor  # (N,) float32
    zoomed: torch.Tensor  # (N,) float32 in {0, 1}


class TinyPolicy(nn.Module):
    """A small conv policy acting through crop/answer text (see the module docstring).

    Args:
        grid: side of the target map and of the cell grid crops are centred on.
        scales: crop sizes as fractions of the current view's width/height, largest first.
        max_options: most answer options supported (letters A...).
        max_crops: crops per episode before the policy must answer (>= 0).
        min_crops: crops per episode before the policy may answer (0 <= min_crops <= max_crops).
        channels: width of the learned conv stack.
        text_buckets: hashed-word vocabulary size.
        answer_dim: size of the answer/option embedding.
        target_scale: fixed multiplier of the target map (a logit scale: with Adam's ~lr-sized
            steps, a sharp spatial softmax is reached in few updates).
        saliency_prior: initial weight of the chroma-magnitude channel in the target map, for
            every question: untrained crops favour saturated (salient) objects; which colour the
            question names is learned. 0 starts from uniform crops.
        hue_gain: fixed multiplier of the colour-query -> colour-channel weights (as
            `target_scale`).
        answer_scale: fixed multiplier of the option logits (as `target_scale`).
        scale_head: add the target-extent term to P(scale | crop) (see the module docstring).
    """

    def __init__(
        self,
        *,
        grid: int = 48,
        scales: Sequence[float] = (0.35, 0.2, 0.12, 0.07),
        max_options: int = 5,
        max_crops: int = 1,
        min_crops: int = 0,
        channels: int = 16,
        text_buckets: int = 512,
        answer_dim: int = 16,
        target_scale: float = 10.0,
        saliency_prior: float = 3.0,
        hue_gain: float = 20.0,
        answer_scale: float = 4.0,
        scale_head: bool = False,
    ):
        super().__init__()
        if grid < 4:
            raise ValueError(f"grid must be >= 4, got {grid}")
        if not scales or not all(0.0 < s <= 1.0 for s in scales):
            raise ValueError(f"scales must be fractions in (0, 1], got {tuple(scales)}")
        if max_crops < 0 or max_options < 2:
            raise ValueError(
                f"need max_crops >= 0 and max_options >= 2, got {max_crops}, {max_options}"
            )
        if not 0 <= min_crops <= max_crops:
            raise ValueError(
                f"need 0 <= min_crops <= max_crops, got min_crops={min_crops}, "
                f"max_crops={max_crops}"
            )
        self.grid = grid
        self.scales = tuple(float(s) for s in scales)
        self.max_options, self.max_crops, self.min_crops = max_options, max_crops, min_crops
        self.text_buckets = text_buckets
        self.target_scale = float(target_scale)
        self.saliency_prior = float(saliency_prior)
        self.hue_gain = float(hue_gain)
        self.answer_scale = float(answer_scale)
        c = channels
        # ---- where: question -> hue weights (direct) + FiLM'd conv stack -> target map M
        self.question_emb = nn.EmbeddingBag(text_buckets, 32, mode="mean")
        # direct path: the colour the question names (one-hot) -> weights on the colour channels
        self.colour_hue = nn.Parameter(torch.zeros(len(COLOUR_WORDS), N_HUES + 1))
        prior = torch.zeros(N_HUES + 1)
        prior[N_HUES] = self.saliency_prior  # fixed: untrained crops land on saturated objects
        self.register_buffer("saliency", prior, persistent=False)
        self.trunk = nn.Sequential(
            nn.Conv2d(N_HUES + 1, c, 1),
            nn.ReLU(),
            nn.Conv2d(c, c, 3, padding=1),
            nn.ReLU(),
        )
        self.film = nn.Linear(32, 2 * c)
        self.target = nn.Conv2d(c, 1, 1)
        self.region_gain = nn.Parameter(torch.ones(len(self.scales)))
        self.region_bias = nn.Parameter(torch.zeros(len(self.scales)))
        # ---- how wide: the target's apparent extent at each scale -> P(scale | crop)
        self.scale_head = bool(scale_head)
        self.scale_extent = (
            nn.Linear(len(self.scales), len(self.scales), bias=False) if scale_head else None
        )
        if self.scale_extent is not None:
            nn.init.zeros_(self.scale_extent.weight)
            self.register_load_state_dict_pre_hook(self._fill_scale_head)
        # ---- what: texture energy pooled 3 ways + context -> answer-now logit, answer vector
        self.register_buffer("centre_window", _centre_window(grid), persistent=False)
        n_in = 3 * N_TEXTURE + 3
        self.answer_norm = nn.LayerNorm(3 * N_TEXTURE, elementwise_affine=False)
        self.answer_linear = nn.Linear(n_in, answer_dim + 1)
        self.answer_mlp = nn.Sequential(
            nn.Linear(n_in, 32), nn.ReLU(), nn.Linear(32, answer_dim + 1)
        )
        self.option_emb = nn.EmbeddingBag(text_buckets, answer_dim, mode="mean")
        self._init_weights()
        self._input_cache = LRU(512)  # (shape, sha1 of the pixels) -> view_features on the device

    # ------------------------------------------------------------------ vocabulary

    @property
    def num_cells(self) -> int:
        return self.grid * self.grid

    @property
    def vocab_size(self) -> int:
        """Token ids: 0 answer, 1..K scales, then cells, then letters."""
        return 1 + len(self.scales) + self.num_cells + self.max_options

    def _cell_token(self, cell: int) -> int:
        return 1 + len(self.scales) + cell

    def _letter_token(self, letter: int) -> int:
        return 1 + len(self.scales) + self.num_cells + letter

    # ------------------------------------------------------------------ network

    def _init_weights(self) -> None:
        # small (not zero: every parameter gets a gradient)
        for layer in (self.film, self.target):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

        for last in (self.answer_mlp[-1], self.answer_linear):
            nn.init.normal_(last.weight, std=0.01)
            nn.init.zeros_(last.bias)
        with torch.no_grad():
            self.answer_linear.bias[0] = -1.5  # P(answer now) ~ 0.18 at first: explore crops
            # The letter logit is bilinear (answer vector . option vector): with both factors
            # near zero it starts at a saddle that policy-gradient updates leave only slowly.
            # A fixed-scale random projection of the features and zero option vectors start
            # it where the option vectors alone get a gradient (measured: a bandit on crop
            # views reaches ~80% in 200 updates from here, ~40% from the small init).
            nn.init.normal_(self.answer_linear.weight[1:], std=0.3)
            nn.init.zeros_(self.option_emb.weight)

    def _fill_scale_head(self, module: nn.Module, state_dict: dict, prefix: str, *_: Any) -> None:
        """A state dict from before the scale head (e.g. a warm-started reader) loads with the
        head at its zero init: no probability changes."""
        for name, value in self.scale_extent.state_dict().items():  # type: ignore[union-attr]
            state_dict.setdefault(f"{prefix}scale_extent.{name}", torch.zeros_like(value))

    def _footprints(self) -> list[int]:
        """Odd side, in cells, of each scale's crop footprint on the grid."""
        return [2 * round(scale * self.grid / 2) + 1 for scale in self.scales]

    def extent_coverage(self, target: torch.Tensor) -> torch.Tensor:
        """(N, K), no gradient: for each scale, the largest share of softmax(M) over the grid's
        cells that one footprint of that scale holds (footprints cut at the grid's border),
        in [EXTENT_FLOOR, 1]. The head reads its log: a linear map of it compares ratios.

        Args:
            target: (N, 1, H, W) target map M (logits over cells).
        """
        with torch.no_grad():
            p = F.softmax(target.flatten(1), dim=-1).view_as(target)
            out = []
            for size in self._footprints():
                # a box sum, separable: the zero-padded box mean times the box's area
                rows = F.avg_pool2d(p, (1, size), stride=1, padding=(0, size // 2))
                held = F.avg_pool2d(rows, (size, 1), stride=1, padding=(size // 2, 0))
                out.append(held.flatten(1).amax(dim=1) * size * size)
            return torch.stack(out, dim=1).clamp_(EXTENT_FLOOR, 1.0)

    def _region_scores(self, target: torch.Tensor) -> torch.Tensor:
        """(N, K, H, W): for a crop of each scale centred on each cell, the log-mean-exp of the
        target map over the crop's footprint, times a learned per-scale gain. A soft max: a small
        ring (a peak of a few cells) still dominates, and a crop covering more of a ring's
        outline (centred on it) scores higher."""
        top = target.amax(dim=(2, 3), keepdim=True).detach()  # stability only: cancels exactly
        weights = torch.exp(target - top)
        scores = []
        for k, size in enumerate(self._footprints()):  # odd, ~ the crop's side in cells
            # a box mean is separable (so is its count without padding): rows, then columns
            rows = F.avg_pool2d(
                weights, (1, size), stride=1, padding=(0, size // 2), count_include_pad=False
            )
            pooled = F.avg_pool2d(
                rows, (size, 1), stride=1, padding=(size // 2, 0), count_include_pad=False
            )
            scores.append((torch.log(pooled.clamp_min(1e-30)) + top)[:, 0] * self.region_gain[k])
        return torch.stack(scores, dim=1)

    def target_map(self, batch: _Batch) -> torch.Tensor:
        """(N, 1, H, W) the target map M: where the question's target is (logits over cells)."""
        q = self.question_emb(*_bag(batch.question, batch.colour.device))  # (N, 32)
        gamma, beta = self.film(q).chunk(2, dim=-1)
        feats = self.trunk(batch.colour)  # (N, C, H, W)
        feats = F.relu(feats * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
        hue_weights = self.hue_gain * batch.colour_query @ self.colour_hue + self.saliency
        direct = torch.einsum("nk,nkhw->nhw", hue_weights, batch.colour)[:, None]
        return self.target_scale * (direct + self.target(feats))

    def _scale_logp(self, target: torch.Tensor, region: torch.Tensor | None = None) -> torch.Tensor:
        """(N, K) log P(scale | crop) from the target map (and its `_region_scores`, flattened
        to (N, K, H*W), when already computed)."""
        if region is None:
            region = self._region_scores(target).flatten(2)
        scale_logit = torch.logsumexp(region, dim=-1) + self.region_bias
        if self.scale_extent is not None:
            scale_logit = scale_logit + self.scale_extent(self.extent_coverage(target).log())
        return F.log_softmax(scale_logit, dim=-1)  # P(scale | crop): M's magnitude cancels

    def _forward(self, batch: _Batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Log-probs of token 1 (N, 1 + K), of the cell given the scale (N, K, H*W) and of the
        letter given "answer" (N, max_options), with the masks applied."""
        n, device = batch.colour.shape[0], batch.colour.device
        target = self.target_map(batch)
        region = self._region_scores(target).flatten(2)  # (N, K, H*W)
        cell_logp = F.log_softmax(region, dim=-1)
        scale_logit = self._scale_logp(target, region)

        # what: texture energy pooled globally, at the centre and under attention on M
        texture = batch.texture  # (N, N_TEXTURE, H, W)
        attention = F.softmax(
            F.avg_pool2d(target, 5, 1, 2, count_include_pad=False).flatten(1), dim=-1
        )
        pooled = [
            texture.mean(dim=(2, 3)),
            torch.einsum("nchw,hw->nc", texture, self.centre_window),
            torch.einsum("nchw,nhw->nc", texture, attention.view(n, self.grid, self.grid)),
        ]
        peak = target.flatten(1).amax(dim=1) / self.target_scale
        context = torch.stack([batch.zoomed, batch.n_crops, peak], dim=1)
        features = torch.cat([self.answer_norm(torch.cat(pooled, dim=1)), context], dim=1)
        hidden = self.answer_linear(features) + self.answer_mlp(features)
        answer_logit, answer_vec = hidden[:, 0], hidden[:, 1:]

        option_vecs = self._option_vectors(batch, device)  # (N, max_options, D)
        letter_logit = self.answer_scale * torch.einsum("nd,nod->no", answer_vec, option_vecs)
        letters = torch.arange(self.max_options, device=device)
        letter_logit = letter_logit.masked_fill(
            letters[None] >= batch.n_options[:, None], -math.inf
        )
        letter_logp = F.log_softmax(letter_logit, dim=-1)

        must_answer = batch.n_crops >= self.max_crops
        scale_logit = scale_logit.masked_fill(must_answer[:, None], -math.inf)
        answer_logit = answer_logit.masked_fill(batch.n_crops < self.min_crops, -math.inf)
        type_logp = F.log_softmax(torch.cat([answer_logit[:, None], scale_logit], dim=1), dim=-1)
        return type_logp, cell_logp, letter_logp

    def _option_vectors(self, batch: _Batch, device: torch.device) -> torch.Tensor:
        flat = [opt for opts in batch.options for opt in opts]
        out = torch.zeros(
            len(batch.options), self.max_options, self.option_emb.embedding_dim, device=device
        )
        if flat:
            vecs = self.option_emb(*_bag(flat, device))
            rows = [i for i, opts in enumerate(batch.options) for _ in opts]
            cols = [j for opts in batch.options for j in range(len(opts))]
            out = out.index_put((torch.tensor(rows), torch.tensor(cols)), vecs)
        return out

    # ------------------------------------------------------------------ inputs

    def _view_inputs(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Fixed features of one view (`view_features`), cached by pixel content: the update
        epochs reuse the act-time inputs, and the G rollouts of a question share their first
        view."""
        array = np.ascontiguousarray(image, dtype=np.uint8)
        key = (
            array.shape,
            hashlib.sha1(memoryview(array).cast("B"), usedforsecurity=False).digest(),
        )

        def features() -> tuple[torch.Tensor, torch.Tensor]:
            colour, texture = view_features(array, self.grid)
            return colour.to(self.region_bias.device), texture.to(self.region_bias.device)

        return self._input_cache.get(key, features)

    def _batch(
        self,
        observations: Sequence[dict[str, Any]],
        infos: Sequence[dict[str, Any]],
        prompts: Sequence[str],
    ) -> _Batch:
        questions, queries, options, n_options, n_crops, zoomed = [], [], [], [], [], []
        for info, prompt in zip(infos, prompts, strict=True):
            question, opts = parse_prompt(prompt)
            if len(opts) > self.max_options:
                raise ValueError(f"{len(opts)} options but max_options={self.max_options}")
            questions.append(hash_words(question, self.text_buckets))
            queries.append(colour_query(question))
            options.append([hash_words(o, self.text_buckets) for o in opts])
            n_options.append(len(opts) if opts else self.max_options)
            n_crops.append(float(len(info.get("crops", ()))))
            full = (0.0, 0.0, *map(float, info.get("image_size", (0, 0))))
            zoomed.append(float(tuple(info.get("view_box", full)) != full))
        device = self.region_bias.device
        views = [self._view_inputs(o["image"]) for o in observations]
        return _Batch(
            colour=torch.stack([v[0] for v in views]),
            texture=torch.stack([v[1] for v in views]),
            question=questions,
            colour_query=torch.tensor(np.array(queries), device=device),
            options=options,
            n_options=torch.tensor(n_options, device=device),
            n_crops=torch.tensor(n_crops, device=device),
            zoomed=torch.tensor(zoomed, device=device),
        )

    # ------------------------------------------------------------------ Policy protocol

    @torch.no_grad()
    def act(
        self,
        observations: Sequence[dict[str, Any]],
        infos: Sequence[dict[str, Any]],
        *,
        greedy: bool = False,
        scale_behaviour: ScaleBehaviour | None = None,
    ) -> list[Generation]:
        """One action per env: sample (or argmax) token 1, then token 2 given token 1.

        `scale_behaviour` (sampling only) draws token 1 from a behaviour distribution mu
        (`_behaviour_type_logp`) and records mu's log-probs in each generation's
        `behaviour_logprobs`; `logprobs` stay pi's."""
        if scale_behaviour is not None and greedy:
            raise ValueError("scale_behaviour is a sampling distribution; greedy acts take none")
        prompts = [_first_prompt(o, i) for o, i in zip(observations, infos, strict=True)]
        batch = self._batch(observations, infos, prompts)
        type_logp, cell_logp, letter_logp = self._forward(batch)
        pick = _argmax if greedy else _sample
        behaviour_logp = None
        if scale_behaviour is None:
            kinds = pick(type_logp)
        else:
            behaviour_logp = self._behaviour_type_logp(type_logp, scale_behaviour)
            forced = scale_behaviour.forced
            kinds = _sample(behaviour_logp) if forced is None else torch.tensor(forced) + 1
        out = []
        for n, kind in enumerate(kinds.tolist()):
            if kind == 0:
                letter = int(pick(letter_logp[n : n + 1])[0])
                token, lp2 = self._letter_token(letter), letter_logp[n, letter]
                text = format_answer(chr(ord("A") + letter))
            else:
                cell = int(pick(cell_logp[n, kind - 1][None])[0])
                token, lp2 = self._cell_token(cell), cell_logp[n, kind - 1, cell]
                text = self.crop_text(kind - 1, cell, infos[n], observations[n])
            logprobs = (float(type_logp[n, kind]), float(lp2))
            behaviour = (
                None if behaviour_logp is None else (float(behaviour_logp[n, kind]), logprobs[1])
            )
            out.append(Generation(text, (kind, token), logprobs, behaviour))
        return out

    def _behaviour_type_logp(
        self, type_logp: torch.Tensor, behaviour: ScaleBehaviour
    ) -> torch.Tensor:
        """(N, 1 + K) log mu of token 1 (answer, crop at scale k) under `behaviour`.

        Floor: mu(answer) = pi(answer), mu(crop at k) = pi(crop) * floor_mix(pi(k | crop)).
        Forced: log(1 / K) on every scale (the stratified design's marginal) and -inf on
        "answer"; an env whose policy may not crop now (max_crops reached) cannot be forced.
        """
        n, k = type_logp.shape[0], len(self.scales)
        if behaviour.forced is not None:
            forced = list(behaviour.forced)
            if len(forced) != n or not all(0 <= f < k for f in forced):
                raise ValueError(
                    f"forced scales {forced} must give one index in [0, {k}) per env ({n} envs)"
                )
            blocked = [i for i in range(n) if not torch.isfinite(type_logp[i, 1:]).any()]
            if blocked:
                raise ValueError(
                    f"envs {blocked} cannot be forced to crop: the policy must answer there "
                    f"(max_crops={self.max_crops} reached)"
                )
            out = torch.full_like(type_logp, -math.log(k))
            out[:, 0] = -math.inf
            return out
        probs = type_logp.exp()
        crop = probs[:, 1:].sum(dim=1, keepdim=True)  # (N, 1) pi(crop); 0 where it must answer
        given = probs[:, 1:] / crop.clamp_min(1e-30)
        mixed = torch.where(crop > 0, crop * floor_mix(given, behaviour.floor), probs[:, 1:])
        return torch.cat([probs[:, :1], mixed], dim=1).log()

    def trajectory_logprobs(
        self, trajectories: Sequence[Trajectory]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(logp, mask), both (B, T): the log-probs of each trajectory's tokens, in order, with
        gradients; T = the most tokens of any trajectory; mask 1 on policy tokens, 0 on padding."""
        observations, infos, prompts, tokens, where = [], [], [], [], []
        for b, traj in enumerate(trajectories):
            prompt = str(traj.turns[0].observation.get("dialogue", "")) if traj.turns else ""
            for k, turn in enumerate(traj.turns):
                observations.append(turn.observation)
                infos.append(traj.info_before_turn(k))
                prompts.append(prompt)
                tokens.append(turn.generation.token_ids)
                where.append((b, 2 * k))
        length = max((t.num_policy_tokens for t in trajectories), default=0)
        logp = torch.zeros(len(trajectories), length, device=self.region_bias.device)
        mask = torch.zeros_like(logp)
        if not observations:
            return logp, mask
        type_logp, cell_logp, letter_logp = self._forward(self._batch(observations, infos, prompts))
        rows = torch.arange(len(tokens))
        kind = torch.tensor([t[0] for t in tokens])
        second = torch.tensor([t[1] for t in tokens])
        lp1 = type_logp[rows, kind]
        is_answer = kind == 0
        cell = (second - self._cell_token(0)).clamp(0, self.num_cells - 1)
        letter = (second - self._letter_token(0)).clamp(0, self.max_options - 1)
        lp_cell = cell_logp[rows, (kind - 1).clamp(min=0), cell]
        lp2 = torch.where(is_answer, letter_logp[rows, letter], lp_cell)
        b_idx = torch.tensor([w[0] for w in where])
        t_idx = torch.tensor([w[1] for w in where])
        logp = logp.index_put((b_idx, t_idx), lp1).index_put((b_idx, t_idx + 1), lp2)
        mask = mask.index_put((b_idx, t_idx), torch.ones_like(lp1)).index_put(
            (b_idx, t_idx + 1), torch.ones_like(lp2)
        )
        return logp, mask

    # ------------------------------------------------------------------ action text

    def crop_box_view(self, scale_index: int, cell: int, view_size: tuple[int, int]) -> Box:
        """The crop of `scales[scale_index]` centred on grid `cell`, view px, inside the view."""
        view_w, view_h = (float(v) for v in view_size)
        i, j = divmod(cell, self.grid)
        w, h = self.scales[scale_index] * view_w, self.scales[scale_index] * view_h
        cx, cy = (j + 0.5) * view_w / self.grid, (i + 0.5) * view_h / self.grid
        x1 = min(max(cx - w / 2, 0.0), view_w - w)
        y1 = min(max(cy - h / 2, 0.0), view_h - h)
        return Box(x1, y1, x1 + w, y1 + h)

    def crop_text(
        self, scale_index: int, cell: int, info: dict[str, Any], observation: dict[str, Any]
    ) -> str:
        """`<crop>[...]</crop>` for a scale and cell, in the env's `coord_frame`."""
        image = observation["image"]
        view_size = tuple(info.get("view_size") or (image.shape[1], image.shape[0]))
        frame = info.get("coord_frame", "view")
        box = self.crop_box_view(scale_index, cell, view_size)
        reference = info.get("action_frame_box")  # None: actions refer to the current view
        if frame != "view" or (
            reference is not None and tuple(reference) != tuple(info["view_box"])
        ):
            view_box = Box(*info["view_box"])  # the view's px -> the frame actions refer to
            box = from_original(
                to_original(box, "view", view_box, view_size), frame, *action_frame(info)
            )
        return format_crop(box.as_tuple(), decimals=_DECIMALS.get(frame, 4))


EXTENT_FLOOR = 1e-4
"""Smallest `extent_coverage` (its log feeds the scale head)."""

N_HUES = 16
"""Hue-tuned chroma channels, 22.5 degrees apart."""

HUE_SHARPNESS = 20.0
"""Von Mises concentration of the hue channels: half height at ~15 degrees off their hue, so
neighbouring named colours (red / orange, 32 degrees apart) fall in different channels."""

_TEXTURE_OFFSETS = ((1, 0), (0, 1), (1, 1), (1, -1), (2, 0), (0, 2), (2, 2), (2, -2))
N_TEXTURE = len(_TEXTURE_OFFSETS)


@torch.no_grad()
def view_features(image: np.ndarray, grid: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Fixed features of a view at its native resolution, pooled onto a `grid` x `grid` map.

    Cells follow `adaptive_*_pool2d`. Small tensor work: with several torch threads on a busy
    CPU, thread hand-offs dominate, so trainers on small CPUs set `torch_threads=1`.

    Args:
        image: uint8 (h, w, 3) view, any size.
        grid: output side.

    Returns:
        colour: float32 (N_HUES + 1, grid, grid): for each cell's most saturated pixel with
            chroma c (opponent plane a = R - (G + B) / 2, b = (G - B) sqrt(3) / 2, RGB in [0, 1])
            at hue angle t: `|c| exp(HUE_SHARPNESS (cos(t - t_k) - 1))` for N_HUES hues t_k,
            and |c|: a thin saturated ring outline survives the pooling.
        texture: float32 (N_TEXTURE, grid, grid): log(1 + 100 * mean over each cell of the squared
            grey difference at each offset of `_TEXTURE_OFFSETS` (1-2 px, four directions)).
    """
    x = torch.from_numpy(np.array(image, dtype=np.uint8)).permute(2, 0, 1).float().mul_(1.0 / 255.0)
    r, g, b = x[0], x[1], x[2]
    chroma = torch.stack([r - 0.5 * (g + b), (g - b) * (math.sqrt(3.0) / 2.0)])  # (2, h, w)
    magnitude = (chroma[0] ** 2 + chroma[1] ** 2).sqrt()
    peak, index = F.adaptive_max_pool2d(magnitude[None, None], grid, return_indices=True)
    peak_chroma = chroma.flatten(1)[:, index.flatten()]  # (2, grid * grid): each cell's peak pixel
    cosine = (_HUE_DIRECTIONS @ peak_chroma) / peak.flatten().clamp_min(1e-6)  # (N_HUES, grid^2)
    hues = (peak.flatten() * torch.exp(HUE_SHARPNESS * (cosine - 1.0))).view(N_HUES, grid, grid)
    colour = torch.cat([hues, peak[0]])

    grey = (r + g + b) * (1.0 / 3.0)
    h, w = grey.shape
    padded = F.pad(grey[None, None], (2, 2, 2, 2), mode="replicate")[0, 0]
    energies = torch.stack(
        [padded[2 + dy : 2 + dy + h, 2 + dx : 2 + dx + w] - grey for dx, dy in _TEXTURE_OFFSETS]
    ).square_()
    texture = torch.log1p(100.0 * F.adaptive_avg_pool2d(energies[None], grid)[0])
    return colour.contiguous(), texture.contiguous()


_HUE_DIRECTIONS = torch.stack(
    [
        torch.cos(torch.arange(N_HUES) * 2 * math.pi / N_HUES),
        torch.sin(torch.arange(N_HUES) * 2 * math.pi / N_HUES),
    ],
    dim=1,
).float()  # (N_HUES, 2)


def _centre_window(grid: int, sigma: float = 0.18) -> torch.Tensor:
    """Gaussian weights (grid, grid) summing to 1, centred, std `sigma` of the side."""
    c = (torch.arange(grid, dtype=torch.float32) + 0.5) / grid - 0.5
    w = torch.exp(-(c[None] ** 2 + c[:, None] ** 2) / (2 * sigma**2))
    return w / w.sum()


def _bag(
    token_lists: Sequence[Sequence[int]], device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(flat ids, offsets) for `nn.EmbeddingBag`."""
    lengths = [len(t) for t in token_lists]
    flat = torch.tensor([i for t in token_lists for i in t], dtype=torch.long, device=device)
    offsets = torch.tensor([0, *np.cumsum(lengths)[:-1].tolist()], dtype=torch.long, device=device)
    return flat, offsets


def _sample(logp: torch.Tensor) -> torch.Tensor:
    return torch.multinomial(logp.exp(), 1)[:, 0]


def _argmax(logp: torch.Tensor) -> torch.Tensor:
    return logp.argmax(dim=-1)
