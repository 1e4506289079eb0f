"""The synthetic datasets: `SyntheticHR` lays out a scene per index (no pixels) and returns a
`Sample` whose image is a lazy `render.SyntheticImage`; `SyntheticRef` asks for the target ring
as a referring expression. Registers `synthetic-hr`, `synthetic` and `synthetic-ref`.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from grounding_gym.data.registry import register_dataset
from grounding_gym.data.sample import Sample
from grounding_gym.data.synthetic.render import (
    CONTENT_KINDS,
    DIGITS,
    FAMILIES,
    FIT_FRACTION,
    LABEL_LETTERS,
    MIN_RING_PX,
    PALETTE,
    PATTERNS,
    ContentKind,
    Family,
    Ring,
    SyntheticImage,
    _hue,
    _label_layout,
    _lerp,
    content_period,
)
from grounding_gym.geometry import Box
from grounding_gym.scale import HR_BIN_EDGES
from grounding_gym.validation import did_you_mean


def _check_range(
    name: str, value: Any, lo: float, hi: float, kind: type = float
) -> tuple[Any, Any]:
    """Validate a scalar or (min, max) pair within [lo, hi]; returns (min, max)."""
    pair = (value, value) if isinstance(value, numbers.Real) else tuple(value)
    if len(pair) != 2 or not all(isinstance(v, numbers.Real) for v in pair):
        raise ValueError(f"{name} must be a number or a (min, max) pair, got {value!r}")
    a, b = kind(pair[0]), kind(pair[1])
    if not (lo <= a <= b <= hi):
        raise ValueError(f"{name}={value!r} must satisfy {lo} <= min <= max <= {hi}")
    return a, b


def _check_ranges(name: str, value: Any, lo: float, hi: float) -> tuple[tuple[float, float], ...]:
    """One `(min, max)` range (or a number), or a non-empty list of them; each within [lo, hi]."""
    if isinstance(value, numbers.Real) or (
        isinstance(value, Sequence)
        and len(value) == 2
        and all(isinstance(v, numbers.Real) for v in value)
    ):
        return (_check_range(name, value, lo, hi),)
    if not isinstance(value, Sequence) or isinstance(value, str) or not value:
        raise ValueError(
            f"{name} must be a number, a (min, max) pair or a list of pairs, got {value!r}"
        )
    return tuple(_check_range(f"{name}[{k}]", v, lo, hi) for k, v in enumerate(value))


def _check_mix(weights: Sequence[float] | None, groups: int) -> tuple[float, ...]:
    """Normalised mixture weights, one per target group (equal when None)."""
    if weights is None:
        return tuple(1.0 / groups for _ in range(groups))
    values = tuple(float(w) for w in weights)
    if (
        len(values) != groups
        or not all(math.isfinite(w) and w >= 0 for w in values)
        or sum(values) <= 0
    ):
        raise ValueError(
            f"target_mix must hold {groups} non-negative weights (one per target_rel_area range), "
            f"got {weights!r}"
        )
    return tuple(w / sum(values) for w in values)


_GOLDEN = (math.sqrt(5.0) - 1.0) / 2.0


def target_group(index: int, seed: int, mix: Sequence[float]) -> int:
    """Mixture group of sample `index`: a golden-ratio (low-discrepancy) sequence against the
    cumulative weights, shifted by the seed. Every window of n consecutive indices holds
    `n * mix[k]` samples of group k to within one or two.

    >>> [target_group(i, 0, (0.5, 0.5)) for i in range(6)]
    [0, 1, 0, 1, 0, 0]
    """
    position = (index * _GOLDEN + seed * 0.1234567) % 1.0
    return min(int(np.searchsorted(np.cumsum(mix), position, side="right")), len(mix) - 1)


def _check_names(name: str, values: Iterable[str], allowed: tuple[str, ...]) -> tuple[str, ...]:
    values = (values,) if isinstance(values, str) else tuple(values)
    if not values:
        raise ValueError(f"{name} must name at least one of {allowed}")
    for v in values:
        if v not in allowed:
            suggestion = did_you_mean(v, allowed)
            raise ValueError(f"{name} contains {v!r}; allowed: {allowed}.{suggestion}")
    return values


class SyntheticHR(Sequence[Sample]):
    """Procedural high-resolution VQA samples with a ring target (see the module docstring).

    `self[i]` depends on `(seed, i)` alone and renders no pixels; `Sample.image` is a
    `SyntheticImage` that draws the image on demand. Each sample has 4 options (the content
    classes; the answer letter is uniform), `gt_boxes` = the target ring's tight box (original
    px), `category` = family, `image_size`, and `metadata`:

    | key | value |
    |-----|-------|
    | `family`, `content_kind`, `difficulty` | as drawn |
    | `target_rel_area` | gt box area / image area (the realised value) |
    | `attributes` | `{"color": palette name, "content": correct option, "label": str or None}` |
    | `referring_expression` | "the red ring filled with dots" / "the ring labelled K7" |
    | `num_distractors` | rings placed: `read` other-colour, `search` same-colour |
    | `distractor_boxes` | every other ring's box, original px (none overlaps the target) |
    | `label_box` | the target's label plate (`search`), original px, else None |

    Args:
        num_samples: length of the dataset.
        seed: non-negative int; the same seed gives identical samples and pixels.
        image_size: `(min, max)` px for each side, drawn independently (an int: square), >= 64.
            The long side is shortened when a large target would not fit (`FIT_FRACTION`).
        families: question families to draw from, uniformly: "read", "search".
        target_rel_area: `(min, max)` of the target box's area / image area, log-uniform, within
            (0, 0.4]. The realised value (integer px: within ~5 % of the draw, and inside the
            range whenever a whole-pixel ring allows) is in `metadata["target_rel_area"]`.
            A list of such ranges makes a mixture of target scales: sample `i` draws from range
            `metadata["target_group"]`, chosen by `target_mix`.
        target_mix: weights of the ranges of a mixture `target_rel_area` (default: equal). The
            group of sample `i` follows a golden-ratio sequence in `i`, not the RNG, so every
            window of n consecutive indices holds each group's share to within one sample
            (a skewed training mix and an exactly balanced held-out set from one generator).
        coarse_content: `(min_rel_area, cycles)`: in samples whose target covers at least
            `min_rel_area` of the image, every ring's pattern has only `cycles` periods across
            its inside (instead of `24 + 8 * difficulty`), so a crop much smaller than the ring
            sees at most a period of it: a fragment that cannot tell stripes from a checkerboard.
            None (default): every pattern is fine. The target's period is in
            `metadata["content_period"]`.
        difficulty: in [0, 1]; finer, fainter content; smaller labels and more rings in `search`.
        num_distractors: other rings: `read` other-colour rings (default `2 + round(4 * d)`),
            `search` same-colour labelled rings (default `2 + round(6 * d)`, plus 2 labelled rings
            of other colours). Rings that do not fit are dropped; `metadata["num_distractors"]`
            has the count placed.
        content_kinds: content kinds to draw from, uniformly: "pattern", "digit".
        id_prefix: ids are `f"{id_prefix}-{seed}-{i}"`.

    Raises:
        ValueError: an argument is out of range (the message names it and the allowed values).
    """

    def __init__(
        self,
        num_samples: int = 1000,
        seed: int = 0,
        image_size: int | tuple[int, int] = (2048, 8192),
        families: Sequence[Family] = ("read", "search"),
        target_rel_area: float | tuple[float, float] | Sequence[tuple[float, float]] = (1e-4, 0.3),
        difficulty: float = 0.5,
        num_distractors: int | None = None,
        content_kinds: Sequence[ContentKind] = ("pattern", "digit"),
        id_prefix: str = "synthetic-hr",
        target_mix: Sequence[float] | None = None,
        coarse_content: tuple[float, float] | None = None,
    ):
        if not isinstance(num_samples, (int, np.integer)) or num_samples < 0:
            raise ValueError(f"num_samples must be an int >= 0, got {num_samples!r}")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        if not 0.0 <= float(difficulty) <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {difficulty!r}")
        if num_distractors is not None and (
            not isinstance(num_distractors, int) or num_distractors < 0
        ):
            raise ValueError(
                f"num_distractors must be None or an int >= 0, got {num_distractors!r}"
            )
        self.num_samples = int(num_samples)
        self.seed = int(seed)
        self.image_size: tuple[int, int] = _check_range("image_size", image_size, 64, 65536, int)
        self.target_groups: tuple[tuple[float, float], ...] = _check_ranges(
            "target_rel_area", target_rel_area, 1e-9, 0.4
        )
        self.target_rel_area = (
            min(lo for lo, _ in self.target_groups),
            max(hi for _, hi in self.target_groups),
        )
        self.target_mix = _check_mix(target_mix, len(self.target_groups))
        if coarse_content is not None:
            threshold, cycles = _check_range("coarse_content", coarse_content, 0.0, math.inf)
            if not (0.0 < threshold <= 0.4 and 1.0 <= cycles):
                raise ValueError(
                    f"coarse_content={coarse_content!r} must be (min_rel_area in (0, 0.4], cycles "
                    ">= 1)"
                )
            coarse_content = (threshold, cycles)
        self.coarse_content = coarse_content
        self.families = _check_names("families", families, FAMILIES)
        self.content_kinds = _check_names("content_kinds", content_kinds, CONTENT_KINDS)
        self.difficulty = float(difficulty)
        self.num_distractors = num_distractors
        self.id_prefix = id_prefix

    def __len__(self) -> int:
        return self.num_samples

    def __repr__(self) -> str:
        groups = self.target_groups if len(self.target_groups) > 1 else self.target_rel_area
        return (
            f"SyntheticHR(num_samples={self.num_samples}, seed={self.seed}, "
            f"image_size={self.image_size}, families={self.families}, "
            f"target_rel_area={groups}, "
            f"difficulty={self.difficulty})"
        )

    def index_of(self, sample_id: str) -> int | None:
        """Index of the sample with id `sample_id` (parsed, nothing rendered); None if not here."""
        prefix = f"{self.id_prefix}-{self.seed}-"
        tail = sample_id[len(prefix) :] if sample_id.startswith(prefix) else ""
        if (
            tail.isascii()
            and tail.isdigit()
            and str(int(tail)) == tail
            and int(tail) < self.num_samples
        ):
            return int(tail)
        return None

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        if not isinstance(index, (int, np.integer)) or isinstance(index, bool):
            raise TypeError(f"SyntheticHR indices must be int, got {type(index).__name__}")
        i = int(index) + (self.num_samples if index < 0 else 0)
        if not 0 <= i < self.num_samples:
            raise IndexError(
                f"index {index} out of range for SyntheticHR of length {self.num_samples}"
            )
        return _make_sample(self, i)


def make_synthetic(
    num_samples: int = 1000,
    seed: int = 0,
    image_size: int | tuple[int, int] = (448, 1344),
    target_rel_area: float | tuple[float, float] = (5e-3, 0.3),
    **kwargs: Any,
) -> SyntheticHR:
    """Ordinary-resolution variant (dataset `synthetic`, ids `synthetic-{seed}-{i}`)."""
    kwargs.setdefault("id_prefix", "synthetic")
    return SyntheticHR(
        num_samples=num_samples,
        seed=seed,
        image_size=image_size,
        target_rel_area=target_rel_area,
        **kwargs,
    )


class _Layout:
    """Non-overlapping placement of boxes inside an image (rejection sampling, vectorised)."""

    def __init__(self, rng: np.random.Generator, size: tuple[int, int]):
        self.rng = rng
        self.w, self.h = size
        self.margin = max(2, round(0.01 * min(size)))
        self.occupied: list[tuple[float, float, float, float]] = []

    def place(self, w: int, h: int, gap: float, tries: int = 256) -> tuple[int, int] | None:
        """Top-left of a free `w` x `h` spot at least `gap` px from every placed box, or None."""
        hi_x, hi_y = self.w - self.margin - w, self.h - self.margin - h
        if hi_x < self.margin or hi_y < self.margin:
            return None
        xs = self.rng.integers(self.margin, hi_x + 1, tries)
        ys = self.rng.integers(self.margin, hi_y + 1, tries)
        free = np.ones(tries, dtype=bool)
        for x1, y1, x2, y2 in self.occupied:
            free &= (
                (xs >= x2 + gap) | (xs + w <= x1 - gap) | (ys >= y2 + gap) | (ys + h <= y1 - gap)
            )
        if not free.any():
            return None
        k = int(np.argmax(free))
        x, y = int(xs[k]), int(ys[k])
        self.occupied.append((x, y, x + w, y + h))
        return x, y


def _draw_image_size(
    rng: np.random.Generator, cfg: SyntheticHR, rel_area: float
) -> tuple[int, int]:
    lo, hi = cfg.image_size
    w, h = (int(v) for v in rng.integers(lo, hi + 1, size=2))
    short, long = min(w, h), max(w, h)
    long = max(short, min(long, math.floor(FIT_FRACTION**2 * short / rel_area)))
    return (long, short) if w >= h else (short, long)


def _ring_diameter(rel_area: float, size: tuple[int, int], lo: float, hi: float) -> int:
    """Diameter whose area ratio is closest to `rel_area` and, when possible, inside [lo, hi]."""
    area = size[0] * size[1]
    d = max(MIN_RING_PX, round(math.sqrt(rel_area * area)))
    d = min(d, math.floor(FIT_FRACTION * min(size)))
    if d * d / area < lo and (d + 1) <= FIT_FRACTION * min(size):
        d += 1
    if d * d / area > hi and d - 1 >= MIN_RING_PX:
        d -= 1
    return d


def _label_unit(
    rng: np.random.Generator, layout: _Layout, d: int, label: str, label_h: int, gap: float
) -> tuple[tuple[int, int], tuple[int, int, int, int]] | None:
    """Place a ring of diameter `d` with its label plate on a random side that fits.

    Returns ((ring x, ring y), label plate box) or None.
    """
    lw, lh, _, _ = _label_layout(label_h, len(label))
    sep = max(2, round(0.06 * d))
    sides = [int(s) for s in rng.permutation(4)]  # 0 right, 1 left, 2 below, 3 above
    for side in sides:
        if side < 2:
            uw, uh = d + sep + lw, max(d, lh)
            ring_off = (0 if side == 0 else lw + sep, (uh - d) // 2)
            label_off = (d + sep if side == 0 else 0, (uh - lh) // 2)
        else:
            uw, uh = max(d, lw), d + sep + lh
            ring_off = ((uw - d) // 2, 0 if side == 2 else lh + sep)
            label_off = ((uw - lw) // 2, d + sep if side == 2 else 0)
        spot = layout.place(uw, uh, gap)
        if spot is not None:
            rx, ry = spot[0] + ring_off[0], spot[1] + ring_off[1]
            lx, ly = spot[0] + label_off[0], spot[1] + label_off[1]
            return (rx, ry), (lx, ly, lx + lw, ly + lh)
    return None


def _options(rng: np.random.Generator, kind: str) -> tuple[str, list[str], int]:
    """(correct content, option texts, correct index) with the index uniform over 4."""
    classes = PATTERNS if kind == "pattern" else DIGITS
    content = classes[int(rng.integers(len(classes)))]
    others = [c for c in classes if c != content]
    wrong = [others[int(j)] for j in rng.permutation(len(others))[:3]]
    index = int(rng.integers(4))
    return content, wrong[:index] + [content] + wrong[index:], index


_ARTICLE = {"checkerboard": "a checkerboard"}


def _make_sample(cfg: SyntheticHR, i: int) -> Sample:
    rng = np.random.default_rng([cfg.seed, i])
    family = cfg.families[int(rng.integers(len(cfg.families)))]
    kind = cfg.content_kinds[int(rng.integers(len(cfg.content_kinds)))]
    group = target_group(i, cfg.seed, cfg.target_mix) if len(cfg.target_groups) > 1 else 0
    lo, hi = cfg.target_groups[group]
    rel_area = math.exp(rng.uniform(math.log(lo), math.log(hi)))
    size = _draw_image_size(rng, cfg, rel_area)
    d = _ring_diameter(rel_area, size, lo, hi)
    diff = cfg.difficulty
    content, options, answer_index = _options(rng, kind)
    wrong = [o for o in options if o != content]
    color_names = list(PALETTE)
    color = color_names[int(rng.integers(len(color_names)))]
    other_colors = [c for c in color_names if c != color]
    labelled = family == "search"
    if labelled:
        n_same = cfg.num_distractors if cfg.num_distractors is not None else 2 + round(6 * diff)
        n_other = 2
        codes = rng.permutation(len(LABEL_LETTERS) * 10)[: 1 + n_same + n_other]
        labels = [f"{LABEL_LETTERS[int(c) // 10]}{int(c) % 10}" for c in codes]
    else:
        n_same = 0
        n_other = cfg.num_distractors if cfg.num_distractors is not None else 2 + round(4 * diff)
        labels = []
    label_frac = _lerp(0.26, 0.16, diff)
    coarse = cfg.coarse_content
    if coarse is not None and d * d / (size[0] * size[1]) < coarse[0]:
        coarse = None
    cycles = coarse[1] if coarse is not None else None

    layout = _Layout(rng, size)
    rings: list[Ring] = []

    def add_ring(
        diameter: int, ring_color: str, ring_content: str, label: str | None, shrink_tries: int
    ) -> bool:
        for _ in range(shrink_tries + 1):
            gap = max(4.0, 0.08 * min(diameter, d))
            if label is None:
                spot = layout.place(diameter, diameter, gap)
                plate, label_h = None, 0
            else:
                label_h = max(9, round(label_frac * diameter))
                placed = _label_unit(rng, layout, diameter, label, label_h, gap)
                spot, plate = placed if placed is not None else (None, None)
            if spot is not None:
                period = content_period(kind, diameter, diff, cycles)
                dx, dy = (
                    (0, 0) if kind == "digit" else (int(o) for o in rng.integers(period, size=2))
                )
                offset = (dx, dy)
                rings.append(
                    Ring(
                        x=spot[0],
                        y=spot[1],
                        diameter=diameter,
                        color=ring_color,
                        kind=kind,
                        content=ring_content,
                        mean=float(rng.uniform(110.0, 145.0)),
                        period=period,
                        offset=offset,
                        label=label,
                        label_box=plate,
                        label_height=label_h,
                    )
                )
                return True
            diameter = max(MIN_RING_PX, round(diameter * 0.8))
        return False

    # The target first (shrunk only if it cannot fit with its label: not for areas <= 0.4 in
    # images >= 64 px), then the distractors.
    if not add_ring(d, color, content, labels[0] if labelled else None, shrink_tries=20):
        raise RuntimeError(f"cannot place the target of sample {i} in a {size} image")
    target = rings[0]
    placed_same = 0
    for j in range(n_same):
        dj = max(MIN_RING_PX, round(d * rng.uniform(0.8, 1.25)))
        placed_same += add_ring(dj, color, wrong[j % len(wrong)], labels[1 + j], shrink_tries=8)
    placed_other = 0
    for j in range(n_other):
        dj = max(MIN_RING_PX, round(d * math.exp(rng.uniform(-0.5, 0.5))))
        cj = other_colors[int(rng.integers(len(other_colors)))]
        label = labels[1 + n_same + j] if labelled else None
        placed_other += add_ring(
            dj, cj, wrong[int(rng.integers(len(wrong)))], label, shrink_tries=3
        )

    sample_id = f"{cfg.id_prefix}-{cfg.seed}-{i}"
    image = SyntheticImage(
        sample_id=sample_id,
        size=size,
        render_seed=int(rng.integers(2**63)),
        rings=tuple(rings),
        difficulty=diff,
        excluded_hue=None if labelled else _hue(color),
    )
    gt = target.box
    if labelled:
        name = f"the ring labelled {target.label}"
    else:
        name = f"the {color} ring"
    if kind == "pattern":
        question = f"What fills {name}?"
        expression = name if labelled else f"{name} filled with {_ARTICLE.get(content, content)}"
    else:
        question = f"Which digit is inside {name}?"
        expression = name if labelled else f"{name} containing the digit {content}"
    return Sample(
        id=sample_id,
        image=image,
        question=question,
        answer="ABCD"[answer_index],
        options=tuple(options),
        gt_boxes=(gt,),
        category=family,
        image_size=size,
        metadata={
            "family": family,
            "content_kind": kind,
            "difficulty": diff,
            "target_rel_area": gt.area / (size[0] * size[1]),
            "target_group": group,
            "content_period": target.period,
            "attributes": {"color": color, "content": content, "label": target.label},
            "referring_expression": expression,
            "num_distractors": placed_same if labelled else placed_other,
            "distractor_boxes": tuple(r.box for r in rings[1:]),
            "label_box": Box(*target.label_box) if target.label_box else None,
        },
    )


register_dataset(
    "synthetic-hr",
    SyntheticHR,
    bin_edges=HR_BIN_EDGES,
    why="synthetic-hr targets cover 1e-4..0.3 of the image (log-uniform): log-decade edges",
)


register_dataset("synthetic", make_synthetic)


class SyntheticRef(Sequence[Sample]):
    """`synthetic-hr` scenes as referring-expression samples (dataset `synthetic-ref`).

    Sample `i` is `SyntheticHR(...)[i]` with `question` = its `metadata["referring_expression"]`,
    `answer` "" and `options` None (the env scores the box); `gt_boxes`, the image, `category`
    (the family: "read" names the ring by its unique colour, "search" by its label) and the
    metadata are kept, plus `source_question` and `source_answer`.

    Args:
        num_samples, seed: as in `SyntheticHR`.
        id_prefix: ids are `f"{id_prefix}-{seed}-{i}"`.
        **kwargs: any other `SyntheticHR` argument (`image_size`, `target_rel_area`, ...).
    """

    def __init__(
        self,
        num_samples: int = 1000,
        seed: int = 0,
        *,
        id_prefix: str = "synthetic-ref",
        **kwargs: Any,
    ):
        self.source = SyntheticHR(num_samples=num_samples, seed=seed, id_prefix=id_prefix, **kwargs)

    def __len__(self) -> int:
        return len(self.source)

    def __repr__(self) -> str:
        return f"SyntheticRef({self.source!r})"

    def index_of(self, sample_id: str) -> int | None:
        """As `SyntheticHR.index_of`."""
        return self.source.index_of(sample_id)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        sample = self.source[index]
        expression = str(sample.metadata["referring_expression"])
        metadata = {
            **sample.metadata,
            "source_question": sample.question,
            "source_answer": sample.answer,
        }
        return dataclasses.replace(
            sample, question=expression, answer="", options=None, metadata=metadata
        )


register_dataset("synthetic-ref", SyntheticRef)
