"""Benchmark sections on image views: `step`, `step-pil`, `wide`, `reset`, `reset-upsample` and
`synthetic` (see the package's `__main__` docstring).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageOps

from benchmarks.timing import (
    JPEG_SUFFIXES,
    Row,
    env_for_photos,
    interleaved_medians,
    median_seconds,
    psnr,
)
from grounding_gym.actions import format_crop
from grounding_gym.data import Sample, make_dataset
from grounding_gym.geometry import Box
from grounding_gym.views import RESAMPLE, fit_to_budget, reduction_factor


def bench_step(paths: Sequence[str], repeats: int) -> list[Row]:
    """Crop the central third (per side) of each photo into the default pixel budget: the
    default env, and the env with the reference resize, against re-decoding every step."""
    rows, pil_rows = [], []
    env, pil_env = env_for_photos(paths), env_for_photos(paths, resize_backend="pil")
    for path in paths:
        name = os.path.basename(path)
        env.reset(options={"sample_id": name})
        pil_env.reset(options={"sample_id": name})
        w, h = env.unwrapped.image_handle.size
        crop = Box(w / 3, h / 3, 2 * w / 3, 2 * h / 3)
        action = format_crop(crop.as_tuple(), decimals=3)
        view_size = fit_to_budget(
            crop.width, crop.height, env.min_pixels, env.max_pixels, env.patch_size
        )

        def naive(
            path: str = path, crop: Box = crop, view_size: tuple[int, int] = view_size
        ) -> np.ndarray:
            with Image.open(path) as raw:
                image = ImageOps.exif_transpose(raw).convert("RGB")
                return np.asarray(image.resize(view_size, RESAMPLE, box=crop.as_tuple()))

        # the first crops decode the full image once (kept by the handle)
        view, ref = env.step(action)[0]["image"], pil_env.step(action)[0]["image"]
        baseline, ours, pil = interleaved_medians(
            [
                naive,
                lambda action=action: env.step(action),
                lambda action=action: pil_env.step(action),
            ],
            repeats,
        )
        case = f"{name} {w}x{h} -> {view_size[0]}x{view_size[1]}"
        rows.append(
            Row(
                "step",
                case,
                "re-decode + crop + resize",
                baseline,
                ours,
                f"{env.resize_backend}: PSNR {psnr(view, ref):.1f} dB against pil",
            )
        )
        pil_rows.append(
            Row(
                "step-pil",
                case,
                "re-decode + crop + resize",
                baseline,
                pil,
                f"{ours / pil:.2f}x the time of pil",
            )
        )
    return rows + pil_rows


def bench_wide(paths: Sequence[str], repeats: int) -> list[Row]:
    """Crop the central 2/3 (per side) where that shrinks 2x or more: the default env (pyramid
    level, then the default backend) against the exact resize of the original."""
    rows = []
    fast, exact = (
        env_for_photos(paths),
        env_for_photos(paths, fast_resize=False, resize_backend="pil"),
    )
    for path in paths:
        name = os.path.basename(path)
        fast.reset(options={"sample_id": name})
        exact.reset(options={"sample_id": name})
        w, h = fast.unwrapped.image_handle.size
        crop = Box(w / 6, h / 6, 5 * w / 6, 5 * h / 6)
        view_size = fit_to_budget(
            crop.width, crop.height, fast.min_pixels, fast.max_pixels, fast.patch_size
        )
        factor = reduction_factor(crop, view_size)
        if factor == 1:
            continue
        action = format_crop(crop.as_tuple(), decimals=3)
        exact_obs = exact.step(action)[0]["image"]
        fast.unwrapped.image_handle.image()  # decoded, so the next step times the level build alone
        start = time.perf_counter()
        fast_obs = fast.step(action)[0]["image"]
        first = time.perf_counter() - start
        baseline, ours = interleaved_medians(
            [lambda action=action: exact.step(action), lambda action=action: fast.step(action)],
            repeats,
        )
        rows.append(
            Row(
                "wide",
                f"{name} {w}x{h} 2/3 -> {view_size[0]}x{view_size[1]} (level {factor})",
                "exact resize (fast_resize=False, pil)",
                baseline,
                ours,
                f"PSNR {psnr(fast_obs, exact_obs):.1f} dB; first step {first * 1e3:.0f} ms "
                "(builds the level)",
            )
        )
    return rows


def bench_reset(paths: Sequence[str], repeats: int) -> list[Row]:
    """Reset (first view) on JPEGs, no image cache: the default env (reduced decoding, default
    backend) against full decoding with the reference resize; the note also times reduced
    decoding with the reference resize.

    JPEGs less than twice the view decode fully by default; `reset-upsample` rows time the
    opt-in 1/2-scale decode (`upsample_first_view=True`) on those."""
    rows = []
    jpegs = [p for p in paths if p.lower().endswith(JPEG_SUFFIXES)]
    ours_env = env_for_photos(jpegs, image_cache_bytes=0)
    reduced_pil = env_for_photos(jpegs, image_cache_bytes=0, resize_backend="pil")
    full = env_for_photos(jpegs, image_cache_bytes=0, reduced_decode=False, resize_backend="pil")
    upsampled = env_for_photos(jpegs, image_cache_bytes=0, upsample_first_view=True)
    extra = []
    for path in jpegs:
        name = os.path.basename(path)
        ref = full.reset(options={"sample_id": name})[0]["image"]
        fast = ours_env.reset(options={"sample_id": name})[0]["image"]
        baseline, ours, pil = interleaved_medians(
            [
                lambda env=env, name=name: env.reset(options={"sample_id": name})
                for env in (full, ours_env, reduced_pil)
            ],
            repeats,
        )
        w, h = ours_env.unwrapped.image_handle.size
        view_w, view_h = ours_env.unwrapped.view_size
        rows.append(
            Row(
                "reset",
                f"{name} {w}x{h} -> {view_w}x{view_h}",
                "full decode + pil resize",
                baseline,
                ours,
                f"PSNR {psnr(fast, ref):.1f} dB; with pil: {pil * 1e3:.1f} ms "
                f"({baseline / pil:.2f}x)",
            )
        )
        if w < 2 * view_w or h < 2 * view_h:
            up = upsampled.reset(options={"sample_id": name})[0]["image"]
            ours = median_seconds(
                lambda name=name: upsampled.reset(options={"sample_id": name}), repeats
            )
            extra.append(
                Row(
                    "reset-upsample",
                    f"{name} (upsample_first_view=True)",
                    "full decode + pil resize",
                    baseline,
                    ours,
                    f"PSNR {psnr(up, ref):.1f} dB",
                )
            )
    return rows + extra


def bench_synthetic(repeats: int) -> list[Row]:
    """Render time per synthetic sample at each size; baseline = drawing the 2K sample."""
    rows, base = [], None
    for side in (2048, 4096, 8192):
        dataset = make_dataset("synthetic-hr", num_samples=repeats + 1, seed=0, image_size=side)
        seconds = statistics.median(_timed_render(dataset[i]) for i in range(repeats))
        base = base or seconds
        rows.append(
            Row(
                "synthetic",
                f"{side}x{side} render",
                "2048x2048 render",
                base,
                seconds,
                f"{1 / seconds:.2f} samples/s",
            )
        )
    return rows


def _timed_render(sample: Sample) -> float:
    start = time.perf_counter()
    sample.image()
    return time.perf_counter() - start
