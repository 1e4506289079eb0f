"""`HFPolicy`: a transformers vision-language model (Qwen2.5-VL reference) as a `Policy`.

One class does both halves of the protocol:

* `act(observations, infos)` builds each env's conversation from `info["messages"]`, samples one
  assistant turn per env in ONE batched `generate` call (left padding), and returns the text,
  the generated token ids and their log-probs.
* `trajectory_logprobs(trajectories)` rebuilds each stored multi-turn episode as ONE token
  sequence (all turns' images included), runs ONE forward pass over the batch (right padding)
  and gathers the log-probs of the policy's own tokens, with a mask that is 1 exactly there.

Token bookkeeping lives in `agents.policies.chat.ChatEncoder` (`self.chat`): assistant turns are
spliced in as the ids the model generated, never re-tokenized; see its module docstring.

Log-prob convention (sampling and recompute use the same one)
------------------------------------------------------------
`logp = log_softmax((logits with suppressed ids set to -inf) / temperature)[token]`, float32.
Temperature IS applied; top-k / top-p truncation is NOT (as in TRL and verl), so with
`top_p < 1` or `top_k > 0` the stored log-probs are of the untruncated tempered distribution.
Suppressed ids (`suppress_token_ids`, default: the vision placeholders and `<|im_start|>`) are
never sampled: an `<|image_pad|>` in generated text would break the next turn's image alignment.

Pixel budget
------------
The env already resizes every view into its pixel budget (`min_pixels`, `max_pixels`, sides a
multiple of `patch_size`), and its prompt tells the model the view's size. The processor
resizes images with the same rule (`smart_resize`, factor = vision patch x spatial merge = 28
for Qwen2/2.5-VL, 32 for Qwen3-VL), so it leaves a view untouched exactly when the view's size
is a multiple of that factor and inside the processor's own budget. `image_min_pixels` /
`image_max_pixels` set the processor's budget; give the env the same numbers (and
`patch_size` = the factor). The first image the processor would resize triggers a warning: the
model would see a size different from the one the prompt states, so `view`-frame coordinates
would be off.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

try:
    import torch
    import torch.nn.functional as F
    from PIL import Image
    from transformers import (
        AutoModelForImageTextToText,
        AutoProcessor,
        AutoTokenizer,
        LogitsProcessor,
        LogitsProcessorList,
    )
    from transformers.image_utils import SizeDict

    # Imported from its module: transformers 5.10's top-level `AutoImageProcessor` is a
    # placeholder that demands torchvision even for backend="pil".
    from transformers.models.auto.image_processing_auto import AutoImageProcessor
except ImportError as exc:  # pragma: no cover - exercised only without the agents extra
    raise ImportError(
        f"agents.policies.hf needs torch and transformers>=5 ({exc}); "
        "install them with `pip install 'grounding-gym[agents]'`."
    ) from exc

from agents.policies.base import Generation, Trajectory
from agents.policies.chat import ChatEncoder

__all__ = ["HFPolicy", "DEFAULT_LORA_TARGETS", "load_processor"]

DEFAULT_LORA_TARGETS = (
    r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
)
"""Default LoRA `target_modules` (a regex): the language model's attention and MLP projections,
not the vision tower (whose MLP layers have the same names)."""

_SUPPRESSED_TOKENS = (
    "<|image_pad|>",
    "<|video_pad|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|im_start|>",
)
_DTYPES = {
    "float32": torch.float32,
    "fp32": torch.float32,
    "bfloat16": torch.bfloat16,
    "bf16": torch.bfloat16,
    "float16": torch.float16,
    "fp16": torch.float16,
}


# --------------------------------------------------------------------------------------------
# loading
# --------------------------------------------------------------------------------------------


def load_processor(model_name_or_path: str, **kwargs: Any) -> Any:
    """`AutoProcessor.from_pretrained`, falling back to an image-only processor when the stock
    one cannot be built (transformers 5.x Qwen-VL processors need torchvision for their video
    processor; this project does not).

    Returns:
        A processor with `.tokenizer`, `.image_processor` and `.chat_template`.
    """
    from agents.policies.tiny_qwen import QwenVLImageOnlyProcessor  # registers the class

    try:
        return AutoProcessor.from_pretrained(model_name_or_path, **kwargs)
    except (OSError, ImportError, ValueError, TypeError, AttributeError) as exc:
        message = str(exc).lower()
        if "video" not in message and "torchvision" not in message:
            raise
        tokenizer = AutoTokenizer.from_pretrained(model_name_or_path, **kwargs)
        image_processor = AutoImageProcessor.from_pretrained(
            model_name_or_path, backend="pil", **kwargs
        )
        chat_template = getattr(tokenizer, "chat_template", None) or _saved_chat_template(
            model_name_or_path, **kwargs
        )
        warnings.warn(
            f"AutoProcessor could not load {model_name_or_path!r} ({exc}); using an image-only "
            "processor (PIL image processor + tokenizer). Install torchvision for the stock one.",
            stacklevel=2,
        )
        return QwenVLImageOnlyProcessor(image_processor, tokenizer, chat_template=chat_template)


def _saved_chat_template(model_name_or_path: str, **kwargs: Any) -> str | None:
    """The processor's chat template file (`chat_template.jinja`, or `chat_template.json` as in
    released Qwen-VL checkpoints), local or on the Hub cache; None if there is none."""
    import json

    from transformers.utils import cached_file

    hub_kwargs = {
        k: kwargs[k] for k in ("cache_dir", "revision", "token", "local_files_only") if k in kwargs
    }
    for name in ("chat_template.jinja", "chat_template.json"):
        try:
            path = cached_file(
                model_name_or_path,
                name,
                _raise_exceptions_for_missing_entries=False,
                _raise_exceptions_for_connection_errors=False,
                **hub_kwargs,
            )
        except OSError:
            path = None
        if path and os.path.isfile(path):
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
            return json.loads(text)["chat_template"] if name.endswith(".json") else text
    return None


def _resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in _DTYPES:
        raise ValueError(f"dtype must be a torch.dtype or one of {sorted(_DTYPES)}, got {dtype!r}")
    return _DTYPES[dtype]


def _resolve_device(device: str | torch.device | None) -> torch.device:
    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class _ForceTokens(LogitsProcessor):
    """Teacher forcing inside `generate`: rows with a forced sequence may only emit its next id."""

    def __init__(self, forced: Sequence[Sequence[int] | None], prompt_len: int):
        self.forced = forced
        self.prompt_len = prompt_len

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        step = input_ids.shape[1] - self.prompt_len
        for row, ids in enumerate(self.forced):
            if ids is None:
                continue
            token = ids[step] if step < len(ids) else ids[-1]
            keep = scores[row, token].clone()
            scores[row] = float("-inf")
            scores[row, token] = keep if torch.isfinite(keep) else 0.0
        return scores


# --------------------------------------------------------------------------------------------
# the policy
# --------------------------------------------------------------------------------------------


class HFPolicy(torch.nn.Module):
    """A transformers image-text-to-text model as a `Policy` (see the module docstring).

    An `nn.Module` whose only submodule is `model`: `parameters()`, `state_dict()`, `train()`
    and `to()` act on the model, and `forward(trajectories)` is `trajectory_logprobs`, so a
    DDP/FSDP-wrapped policy computes log-probs through its wrapper (gradient sync). `act` runs
    `generate` on the unwrapped model.

    Args:
        model_name_or_path: a local checkpoint or Hub id loadable with
            `AutoModelForImageTextToText` + `AutoProcessor` (Qwen2.5-VL reference; Qwen2-VL and
            Qwen3-VL share the API).
        dtype: weights dtype: "float32" (default; tests), "bfloat16" (GPU training), "float16".
        device: "cpu", "cuda", "cuda:1", or "auto" (CUDA when available).
        max_new_tokens: generation budget per turn (tokens).
        temperature: sampling temperature, > 0; also divides the logits of every log-prob.
        top_p: nucleus sampling, in (0, 1]; 1 disables it (log-probs ignore it; see above).
        top_k: top-k sampling, >= 0; 0 disables it (log-probs ignore it).
        lora: `peft.LoraConfig` kwargs; None trains every weight. `target_modules` defaults to
            `DEFAULT_LORA_TARGETS` (language model only); only adapter weights then train.
        gradient_checkpointing: activation checkpointing (non-reentrant) for training.
        image_min_pixels: processor's minimum pixels per image; None keeps the checkpoint's.
        image_max_pixels: processor's maximum pixels per image; None keeps the checkpoint's.
            Match the env's `min_pixels` / `max_pixels` (see "Pixel budget" above).
        attn_implementation: e.g. "sdpa" (default), "eager", "flash_attention_2" (GPU).
        suppress_token_ids: ids never sampled; None = the vision placeholders and `<|im_start|>`.
        model: an already-built model (skips loading; `model_name_or_path` is then only a name).
        processor: an already-built processor (skips loading).
        model_kwargs: extra kwargs for `from_pretrained` (e.g. `trust_remote_code`).
        token_cache_size: how many generated texts keep their ids for later turns' contexts.

    Attributes:
        model: the trainable module (a `peft.PeftModel` with LoRA); `prepare()` may wrap it.
        processor, tokenizer: the processor and its tokenizer.
    """

    def __init__(
        self,
        model_name_or_path: str,
        *,
        dtype: str | torch.dtype = "float32",
        device: str | torch.device | None = "cpu",
        max_new_tokens: int = 256,
        temperature: float = 1.0,
        top_p: float = 1.0,
        top_k: int = 0,
        lora: dict[str, Any] | None = None,
        gradient_checkpointing: bool = False,
        image_min_pixels: int | None = None,
        image_max_pixels: int | None = None,
        attn_implementation: str | None = None,
        suppress_token_ids: Sequence[int] | None = None,
        model: Any = None,
        processor: Any = None,
        model_kwargs: dict[str, Any] | None = None,
        token_cache_size: int = 65536,
    ):
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {max_new_tokens}")
        if not temperature > 0:
            raise ValueError(
                f"temperature must be > 0 (use act(greedy=True) for argmax), got {temperature}"
            )
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        if top_k < 0:
            raise ValueError(f"top_k must be >= 0 (0 disables it), got {top_k}")
        super().__init__()
        self.name = str(model_name_or_path)
        device = _resolve_device(device)
        dtype = _resolve_dtype(dtype)
        self.max_new_tokens = int(max_new_tokens)
        self.temperature = float(temperature)
        self.top_p = float(top_p)
        self.top_k = int(top_k)

        self.processor = processor if processor is not None else load_processor(self.name)
        self.tokenizer = getattr(self.processor, "tokenizer", self.processor)
        self.image_processor = self.processor.image_processor
        self.chat_template = (
            getattr(self.processor, "chat_template", None) or self.tokenizer.chat_template
        )
        if self.chat_template is None:
            raise ValueError(f"{self.name!r} has no chat template (processor or tokenizer)")
        self._set_pixel_budget(image_min_pixels, image_max_pixels)

        if model is None:
            kwargs = dict(model_kwargs or {})
            kwargs.setdefault("dtype", dtype)
            if attn_implementation is not None:
                kwargs["attn_implementation"] = attn_implementation
            model = AutoModelForImageTextToText.from_pretrained(self.name, **kwargs)
            model.to(device)
        self.model = model
        if lora is not None:
            self.model = self._apply_lora(self.model, lora)
        if gradient_checkpointing:
            base = self._base_model()
            if hasattr(base, "activation_checkpointing_enable"):  # transformers >= 5.x name
                base.activation_checkpointing_enable(
                    activation_checkpointing_kwargs={"use_reentrant": False}
                )
            else:
                base.gradient_checkpointing_enable(
                    gradient_checkpointing_kwargs={"use_reentrant": False}
                )
            base.config.use_cache = False

        self._init_token_ids(suppress_token_ids)
        self.chat = ChatEncoder(
            self.tokenizer,
            self.image_processor,
            self.chat_template,
            self.image_token,
            self.image_token_id,
            self.eos_token_ids,
            self.patch_factor,
            self.min_pixels,
            self.max_pixels,
            token_cache_size,
        )
        """Token bookkeeping: conversations -> ids with generated ids spliced in."""

    # ------------------------------------------------------------------ construction helpers
    @classmethod
    def from_model(cls, model: Any, processor: Any, **kwargs: Any) -> HFPolicy:
        """Wrap an existing model + processor (e.g. a TRL trainer's); device = the model's."""
        kwargs.pop("device", None)
        kwargs.pop("dtype", None)
        name = getattr(getattr(model, "config", None), "_name_or_path", "") or type(model).__name__
        return cls(name, model=model, processor=processor, **kwargs)

    def _apply_lora(self, model: Any, lora: dict[str, Any]) -> Any:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError as exc:  # pragma: no cover
            raise ImportError("lora=... needs peft: `pip install 'grounding-gym[agents]'`") from exc
        kwargs = dict(lora)
        kwargs.setdefault("target_modules", DEFAULT_LORA_TARGETS)
        kwargs.setdefault("r", 8)
        kwargs.setdefault("lora_alpha", 2 * kwargs["r"])
        return get_peft_model(model, LoraConfig(**kwargs))

    def _set_pixel_budget(self, min_pixels: int | None, max_pixels: int | None) -> None:
        size = self.image_processor.size
        lo = getattr(size, "shortest_edge", None) if min_pixels is None else int(min_pixels)
        hi = getattr(size, "longest_edge", None) if max_pixels is None else int(max_pixels)
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"image_min_pixels ({lo}) must be <= image_max_pixels ({hi})")
        if min_pixels is not None or max_pixels is not None:
            self.image_processor.size = SizeDict(shortest_edge=lo, longest_edge=hi)
        self.min_pixels, self.max_pixels = lo, hi
        self.patch_factor = int(self.image_processor.patch_size) * int(
            self.image_processor.merge_size
        )

    def _init_token_ids(self, suppress_token_ids: Sequence[int] | None) -> None:
        tok = self.tokenizer
        vocab = tok.get_vocab()
        self.image_token = getattr(self.processor, "image_token", "<|image_pad|>")
        if self.image_token not in vocab:
            raise ValueError(f"the tokenizer has no image token {self.image_token!r}")
        self.image_token_id = vocab[self.image_token]
        self.merge_size = int(self.image_processor.merge_size)
        eos = self._base_model().generation_config.eos_token_id
        eos = [eos] if isinstance(eos, int) else list(eos or [])
        for name in ("<|im_end|>", tok.eos_token):
            if name in vocab and vocab[name] not in eos:
                eos.append(vocab[name])
        self.eos_token_ids = tuple(eos)
        pad = tok.pad_token_id
        self.pad_token_id = int(pad if pad is not None else eos[0])
        if suppress_token_ids is None:
            suppress_token_ids = [vocab[t] for t in _SUPPRESSED_TOKENS if t in vocab]
        self.suppress_token_ids = tuple(int(i) for i in suppress_token_ids)

    def _base_model(self) -> Any:
        """The transformers model under any peft / DDP / FSDP wrapper (for generate, config)."""
        model = self.model
        while hasattr(model, "module"):  # DDP / DeepSpeed engine
            model = model.module
        if hasattr(model, "get_base_model"):  # peft
            model = model.get_base_model()
        return model

    def _generation_model(self) -> Any:
        """The model `generate` is called on: peft kept (adapters active), DDP unwrapped."""
        model = self.model
        while hasattr(model, "module"):
            model = model.module
        return model

    # ------------------------------------------------------------------ training helpers
    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        """Dtype of the floating-point weights (pixel values are cast to it)."""
        return next(p.dtype for p in self.model.parameters() if p.is_floating_point())

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters with `requires_grad` (LoRA: the adapters only)."""
        return [p for p in self.model.parameters() if p.requires_grad]

    def forward(self, trajectories: Sequence[Trajectory]) -> tuple[torch.Tensor, torch.Tensor]:
        """`trajectory_logprobs(trajectories)` (so wrappers such as DDP see a forward call)."""
        return self.trajectory_logprobs(trajectories)

    def prepare(self, accelerator: Any, *objects: Any) -> Any:
        """`accelerator.prepare(self.model, *objects)`: the wrapped model does the forward pass
        (DDP gradient sync), the unwrapped one `generate`. Returns the other prepared objects.
        (Preparing the whole policy, `accelerator.prepare(policy)`, works too: then call the
        wrapper, `prepared(trajectories)`, for log-probs.)"""
        prepared = accelerator.prepare(self.model, *objects)
        if objects:
            self.model, *rest = prepared
            return rest[0] if len(rest) == 1 else tuple(rest)
        self.model = prepared
        return None

    def save_pretrained(self, path: str) -> None:
        """Model (or LoRA adapter) and processor, loadable by `HFPolicy(path)`."""
        self._generation_model().save_pretrained(path)
        self.processor.save_pretrained(path)

    def state_dict_for_inference(self) -> Iterator[tuple[str, torch.Tensor]]:
        """(name, tensor) pairs in the base checkpoint's naming, LoRA merged: what a vLLM
        engine's `load_weights` expects (see `agents.policies.vllm_engine`)."""
        model = self._generation_model()
        if hasattr(model, "merge_and_unload"):
            import copy

            merged = copy.deepcopy(model).merge_and_unload()
            yield from merged.state_dict().items()
        else:
            yield from model.state_dict().items()

    # ------------------------------------------------------------------ encoding
    def _forced_ids(self, forced: str | Sequence[int] | None) -> list[int] | None:
        if forced is None:
            return None
        if isinstance(forced, str):
            return self.tokenizer(forced, add_special_tokens=False)["input_ids"] + [
                self.eos_token_ids[0]
            ]
        ids = [int(t) for t in forced]
        if not ids:
            raise ValueError("a forced token-id sequence must not be empty")
        return ids

    def env_pixel_kwargs(self) -> dict[str, int]:
        """Env kwargs (`min_pixels`, `max_pixels`, `patch_size`) under which the processor
        never resizes a view: pass them to `gym.make(...)`."""
        if self.min_pixels is None or self.max_pixels is None:
            raise ValueError("the processor has no min/max pixel budget; set image_min/max_pixels")
        return {
            "min_pixels": int(self.min_pixels),
            "max_pixels": int(self.max_pixels),
            "patch_size": self.patch_factor,
        }

    def _batch(
        self, rows: Sequence[list[int]], image_inputs: Sequence[dict[str, torch.Tensor]], left: bool
    ) -> dict[str, torch.Tensor]:
        width = max(len(r) for r in rows)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for b, row in enumerate(rows):
            start = width - len(row) if left else 0
            input_ids[b, start : start + len(row)] = torch.tensor(row, dtype=torch.long)
            attention[b, start : start + len(row)] = 1
        batch: dict[str, torch.Tensor] = {
            "input_ids": input_ids,
            "attention_mask": attention,
            "mm_token_type_ids": (input_ids == self.image_token_id).long() * attention,
        }
        with_images = [x for x in image_inputs if x]
        if with_images:
            batch["pixel_values"] = torch.cat([x["pixel_values"] for x in with_images]).to(
                self.dtype
            )
            batch["image_grid_thw"] = torch.cat([x["image_grid_thw"] for x in with_images])
        return {k: v.to(self.device) for k, v in batch.items()}

    def _logprob_logits(self, logits: torch.Tensor) -> torch.Tensor:
        """The convention of the module docstring: float32, suppressed ids out, / temperature."""
        logits = logits.float()
        if self.suppress_token_ids:
            logits = logits.index_fill(
                -1, torch.tensor(self.suppress_token_ids, device=logits.device), float("-inf")
            )
        return torch.log_softmax(logits / self.temperature, dim=-1)

    # ------------------------------------------------------------------ protocol
    def act(
        self,
        observations: Sequence[dict[str, Any]],
        infos: Sequence[dict[str, Any]],
        *,
        greedy: bool = False,
        forced_texts: Sequence[str | Sequence[int] | None] | None = None,
    ) -> list[Generation]:
        """One assistant turn per env, sampled in one batched `generate` call.

        Args:
            observations: env observations (unused: the conversation in `infos` has the views).
            infos: env infos; `info["messages"]` is the conversation so far.
            greedy: argmax decoding instead of sampling (log-probs keep the temperature).
            forced_texts: per env, None to sample, a text to teacher-force (its tokens plus
                `<|im_end|>`), or a list of token ids forced verbatim (tests use it to force a
                non-canonical tokenization); the log-probs are still the model's for those
                tokens, computed inside `generate` exactly as for sampled ones.

        Returns:
            One `Generation` per env: `text` (special tokens removed), `token_ids` (including
            the `<|im_end|>` the model emitted, if any) and `logprobs` (float, nats).
        """
        if len(observations) != len(infos):
            raise ValueError(f"{len(observations)} observations but {len(infos)} infos")
        if forced_texts is not None and len(forced_texts) != len(infos):
            raise ValueError(f"{len(forced_texts)} forced texts for {len(infos)} envs")
        if not infos:
            return []
        rows, image_inputs = [], []
        for info in infos:
            messages = info.get("messages")
            if not messages:
                raise ValueError(
                    "HFPolicy.act needs info['messages'] (the env's conversation so far)"
                )
            history = self.chat.history_ids(messages)
            ids, _, _, inputs = self.chat.encode(messages, history, add_generation_prompt=True)
            rows.append(ids)
            image_inputs.append(inputs)
        batch = self._batch(rows, image_inputs, left=True)
        prompt_len = batch["input_ids"].shape[1]

        forced = None
        max_new = self.max_new_tokens
        if forced_texts is not None:
            forced = [self._forced_ids(t) for t in forced_texts]
            max_new = max([max_new] + [len(f) for f in forced if f is not None])
        gen_kwargs: dict[str, Any] = {
            "max_new_tokens": max_new,
            "do_sample": not greedy,
            "eos_token_id": list(self.eos_token_ids),
            "pad_token_id": self.pad_token_id,
            "return_dict_in_generate": True,
            "output_logits": True,
            "use_cache": True,
        }
        if not greedy:
            gen_kwargs.update(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k)
        else:
            gen_kwargs.update(temperature=None, top_p=None, top_k=None)
        if self.suppress_token_ids:
            gen_kwargs["suppress_tokens"] = list(self.suppress_token_ids)
        if forced is not None:
            gen_kwargs["logits_processor"] = LogitsProcessorList([_ForceTokens(forced, prompt_len)])

        model = self._generation_model()
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                out = model.generate(**batch, **gen_kwargs)
        finally:
            model.train(was_training)
        new_tokens = out.sequences[:, prompt_len:]  # (B, n)
        # (B, n) log-probs of the sampled tokens, one step at a time (never a (B, n, V) tensor)
        logp = torch.stack(
            [
                self._logprob_logits(step).gather(-1, new_tokens[:, t, None])[:, 0]
                for t, step in enumerate(out.logits)
            ],
            dim=1,
        ).cpu()
        new_tokens = new_tokens.cpu()

        generations = []
        for b in range(len(rows)):
            ids = new_tokens[b].tolist()
            end = next((i + 1 for i, t in enumerate(ids) if t in self.eos_token_ids), len(ids))
            ids = ids[:end]
            lps = logp[b, :end].tolist()
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            self.chat.remember(text, ids)
            generations.append(Generation(text=text, token_ids=tuple(ids), logprobs=tuple(lps)))
        return generations

    def trajectory_logprobs(
        self, trajectories: Sequence[Trajectory]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs (with grad) of every trajectory's policy tokens, from one forward pass.

        Returns:
            `(logp, mask)`, both `(B, T)` on the policy's device, T = the most policy tokens
            of any trajectory; column t of row b is the t-th policy token of trajectory b
            (turns in order). `logp` float32 (0 where mask is 0); `mask` float32 in {0, 1}.

        Raises:
            ValueError: a trajectory's messages and turns disagree.
        """
        if not trajectories:
            raise ValueError("trajectory_logprobs needs at least one trajectory")
        rows, positions, image_inputs, targets = [], [], [], []
        for traj in trajectories:
            messages = list(traj.messages)
            last = max(
                (i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=-1
            )
            n_assistant = sum(1 for m in messages if m.get("role") == "assistant")
            if n_assistant != len(traj.turns):
                raise ValueError(
                    f"trajectory {traj.sample_id!r}: {n_assistant} assistant messages but "
                    f"{len(traj.turns)} turns; Trajectory.messages must be the final "
                    "info['messages']"
                )
            assistant = [t.generation.token_ids for t in traj.turns]
            ids, pos, _, inputs = self.chat.encode(
                messages[: last + 1], assistant, add_generation_prompt=False
            )
            rows.append(ids)
            positions.append(pos)
            image_inputs.append(inputs)
            targets.append([t for ids_ in assistant for t in ids_])
        batch = self._batch(rows, image_inputs, left=False)

        # Only the logits that predict a policy token: positions p - 1, union over the batch.
        keep = sorted({p - 1 for pos in positions for p in pos})
        if not keep or keep[0] < 0:
            raise ValueError(
                "a policy token sits at position 0 (no context); the chat template is broken"
            )
        keep_t = torch.tensor(keep, dtype=torch.long, device=self.device)
        out = self.model(**batch, logits_to_keep=keep_t, use_cache=False)
        logits = out.logits  # (B, len(keep), V)
        width = max(len(t) for t in targets)
        logp = torch.zeros((len(rows), width), dtype=torch.float32, device=self.device)
        mask = torch.zeros((len(rows), width), dtype=torch.float32, device=self.device)
        rows_logp = []
        for b, (pos, target) in enumerate(zip(positions, targets, strict=True)):
            if not pos:
                rows_logp.append(logp[b])
                continue
            index = torch.searchsorted(keep_t, torch.tensor(pos, device=self.device) - 1)
            token_logp = self._logprob_logits(logits[b, index])  # (n, V)
            picked = token_logp.gather(-1, torch.tensor(target, device=self.device)[:, None])[:, 0]
            rows_logp.append(F.pad(picked, (0, width - len(target))))
            mask[b, : len(target)] = 1.0
        return torch.stack(rows_logp), mask

    # ------------------------------------------------------------------ introspection
    def policy_token_spans(self, trajectory: Trajectory) -> list[str]:
        """The decoded text of each turn's policy tokens as they sit in the rebuilt sequence
        (tests compare it with the generated texts)."""
        ids, positions = self.chat.trajectory_ids(trajectory)
        spans, start = [], 0
        for turn in trajectory.turns:
            n = len(turn.generation.token_ids)
            spans.append(
                self.tokenizer.decode(
                    [ids[p] for p in positions[start : start + n]], skip_special_tokens=True
                )
            )
            start += n
        return spans

    def prompt_token_ids(self, messages: Sequence[dict[str, Any]]) -> list[int]:
        """`ChatEncoder.prompt_token_ids`: the ids `act` would feed for `messages`."""
        return self.chat.prompt_token_ids(messages)

    def engine_prompt(
        self, messages: Sequence[dict[str, Any]]
    ) -> tuple[list[int], list[Image.Image]]:
        """`ChatEncoder.engine_prompt`: `(ids, images)` with one image pad per image (vLLM)."""
        return self.chat.engine_prompt(messages)

    def encode_trajectory(self, trajectory: Trajectory) -> tuple[list[int], list[int]]:
        """`(ids, mask)` of a trajectory as `trajectory_logprobs` sees it (1 = policy token)."""
        ids, positions = self.chat.trajectory_ids(trajectory)
        mask = [0] * len(ids)
        for p in positions:
            mask[p] = 1
        return ids, mask
