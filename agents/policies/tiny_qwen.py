"""A ~1M-parameter Qwen2.5-VL built in code, for CPU tests and smoke runs (no download).

`build_tiny_qwen25vl(out_dir)` writes a checkpoint that loads like a real one::

    import agents.policies.tiny_qwen  # registers the image-only processor class (see below)
    model = AutoModelForImageTextToText.from_pretrained(path)
    processor = AutoProcessor.from_pretrained(path)

What it contains:

* Model: `Qwen2_5_VLForConditionalGeneration`, random weights (seeded): 2 text layers, hidden 128,
  4 heads (2 KV heads), M-RoPE sections (4, 6, 6); vision tower of depth 2, hidden 64, patch 14,
  temporal patch 2, spatial merge 2 (one image token per 28x28 px), window attention in block 0.
* Tokenizer: byte-level BPE (`Qwen2Tokenizer`, Qwen's pre-tokenizer regex) TRAINED here with
  `tokenizers` on a small corpus made of the env's prompts and the action grammar (`<crop>`,
  `<answer>`, `<think>`, digits, brackets, option letters, Qwen tool calls), plus Qwen's special
  tokens `<|endoftext|>`, `<|im_start|>`, `<|im_end|>`, `<|vision_start|>`, `<|vision_end|>`,
  `<|image_pad|>`, `<|video_pad|>` (ids 0-6). The vocabulary has `TINY_VOCAB_SIZE` entries.
* Chat template: Qwen2.5-VL's own (the one TRL also ships as `qwen2_5_vl.jinja`).
* Image processor: `Qwen2VLImageProcessorPil` (PIL/numpy; no torchvision) with the pixel budget
  `TINY_MIN_PIXELS` = 56*56 .. `TINY_MAX_PIXELS` = 112*112, so an image is at most 16 tokens.
  Give the env the same budget (`min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS,
  patch_size=28`) and the processor never resizes the env's views (see docs/lvlm.md).

Why a processor subclass: transformers 5.x builds `Qwen2_5_VLProcessor` with a video processor,
and its video processor needs torchvision, which this project does not require. The checkpoint is
therefore saved with `processor_class = "QwenVLImageOnlyProcessor"`, an image-only subclass
registered with `AutoProcessor` when this module is imported. `processor_config.json` also carries
a video-processor entry, so where torchvision is installed the stock class loads it too
(`Qwen2_5_VLProcessor.from_pretrained(path)`, as vLLM does).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import shutil
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

try:
    import torch
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import (
        AutoProcessor,
        PreTrainedConfig,
        PreTrainedModel,
        Qwen2_5_VLConfig,
        Qwen2_5_VLForConditionalGeneration,
        Qwen2VLConfig,
        Qwen2VLForConditionalGeneration,
        Qwen3VLConfig,
        Qwen3VLForConditionalGeneration,
    )
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    from transformers.models.qwen2.tokenization_qwen2 import PRETOKENIZE_REGEX, Qwen2Tokenizer
    from transformers.models.qwen2_5_vl.processing_qwen2_5_vl import Qwen2_5_VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.models.qwen2_vl.processing_qwen2_vl import Qwen2VLProcessor
    from transformers.models.qwen3_vl.processing_qwen3_vl import Qwen3VLProcessor
    from transformers.processing_utils import ProcessorMixin
except ImportError as exc:  # pragma: no cover - exercised only without the agents extra
    raise ImportError(
        f"agents.policies.tiny_qwen needs torch, transformers>=5 and tokenizers ({exc}); "
        "install them with `pip install 'grounding-gym[agents]'`."
    ) from exc

from agents.policies.qwen_chat_templates import QWEN2_VL_CHAT_TEMPLATE, QWEN3_VL_CHAT_TEMPLATE

__all__ = [
    "QWEN_SPECIAL_TOKENS",
    "QWEN25_VL_CHAT_TEMPLATE",
    "QWEN_VL_ARCHS",
    "Qwen2VLImageOnlyProcessor",
    "Qwen3VLImageOnlyProcessor",
    "QwenVLArch",
    "QwenVLImageOnlyProcessor",
    "TINY_MAX_PIXELS",
    "TINY_MIN_PIXELS",
    "TINY_VOCAB_SIZE",
    "build_tiny_qwen25vl",
    "build_tiny_qwen_vl",
    "tiny_env_kwargs",
    "tiny_qwen25vl_path",
]

QWEN_SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
)
"""Special tokens of the tiny tokenizer, ids 0..6 in this order."""

TINY_VOCAB_SIZE = 1024
"""Target BPE vocabulary size (byte alphabet + special tokens + merges)."""

TINY_MIN_PIXELS = 56 * 56
"""Smallest image the tiny processor accepts without upscaling (4 image tokens)."""

TINY_MAX_PIXELS = 112 * 112
"""Largest image the tiny processor accepts without downscaling (16 image tokens)."""

QWEN25_VL_CHAT_TEMPLATE = QWEN2_VL_CHAT_TEMPLATE
"""Qwen2.5-VL-Instruct's chat template (verbatim; the same text as Qwen2-VL-Instruct's)."""

_BUILD_FILES = ("config.json", "model.safetensors", "processor_config.json", "tokenizer.json")
_LOCK = threading.Lock()
_BUILT: dict[int, str] = {}  # seed -> first directory built in this process


# --------------------------------------------------------------------------------------------
# image-only processor (no torchvision)
# --------------------------------------------------------------------------------------------


_VISION_TOKENS = {
    "image": "<|image_pad|>",
    "video": "<|video_pad|>",
    "vision_start": "<|vision_start|>",
    "vision_end": "<|vision_end|>",
}


class _ImageOnlyProcessorMixin:
    """A stock Qwen-VL processor without its video processor (which needs torchvision).

    Mixed in before the stock class: same call signature and outputs for images and text
    (`input_ids`, `attention_mask`, `pixel_values`, `image_grid_thw`, `mm_token_type_ids`), the
    stock class's own token expansion and chat-template handling; passing `videos` raises.
    """

    def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
        if tokenizer is None:
            raise ValueError(f"{type(self).__name__} needs a tokenizer")
        for name, default in _VISION_TOKENS.items():  # what the stock classes' __init__ set
            token = getattr(tokenizer, f"{name}_token", None) or default
            setattr(self, f"{name}_token", token)
            setattr(self, f"{name}_token_id", tokenizer.convert_tokens_to_ids(token))
        kwargs.pop("video_processor", None)
        ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    def _process_videos(self, videos, **kwargs):
        raise ValueError(
            f"{type(self).__name__} has no video processor (it needs torchvision); pass images "
            "only."
        )


class QwenVLImageOnlyProcessor(_ImageOnlyProcessorMixin, Qwen2_5_VLProcessor):
    """`Qwen2_5_VLProcessor` without its video processor (see `_ImageOnlyProcessorMixin`)."""


class Qwen2VLImageOnlyProcessor(_ImageOnlyProcessorMixin, Qwen2VLProcessor):
    """`Qwen2VLProcessor` without its video processor (see `_ImageOnlyProcessorMixin`)."""


class Qwen3VLImageOnlyProcessor(_ImageOnlyProcessorMixin, Qwen3VLProcessor):
    """`Qwen3VLProcessor` without its video processor (see `_ImageOnlyProcessorMixin`)."""


def _register_processors() -> None:
    from transformers.models.auto.processing_auto import PROCESSOR_MAPPING

    for processor_class in (
        QwenVLImageOnlyProcessor,
        Qwen2VLImageOnlyProcessor,
        Qwen3VLImageOnlyProcessor,
    ):
        if processor_class not in PROCESSOR_MAPPING._extra_content.values():
            # A private string key: it never matches a real config, so native Qwen checkpoints keep
            # their own processor class; `processor_class_from_name` finds ours by its name.
            AutoProcessor.register(f"grounding_gym_{processor_class.__name__}", processor_class)


_register_processors()


# --------------------------------------------------------------------------------------------
# tokenizer
# --------------------------------------------------------------------------------------------


def _corpus(seed: int) -> list[str]:
    """Lines the tokenizer is trained on: env prompts, options, actions (deterministic)."""
    from grounding_gym.envs.grounded_vqa import DEFAULT_SYSTEM_PROMPT, FRAME_SENTENCES

    rng = np.random.default_rng(seed)
    colours = ["red", "green", "blue", "yellow", "magenta", "cyan", "orange", "purple"]
    patterns = ["horizontal stripes", "vertical stripes", "checkerboard", "dots"]
    lines = [DEFAULT_SYSTEM_PROMPT, "You are a helpful assistant."]
    for _ in range(200):
        w, h = (int(v) for v in rng.integers(28, 1400, size=2))
        big_w, big_h = (int(v) for v in rng.integers(500, 9000, size=2))
        x1, y1 = (int(v) for v in rng.integers(0, 900, size=2))
        x2, y2 = x1 + int(rng.integers(28, 500)), y1 + int(rng.integers(28, 500))
        colour, pattern = colours[rng.integers(len(colours))], patterns[rng.integers(len(patterns))]
        letter = "ABCDE"[rng.integers(5)]
        label = f"{'ABCDEFGHJK'[rng.integers(10)]}{rng.integers(10)}"
        frame = list(FRAME_SENTENCES)[rng.integers(len(FRAME_SENTENCES))]
        lines += [
            f"Question: What is inside the {colour} ring?",
            f"Question: Which digit is inside the ring labelled {label}?",
            "Options:\n(A) " + "\n(B) ".join(patterns),
            f"({letter}) {pattern}",
            f"The image is shown at {w}x{h} px (original {big_w}x{big_h} px). "
            + FRAME_SENTENCES[frame].format(w=w, h=h, W=big_w, H=big_h),
            "Reply <crop>[x1, y1, x2, y2]</crop> to zoom in, or <answer>...</answer> with the "
            f"option's letter. You have {rng.integers(1, 9)} turns.",
            f"Zoomed in on [{x1}, {y1}, {x2}, {y2}] of the original, shown at {w}x{h} px; "
            f"coordinates now refer to this view. {rng.integers(1, 5)} turns left.",
            "Your reply was not a valid action (no <crop> or <answer> tag). Reply "
            "<crop>[x1, y1, x2, y2]</crop> or <answer>...</answer>. 1 turn left.",
            f"<crop>[{x1}, {y1}, {x2}, {y2}]</crop>",
            f"<think>The {colour} ring is small; zoom in.</think><crop>[{x1}, {y1}, {x2}, "
            f"{y2}]</crop>",
            f"<answer>{letter}</answer>",
            f"<think>It shows {pattern}.</think><answer>{letter}</answer>",
            f"<box>[{x1}, {y1}, {x2}, {y2}]</box> \\boxed{{{letter}}} The answer is {letter}.",
            '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": '
            f"[{x1}, {y1}, {x2}, {y2}]}}}}</tool_call>",
            " ".join(str(v) for v in rng.integers(0, 10000, size=8)),
        ]
    return lines


@functools.lru_cache(maxsize=4)
def _trained_bpe(seed: int) -> tuple[dict[str, int], tuple[tuple[str, str], ...]]:
    """`(vocab, merges)` of the byte-level BPE trained on `_corpus(seed)` (cached: ~1 s each)."""
    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=TINY_VOCAB_SIZE,
        min_frequency=2,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_corpus(seed), trainer)
    model = json.loads(backend.to_str())["model"]
    merges = tuple(
        tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in model["merges"]
    )
    return model["vocab"], merges


def _train_tokenizer(seed: int, chat_template: str = QWEN25_VL_CHAT_TEMPLATE) -> Qwen2Tokenizer:
    vocab, merges = _trained_bpe(seed)
    tokenizer = Qwen2Tokenizer(
        vocab=dict(vocab),
        merges=list(merges),
        unk_token="<|endoftext|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS),
    )
    tokenizer.chat_template = chat_template
    ids = [tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS]
    if ids != list(range(len(QWEN_SPECIAL_TOKENS))):
        raise RuntimeError(f"special token ids {ids} are not 0..{len(ids) - 1}")
    return tokenizer


# --------------------------------------------------------------------------------------------
# model
# --------------------------------------------------------------------------------------------


def _text_config(tokenizer: Qwen2Tokenizer, **arch_specific: Any) -> dict[str, Any]:
    """The language model shared by the tiny builds: 2 layers, hidden 128, 4 heads (2 KV)."""
    return dict(
        vocab_size=len(tokenizer),
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=8192,
        bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        eos_token_id=tokenizer.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        **arch_specific,
    )


def _vision_token_ids(tokenizer: Qwen2Tokenizer) -> dict[str, int]:
    """`image_token_id`, `video_token_id`, `vision_start_token_id`, `vision_end_token_id`."""
    return {
        f"{name}_token_id": tokenizer.convert_tokens_to_ids(token)
        for name, token in _VISION_TOKENS.items()
    }


_QWEN2_MROPE = {"rope_type": "default", "mrope_section": [4, 6, 6], "rope_theta": 10000.0}
"""Qwen2/2.5-VL M-RoPE: sections (16, 24, 24) of 64 frequencies in the release, scaled to 16."""

_QWEN3_MROPE = {
    "rope_type": "default",
    "mrope_section": [6, 5, 5],
    "mrope_interleaved": True,
    "rope_theta": 5e6,
}
"""Qwen3-VL interleaved M-RoPE: sections (24, 20, 20) of 64 frequencies in the release, scaled
to 16."""


@dataclass(frozen=True)
class QwenVLArch:
    """What a tiny build takes from one released Qwen-VL architecture.

    Attributes:
        name: the transformers model type ("qwen2_vl", "qwen2_5_vl", "qwen3_vl").
        model_class: the `...ForConditionalGeneration` class.
        config_class: its config class.
        processor_class: the stock processor class, image-only (no torchvision).
        text_config: the language model's architecture-specific settings (M-RoPE, head size);
            the shared tiny widths come from `_text_config`.
        vision_config: the tiny vision tower, in the architecture's own config fields; the
            release's patch size (14 px for Qwen2/2.5-VL, 16 for Qwen3-VL), spatial merge 2 and
            temporal patch 2.
        image_mean, image_std: the release's pixel normalisation (CLIP's; 0.5 for Qwen3-VL).
        chat_template: the release's chat template (`agents.policies.qwen_chat_templates`).
    """

    name: str
    model_class: type[PreTrainedModel]
    config_class: type[PreTrainedConfig]
    processor_class: type[ProcessorMixin]
    text_config: dict[str, Any]
    vision_config: dict[str, Any]
    image_mean: tuple[float, float, float]
    image_std: tuple[float, float, float]
    chat_template: str

    def config(self, tokenizer: Qwen2Tokenizer) -> PreTrainedConfig:
        """The tiny model config: this architecture's layout, tiny widths, `tokenizer`'s ids."""
        return self.config_class(
            text_config=_text_config(tokenizer, **copy.deepcopy(self.text_config)),
            vision_config=copy.deepcopy(self.vision_config),
            **_vision_token_ids(tokenizer),
        )

    @property
    def patch_size(self) -> int:
        """Vision patch side, px."""
        return int(self.vision_config["patch_size"])

    @property
    def merge_size(self) -> int:
        """Spatial merge: merge x merge patches make one image token."""
        return int(self.vision_config["spatial_merge_size"])

    @property
    def factor(self) -> int:
        """Image side granularity, px: patch x spatial merge (one image token per factor^2 px)."""
        return self.patch_size * self.merge_size

    @property
    def min_pixels(self) -> int:
        """Tiny processor's smallest image without upscaling: (2 x factor)^2 px, 4 image tokens."""
        return (2 * self.factor) ** 2

    @property
    def max_pixels(self) -> int:
        """Tiny processor's largest image without downscaling: (4 x factor)^2 px, 16 image
        tokens."""
        return (4 * self.factor) ** 2


QWEN_VL_ARCHS: dict[str, QwenVLArch] = {
    arch.name: arch
    for arch in (
        QwenVLArch(
            name="qwen2_vl",
            model_class=Qwen2VLForConditionalGeneration,
            config_class=Qwen2VLConfig,
            processor_class=Qwen2VLImageOnlyProcessor,
            text_config={"rope_parameters": _QWEN2_MROPE},
            vision_config=dict(
                depth=2,
                embed_dim=64,
                hidden_size=128,
                mlp_ratio=2,
                num_heads=2,
                patch_size=14,
                spatial_merge_size=2,
                temporal_patch_size=2,
            ),
            image_mean=tuple(OPENAI_CLIP_MEAN),
            image_std=tuple(OPENAI_CLIP_STD),
            chat_template=QWEN2_VL_CHAT_TEMPLATE,
        ),
        QwenVLArch(
            name="qwen2_5_vl",
            model_class=Qwen2_5_VLForConditionalGeneration,
            config_class=Qwen2_5_VLConfig,
            processor_class=QwenVLImageOnlyProcessor,
            text_config={"rope_parameters": _QWEN2_MROPE},
            vision_config=dict(
                depth=2,
                hidden_size=64,
                intermediate_size=128,
                num_heads=2,
                patch_size=14,
                spatial_merge_size=2,
                temporal_patch_size=2,
                window_size=56,
                out_hidden_size=128,
                fullatt_block_indexes=[1],
            ),
            image_mean=tuple(OPENAI_CLIP_MEAN),
            image_std=tuple(OPENAI_CLIP_STD),
            chat_template=QWEN25_VL_CHAT_TEMPLATE,
        ),
        QwenVLArch(
            name="qwen3_vl",
            model_class=Qwen3VLForConditionalGeneration,
            config_class=Qwen3VLConfig,
            processor_class=Qwen3VLImageOnlyProcessor,
            text_config={"head_dim": 32, "rope_parameters": _QWEN3_MROPE},
            vision_config=dict(
                depth=2,
                hidden_size=64,
                intermediate_size=128,
                num_heads=2,
                patch_size=16,
                spatial_merge_size=2,
                temporal_patch_size=2,
                out_hidden_size=128,
                num_position_embeddings=64,
                deepstack_visual_indexes=[0],
            ),
            image_mean=(0.5, 0.5, 0.5),
            image_std=(0.5, 0.5, 0.5),
            chat_template=QWEN3_VL_CHAT_TEMPLATE,
        ),
    )
}
"""The tiny-buildable architectures by model type."""


def build_tiny_qwen_vl(
    arch: str = "qwen2_5_vl", seed: int = 0
) -> tuple[PreTrainedModel, ProcessorMixin]:
    """A tiny random `arch` model and its processor, in memory (~1 s after the first tokenizer).

    The processor has the release's settings (patch size, spatial merge 2, temporal patch 2,
    pixel normalisation, chat template; `smart_resize` into the budget
    `QWEN_VL_ARCHS[arch].min_pixels .. max_pixels`) and the tiny trained tokenizer.

    Args:
        arch: a key of `QWEN_VL_ARCHS`.
        seed: seeds the weights and the tokenizer corpus (deterministic).

    Returns:
        `(model, processor)`: the model in eval mode, float32, on CPU.

    Raises:
        ValueError: unknown `arch`.
    """
    if arch not in QWEN_VL_ARCHS:
        raise ValueError(f"arch must be one of {sorted(QWEN_VL_ARCHS)}, got {arch!r}")
    spec = QWEN_VL_ARCHS[arch]
    tokenizer = _train_tokenizer(seed, spec.chat_template)
    image_processor = Qwen2VLImageProcessorPil(
        min_pixels=spec.min_pixels,
        max_pixels=spec.max_pixels,
        patch_size=spec.patch_size,
        merge_size=spec.merge_size,
        temporal_patch_size=spec.vision_config["temporal_patch_size"],
        image_mean=list(spec.image_mean),
        image_std=list(spec.image_std),
    )
    processor = spec.processor_class(
        image_processor=image_processor, tokenizer=tokenizer, chat_template=spec.chat_template
    )
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = spec.model_class(spec.config(tokenizer)).eval()
    end_of_text = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.generation_config.eos_token_id = [
        tokenizer.convert_tokens_to_ids("<|im_end|>"),
        end_of_text,
    ]
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.bos_token_id = end_of_text
    return model, processor


def _video_processor_entry() -> dict[str, Any]:
    """`Qwen2VLVideoProcessor` settings, written by hand (building one needs torchvision)."""
    return {
        "video_processor_type": "Qwen2VLVideoProcessor",
        "do_convert_rgb": True,
        "do_normalize": True,
        "do_rescale": True,
        "do_resize": True,
        "do_sample_frames": False,
        "image_mean": [0.48145466, 0.4578275, 0.40821073],
        "image_std": [0.26862954, 0.26130258, 0.27577711],
        "merge_size": 2,
        "patch_size": 14,
        "temporal_patch_size": 2,
        "resample": 3,
        "rescale_factor": 1 / 255,
        "size": {"longest_edge": TINY_MAX_PIXELS * 2, "shortest_edge": TINY_MIN_PIXELS},
    }


def _complete(path: Path) -> bool:
    return all((path / name).is_file() for name in _BUILD_FILES)


def build_tiny_qwen25vl(out_dir: str | os.PathLike, seed: int = 0) -> str:
    """Build (or reuse) the tiny Qwen2.5-VL checkpoint in `out_dir`; return its path.

    Deterministic given `seed` (weights and tokenizer). Cached per process: the first build for
    a seed is kept, a later call with another `out_dir` copies it (a few ms), and a directory
    that already holds a complete build is returned as is.

    Args:
        out_dir: directory to write (created if needed).
        seed: seeds the weights and the tokenizer corpus.

    Returns:
        `str(out_dir)`, loadable with `AutoModelForImageTextToText.from_pretrained` and
        `AutoProcessor.from_pretrained` (after importing this module), offline.
    """
    path = Path(out_dir)
    with _LOCK:
        if _complete(path):
            return str(path)
        cached = _BUILT.get(seed)
        if (
            cached is not None
            and _complete(Path(cached))
            and Path(cached).resolve() != path.resolve()
        ):
            shutil.copytree(cached, path, dirs_exist_ok=True)
            return str(path)
        path.mkdir(parents=True, exist_ok=True)
        model, processor = build_tiny_qwen_vl("qwen2_5_vl", seed=seed)
        model.save_pretrained(path)
        processor.save_pretrained(path)
        config_file = path / "processor_config.json"
        config = json.loads(config_file.read_text())
        config["video_processor"] = _video_processor_entry()
        config_file.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
        _BUILT.setdefault(seed, str(path))
        return str(path)


def tiny_qwen25vl_path(seed: int = 0) -> str:
    """The tiny checkpoint for `seed` in a per-process temporary directory (built once)."""
    import tempfile

    with _LOCK:
        cached = _BUILT.get(seed)
    if cached is not None and _complete(Path(cached)):
        return cached
    return build_tiny_qwen25vl(Path(tempfile.mkdtemp(prefix="tiny-qwen25vl-")), seed=seed)


def tiny_env_kwargs(**overrides: Any) -> dict[str, Any]:
    """Env kwargs whose pixel budget matches the tiny processor (views are never resized again)."""
    kwargs: dict[str, Any] = {
        "min_pixels": TINY_MIN_PIXELS,
        "max_pixels": TINY_MAX_PIXELS,
        "patch_size": 28,
    }
    kwargs.update(overrides)
    return kwargs
