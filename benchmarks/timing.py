"""What every benchmark section shares: result rows, interleaved median timings, PSNR, photo
inputs, memory readings and the markdown/machine report.
"""

from __future__ import annotations

import glob
import math
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from grounding_gym.data import Sample, make_dataset
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.views import ImageHandle

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


JPEG_SUFFIXES = (".jpg", ".jpeg")


@dataclass
class Row:
    """One measured case: `ours` against `baseline` (seconds per call, medians)."""

    section: str
    case: str
    baseline_name: str
    baseline_s: float
    ours_s: float
    unit_note: str = ""

    @property
    def speedup(self) -> float:
        return self.baseline_s / self.ours_s


def interleaved_medians(fns: Sequence[Callable[[], object]], repeats: int) -> list[float]:
    """Median wall time of each of `fns` over `repeats` rounds that call each once in turn,
    after one untimed round."""
    for fn in fns:
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, fn_times in zip(fns, times, strict=True):
            start = time.perf_counter()
            fn()
            fn_times.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def median_seconds(fn: Callable[[], object], repeats: int, warmup: int = 1) -> float:
    """Median wall time of `fn()` over `repeats` calls, after `warmup` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 images, dB (inf when equal)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return math.inf if mse == 0 else 10 * math.log10(255.0**2 / mse)


def photo_paths(images_dir: str | None) -> list[str]:
    """The benchmark photos: files of `images_dir`, else synthetic JPEGs written to a temp dir."""
    if images_dir and os.path.isdir(images_dir):
        paths = sorted(
            p
            for p in glob.glob(os.path.join(images_dir, "*"))
            if p.lower().endswith(IMAGE_SUFFIXES)
        )
        if paths:
            return paths
    out_dir = tempfile.mkdtemp(prefix="gg-bench-")
    paths = []
    for i, size in enumerate([(1920, 1080), (4000, 3000), (5650, 3767)]):
        sample = make_dataset("synthetic-hr", num_samples=1, seed=i, image_size=size)[0]
        path = os.path.join(out_dir, f"synthetic-{size[0]}x{size[1]}.jpg")
        ImageHandle(sample.image).image().save(path, quality=90)
        paths.append(path)
    return paths


def env_for_photos(paths: Sequence[str], **kwargs) -> GroundedVQAEnv:
    samples = [
        Sample(id=os.path.basename(p), image=p, question="What is shown?", answer="x")
        for p in paths
    ]
    return GroundedVQAEnv(samples, coord_frame="original", max_turns=10**6, **kwargs)


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| section | case | baseline | baseline (ms) | ours (ms) | ratio | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.section == "memory":
            lines.append(
                f"| {r.section} | {r.case} | {r.baseline_name} | - | - | "
                f"{r.ours_s / r.baseline_s:.3f} (end/start) | {r.unit_note} |"
            )
        else:
            lines.append(
                f"| {r.section} | {r.case} | {r.baseline_name} | {r.baseline_s * 1e3:.4g} | "
                f"{r.ours_s * 1e3:.4g} | {r.speedup:.3g}x | {r.unit_note} |"
            )
    return "\n".join(lines)


def geometric_mean(values: Sequence[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values))


def machine_description() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        cpu = models[0] if models else cpu
    except OSError:
        pass
    try:
        import cv2

        opencv = f"OpenCV {cv2.__version__} ({cv2.getNumThreads()} threads)"
    except ImportError:
        opencv = "no OpenCV"
    return (
        f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
        f"Pillow {Image.__version__}, numpy {np.__version__}, {opencv}, {platform.system()}"
    )
