"""Speed and memory benchmarks: `python -m benchmarks` from the repository root.

Every figure is a median over `--repeats` runs, reported beside a named baseline measured in
the same process, as a ratio. Sections (select with `--only`):

* `step`: env crop step (default env) on real photos (`--images DIR`, else synthetic JPEGs)
  against re-opening and decoding the file at every step (the naive agent-framework pattern);
  `step-pil`: the same step with `resize_backend="pil"` (the reference resize).
* `wide`: a crop that shrinks 2x or more (central 2/3 of the photos of 4K and more): the
  default env (`fast_resize` pyramid) against the exact resize from the original (PSNR in the note).
* `reset`: env reset on JPEGs (default env: reduced decoding) against full decoding and the
  reference resize; `reset-upsample`: the opt-in `upsample_first_view` on the JPEGs less than
  twice the view (PSNR in the notes).

Timed cases that are compared are run interleaved (one call of each in turn), so that a load
change on a shared machine hits both alike.
* `synthetic`: generator samples per second at 2K, 4K and 8K (render included).
* `parse`: `parse_action`, `extract_choice` and the grounding reward per call.
* `advantages`: SRPO's advantage against GRPO's on the same batch (needs torch).
* `vector`: SyncVectorEnv steps per second with 1, 2 and 4 envs against one env.
* `rollout`: tiny-policy rollout tokens per second on CPU (needs torch).
* `memory`: resident memory over many synthetic samples (bounded image store), and peak RSS of
  pools of 1, 16 and 64 envs on 4K and 8K images, real and synthetic, each in a fresh process,
  as ratios to 1 env, beside the store's byte budget (`benchmarks/env_memory.py`).
* `serve`: `grounding-gym serve` over loopback (a server subprocess): `--serve-sessions` concurrent
  `RemoteEnv` sessions x `--serve-episodes` scripted episodes each (bounded), steps per second and
  p50/p99 step latency against the same sessions on in-process envs (needs the `serve` extra).
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import platform
import re
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np
from PIL import Image, ImageOps

from benchmarks.env_memory import MemoryCase, bench_env_memory
from benchmarks.env_memory import markdown_table as env_memory_table
from grounding_gym.actions import format_crop, parse_action
from grounding_gym.data import Sample, make_dataset
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.geometry import Box
from grounding_gym.rewards import extract_choice, grounding_reward
from grounding_gym.views import RESAMPLE, ImageHandle, fit_to_budget, reduction_factor

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


def bench_step(paths: Sequence[str], repeats: int) -> list[Row]:
    """Crop the central third (per side) of each photo into the default pixel budget: the
    default env, and the env with the reference resize, against re-decoding every step."""
    rows, pil_rows = [], []
    env, pil_env = env_for_photos(paths), env_for_photos(paths, resize_backend="pil")
    for path in paths:
        name = os.path.basename(path)
        env.reset(options={"sample_id": name})
        pil_env.reset(options={"sample_id": name})
        w, h = env.unwrapped._handle.size
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
        w, h = fast.unwrapped._handle.size
        crop = Box(w / 6, h / 6, 5 * w / 6, 5 * h / 6)
        view_size = fit_to_budget(
            crop.width, crop.height, fast.min_pixels, fast.max_pixels, fast.patch_size
        )
        factor = reduction_factor(crop, view_size)
        if factor == 1:
            continue
        action = format_crop(crop.as_tuple(), decimals=3)
        exact_obs = exact.step(action)[0]["image"]
        fast.unwrapped._handle.image()  # decoded, so the next step times the level build alone
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
                f"PSNR {psnr(fast_obs, exact_obs):.1f} dB; first step {first * 1e3:.0f} ms (builds the level)",
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
        w, h = ours_env.unwrapped._handle.size
        view_w, view_h = ours_env.unwrapped.view_size
        rows.append(
            Row(
                "reset",
                f"{name} {w}x{h} -> {view_w}x{view_h}",
                "full decode + pil resize",
                baseline,
                ours,
                f"PSNR {psnr(fast, ref):.1f} dB; with pil: {pil * 1e3:.1f} ms ({baseline / pil:.2f}x)",
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


NAIVE_CROP = re.compile(r"<crop>\[(.*?)\]</crop>")


def naive_parse(text: str) -> list[float] | None:
    """The one-regex parser many agent repos use (no tool calls, no JSON, no checks)."""
    match = NAIVE_CROP.search(text)
    return [float(v) for v in match.group(1).split(",")] if match else None


def bench_parse(repeats: int) -> list[Row]:
    """Per-call cost of the text path against a one-regex parser (the naive baseline)."""
    actions = {
        "canonical crop": "<think>the ring is top left</think><crop>[12, 30, 400, 380]</crop>",
        "qwen tool call": '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, 2, 300, 400]}}',
        "answer": "<answer>The answer is (B)</answer>",
        "junk 4k chars": "x" * 4000,
    }
    calls = 200
    rows = []
    for case, text in actions.items():
        baseline = (
            median_seconds(lambda t=text: [naive_parse(t) for _ in range(calls)], repeats) / calls
        )
        ours = (
            median_seconds(lambda t=text: [parse_action(t) for _ in range(calls)], repeats) / calls
        )
        rows.append(Row("parse", f"parse_action: {case}", "one-regex parser", baseline, ours))
    options = ["horizontal stripes", "vertical stripes", "checkerboard", "dots"]
    text = "I think it is (B) dots"
    baseline = median_seconds(lambda: [naive_parse(text) for _ in range(calls)], repeats) / calls
    ours = (
        median_seconds(lambda: [extract_choice(text, options) for _ in range(calls)], repeats)
        / calls
    )
    rows.append(Row("parse", "extract_choice", "one-regex parser", baseline, ours))
    crops = [Box(0, 0, 100 + i, 100 + i) for i in range(5)]
    ours = (
        median_seconds(
            lambda: [grounding_reward(crops, [Box(10, 10, 50, 50)]) for _ in range(calls)], repeats
        )
        / calls
    )
    rows.append(Row("parse", "grounding_reward (5 crops)", "one-regex parser", baseline, ours))
    return rows


def bench_advantages(repeats: int) -> list[Row]:
    """SRPO and SRPO-target against GRPO on 64 questions x 16 rollouts; calls interleaved, each
    timed sample is 20 calls (one is ~0.1-0.5 ms)."""
    try:
        from agents.algos import get_advantage_estimator
    except ImportError as err:
        print(f"skip advantages: {err}", file=sys.stderr)
        return []
    rng = np.random.default_rng(0)
    rewards = rng.integers(0, 2, size=64 * 16).astype(np.float32)
    groups = np.repeat(np.arange(64), 16)
    areas = rng.uniform(0, 0.5, size=rewards.shape)
    targets = np.repeat(10 ** rng.uniform(-4, np.log10(0.2), size=64), 16)  # per question
    lengths = rng.integers(2, 5, size=rewards.shape)
    grpo, srpo, srpo_target = (get_advantage_estimator(n) for n in ("grpo", "srpo", "srpo_target"))
    calls = 20
    fns = [
        lambda: grpo(rewards, groups),
        lambda: srpo(rewards, groups, rel_areas=areas),
        lambda: srpo_target(rewards, groups, target_rel_areas=targets, lengths=lengths),
    ]
    medians = interleaved_medians(
        [lambda fn=fn: [fn() for _ in range(calls)] for fn in fns], repeats
    )
    baseline, ours, target = (m / calls for m in medians)
    return [
        Row("advantages", "srpo vs grpo, 1024 rollouts", "grpo", baseline, ours),
        Row("advantages", "srpo_target vs grpo, 1024 rollouts", "grpo", baseline, target),
    ]


def bench_vector(repeats: int) -> list[Row]:
    """SyncVectorEnv crop steps per second with 1, 2 and 4 envs (2K synthetic images)."""
    import gymnasium as gym

    rows = []
    kwargs = {"dataset_kwargs": {"image_size": 2048, "num_samples": 8}, "max_turns": 10**6}
    base = None
    for n in (1, 2, 4):
        envs = gym.vector.SyncVectorEnv([lambda: GroundedVQAEnv(**kwargs) for _ in range(n)])
        envs.reset(seed=0)
        actions = ["<crop>[100, 100, 600, 500]</crop>"] * n
        seconds = median_seconds(lambda envs=envs, actions=actions: envs.step(actions), repeats) / n
        base = base or seconds
        rows.append(Row("vector", f"SyncVectorEnv n={n}, per env-step", "n=1", base, seconds))
        envs.close()
    return rows


def bench_rollout(repeats: int) -> list[Row]:
    """Tiny-policy acting on 2K synthetic views: policy tokens per second on CPU."""
    try:
        from agents.policies.tiny import TinyPolicy
    except ImportError as err:
        print(f"skip rollout: {err}", file=sys.stderr)
        return []
    env = GroundedVQAEnv(dataset_kwargs={"image_size": 2048, "num_samples": 8})
    obs, info = env.reset(seed=0)
    policy = TinyPolicy()
    batch = 8
    generations = policy.act([obs] * batch, [info] * batch)
    tokens = sum(len(g.token_ids) for g in generations)
    seconds = median_seconds(lambda: policy.act([obs] * batch, [info] * batch), repeats)
    step_seconds = median_seconds(
        lambda: env.step("<crop>[0, 0, 400, 400]</crop>") if not env._done else env.reset(), repeats
    )
    return [
        Row(
            "rollout",
            f"TinyPolicy act, batch {batch}",
            "one env crop step",
            step_seconds * batch,
            seconds,
            f"{tokens / seconds:.0f} tokens/s",
        )
    ]


SERVE_ENV_ID = "GroundedVQA-HR-v0"
SERVE_ENV_KWARGS = {"dataset_kwargs": {"image_size": 2048, "num_samples": 4}}
"""2K synthetic images (views of about 1 MP, the default budget); 4 samples, so each env's image
cache holds them all after the warm-up episode."""
SERVE_SCRIPT = (
    "<crop>[0, 0, 600, 400]</crop>",
    "<crop>[100, 100, 300, 300]</crop>",
    "<answer>A</answer>",
)


def run_sessions(
    make_env: Callable[[], object], sessions: int, episodes: int
) -> tuple[float, list[float]]:
    """`sessions` threads, each with its own env from `make_env`, run one untimed warm-up episode
    (renders the samples, fills the caches), then `episodes` episodes of `SERVE_SCRIPT`; returns
    (wall seconds of the timed part, every timed step's seconds)."""
    barrier = threading.Barrier(sessions + 1)

    def run_episode(env, seed: int) -> list[float]:
        env.reset(seed=seed)
        latencies = []
        for action in SERVE_SCRIPT:
            start = time.perf_counter()
            env.step(action)
            latencies.append(time.perf_counter() - start)
        return latencies

    def session(index: int) -> list[float]:
        env = None
        try:
            try:
                env = make_env()
                run_episode(env, seed=index)  # warm-up
            except BaseException:
                barrier.abort()  # nobody waits 600 s for a session that failed
                raise
            barrier.wait()
            return [
                t
                for episode in range(episodes)
                for t in run_episode(env, seed=index * 1000 + episode)
            ]
        finally:
            if env is not None:
                env.close()

    with ThreadPoolExecutor(sessions) as pool:
        futures = [pool.submit(session, i) for i in range(sessions)]
        try:
            barrier.wait(timeout=600)
        except threading.BrokenBarrierError:  # raise the failed session's own error
            errors = [f.exception() for f in futures]
            raise next(
                e for e in errors if e and not isinstance(e, threading.BrokenBarrierError)
            ) from None
        start = time.perf_counter()
        latencies = [t for f in futures for t in f.result(timeout=600)]
    return time.perf_counter() - start, latencies


def bench_serve(sessions: int, episodes: int) -> list[Row]:
    """`sessions` concurrent `RemoteEnv` sessions x `episodes` episodes over loopback (server in a
    child process) against the same threads on in-process envs: steps per second (as seconds
    per step) and p50/p99 step latency."""
    try:
        from grounding_gym.remote import RemoteEnv, serve_subprocess
    except ImportError as err:
        print(f"skip serve: {err}", file=sys.stderr)
        return []
    import gymnasium as gym

    local_wall, local = run_sessions(
        lambda: gym.make(SERVE_ENV_ID, **SERVE_ENV_KWARGS), sessions, episodes
    )
    with serve_subprocess(
        SERVE_ENV_ID, SERVE_ENV_KWARGS, max_sessions=sessions, startup_timeout_s=300
    ) as url:
        remote_wall, remote = run_sessions(lambda: RemoteEnv(url), sessions, episodes)
    case = (
        f"{SERVE_ENV_ID} 2K, {sessions} sessions x {episodes} episodes x {len(SERVE_SCRIPT)} steps"
    )
    local_sps, remote_sps = len(local) / local_wall, len(remote) / remote_wall
    rows = [
        Row(
            "serve",
            f"{case}: wall time per step (resets included)",
            "in-process env",
            1 / local_sps,
            1 / remote_sps,
            f"{remote_sps:.1f} steps/s over loopback vs {local_sps:.1f} in-process",
        )
    ]
    for q in (50, 99):
        ours, base = float(np.percentile(remote, q)), float(np.percentile(local, q))
        rows.append(
            Row(
                "serve",
                f"{case}: step latency p{q}",
                "in-process env",
                base,
                ours,
                f"{len(remote)} steps",
            )
        )
    return rows


def rss_bytes() -> int:
    """Current resident set size of this process (Linux /proc; psutil elsewhere)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        import psutil

        return psutil.Process().memory_info().rss


def bench_memory(num_samples: int, image_size: int) -> tuple[list[Row], list[tuple[int, int]]]:
    """Reset + one crop over `num_samples` distinct synthetic samples; RSS sampled as it goes.

    The view budget is about a ninth of the image's pixels, so the crop (96 % of the image per
    side) shrinks about 3x and builds a `fast_resize` pyramid level, which the image cache must
    release with the decoded image."""
    max_pixels = min(1280 * 28 * 28, max(28 * 28, (image_size // 3 // 28 * 28) ** 2))
    env = GroundedVQAEnv(
        dataset_kwargs={"image_size": image_size, "num_samples": num_samples},
        coord_frame="norm1000",
        max_pixels=max_pixels,
    )
    trace = []
    marks = {num_samples // 10, num_samples} | set(
        range(0, num_samples + 1, max(1, num_samples // 20))
    )
    for i in range(num_samples):
        env.reset(options={"sample_id": i})
        env.step("<crop>[20, 20, 980, 980]</crop>")
        if i + 1 in marks:
            trace.append((i + 1, rss_bytes()))
    at_tenth = dict(trace)[num_samples // 10]
    at_end = dict(trace)[num_samples]
    row = Row(
        "memory",
        f"RSS after {num_samples} vs {num_samples // 10} samples ({image_size}px)",
        f"RSS at {num_samples // 10}",
        at_tenth,
        at_end,
        f"{at_tenth / 2**20:.0f} MiB -> {at_end / 2**20:.0f} MiB",
    )
    return [row], trace


def markdown_table(rows: Sequence[Row]) -> str:
    lines = [
        "| section | case | baseline | baseline (ms) | ours (ms) | ratio | note |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.section == "memory":
            lines.append(
                f"| {r.section} | {r.case} | {r.baseline_name} | - | - | {r.ours_s / r.baseline_s:.3f} (end/start) | {r.unit_note} |"
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


SECTIONS = (
    "step",
    "wide",
    "reset",
    "synthetic",
    "parse",
    "advantages",
    "vector",
    "rollout",
    "memory",
    "serve",
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--images",
        default=os.path.join("..", "shared", "data", "real-highres"),
        help="folder of real photos (default ../shared/data/real-highres; synthetic JPEGs if absent)",
    )
    parser.add_argument(
        "--repeats", type=int, default=7, help="timed runs per case (median reported)"
    )
    parser.add_argument(
        "--only", nargs="*", choices=SECTIONS, default=list(SECTIONS), help="sections to run"
    )
    parser.add_argument(
        "--memory-samples", type=int, default=10_000, help="samples in the memory section"
    )
    parser.add_argument(
        "--memory-image-size",
        type=int,
        default=512,
        help="synthetic side (px) in the memory section (512 keeps the whole run under 5 minutes)",
    )
    parser.add_argument(
        "--memory-sides",
        type=int,
        nargs="*",
        default=[4096, 8192],
        help="longest image sides (px) of the env-count table in the memory section",
    )
    parser.add_argument(
        "--memory-envs",
        type=int,
        nargs="*",
        default=[1, 16, 64],
        help="pool sizes of the env-count table in the memory section (include 1: the ratios' base)",
    )
    parser.add_argument(
        "--serve-sessions", type=int, default=4, help="concurrent sessions in the serve section"
    )
    parser.add_argument(
        "--serve-episodes",
        type=int,
        default=10,
        help="timed episodes per session in the serve section",
    )
    parser.add_argument(
        "--out", default=None, help="write rows, summary and memory trace as JSON here"
    )
    args = parser.parse_args(argv)

    started = time.perf_counter()
    paths = photo_paths(args.images) if {"step", "wide", "reset"} & set(args.only) else []
    rows: list[Row] = []
    trace: list[tuple[int, int]] = []
    env_cases: list[MemoryCase] = []
    for section in args.only:
        print(f"[bench] {section} ...", file=sys.stderr, flush=True)
        if section == "step":
            rows += bench_step(paths, args.repeats)
        elif section == "wide":
            rows += bench_wide(paths, args.repeats)
        elif section == "reset":
            rows += bench_reset(paths, args.repeats)
        elif section == "serve":
            rows += bench_serve(args.serve_sessions, args.serve_episodes)
        elif section == "memory":
            memory_rows, trace = bench_memory(args.memory_samples, args.memory_image_size)
            rows += memory_rows
            env_cases = bench_env_memory(args.images, args.memory_sides, args.memory_envs)
        else:
            rows += globals()[f"bench_{section}"](args.repeats)
    summary = {}
    for section in ("step", "step-pil", "wide", "reset"):
        ratios = [r.speedup for r in rows if r.section == section]
        if ratios:
            summary[section] = {
                "geomean_speedup": geometric_mean(ratios),
                "min_speedup": min(ratios),
            }
    print(f"\nMachine: {machine_description()}")
    print(f"Command: python -m benchmarks {' '.join(argv or sys.argv[1:])}\n")
    print(markdown_table(rows))
    if env_cases:
        print("\nPeak RSS against the number of envs (`benchmarks/env_memory.py`):\n")
        print(env_memory_table(env_cases))
    for section, stats in summary.items():
        print(
            f"\n{section}: geometric-mean speedup {stats['geomean_speedup']:.2f}x, lowest {stats['min_speedup']:.2f}x"
        )
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s")
    if args.out:
        payload = {
            "machine": machine_description(),
            "rows": [asdict(r) for r in rows],
            "summary": summary,
            "memory_trace": trace,
            "memory_envs": [asdict(c) for c in env_cases],
        }
        tmp = f"{args.out}.tmp"
        with open(tmp, "w") as f:
            json.dump(payload, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
