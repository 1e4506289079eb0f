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
* `trainer-memory`: peak RSS, wall and CPU time of the scale-bias trainer over
  `--trainer-steps` steps plus its final evaluation, in a child process (needs torch;
  `benchmarks/trainer_memory.py`); `--trainer-variant` adds runs with extra overrides.
* `serve`: `grounding-gym serve` over loopback (a server subprocess): `--serve-sessions` concurrent
  `RemoteEnv` sessions x `--serve-episodes` scripted episodes each (bounded), steps per second and
  p50/p99 step latency against the same sessions on in-process envs (needs the `serve` extra).
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict

import numpy as np

from benchmarks.env_memory import MemoryCase, bench_env_memory
from benchmarks.env_memory import markdown_table as env_memory_table
from benchmarks.serve import bench_serve
from benchmarks.timing import (
    Row,
    geometric_mean,
    interleaved_medians,
    machine_description,
    markdown_table,
    median_seconds,
    photo_paths,
    rss_bytes,
)
from benchmarks.trainer_memory import TrainerMemory, bench_trainer_memory
from benchmarks.trainer_memory import markdown_table as trainer_memory_table
from benchmarks.views import bench_reset, bench_step, bench_synthetic, bench_wide
from grounding_gym.actions import parse_action
from grounding_gym.atomic import atomic_write_json
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.geometry import Box
from grounding_gym.rewards import extract_choice, grounding_reward

NAIVE_CROP = re.compile(r"<crop>\[(.*?)\]</crop>")


def naive_parse(text: str) -> list[float] | None:
    """The one-regex parser many agent repos use (no tool calls, no JSON, no checks)."""
    match = NAIVE_CROP.search(text)
    return [float(v) for v in match.group(1).split(",")] if match else None


def bench_parse(repeats: int) -> list[Row]:
    """Per-call cost of the text path against a one-regex parser (the naive baseline)."""
    actions = {
        "canonical crop": "<think>the ring is top left</think><crop>[12, 30, 400, 380]</crop>",
        "qwen tool call": '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [1, '
        "2, 300, 400]}}",
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
    ended = [False]

    def step_or_reset() -> None:  # one crop step, or a reset after the episode ended
        if ended[0]:
            env.reset()
            ended[0] = False
            return
        _, _, terminated, truncated, _ = env.step("<crop>[0, 0, 400, 400]</crop>")
        ended[0] = terminated or truncated

    step_seconds = median_seconds(step_or_reset, repeats)
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
    "trainer-memory",
    "serve",
)


BY_REPEATS: dict[str, Callable[[int], list[Row]]] = {
    "synthetic": bench_synthetic,
    "parse": bench_parse,
    "advantages": bench_advantages,
    "vector": bench_vector,
    "rollout": bench_rollout,
}
"""The sections whose only argument is `--repeats`."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--images",
        default=os.path.join("..", "shared", "data", "real-highres"),
        help="folder of real photos (default ../shared/data/real-highres; synthetic JPEGs if "
        "absent)",
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
        help="pool sizes of the env-count table in the memory section (include 1: the base)",
    )
    parser.add_argument(
        "--trainer-steps", type=int, default=10, help="steps in the trainer-memory section"
    )
    parser.add_argument(
        "--trainer-variant",
        action="append",
        default=[],
        metavar="OVERRIDES",
        help="an extra trainer-memory run with these space-separated key=value overrides "
        "(repeatable), e.g. 'env_kwargs.image_cache_bytes=402653184'",
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
    trainer_runs: list[TrainerMemory] = []
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
        elif section == "trainer-memory":
            variants = [(), *(v.split() for v in args.trainer_variant)]
            trainer_runs = bench_trainer_memory(args.trainer_steps, variants)
        else:
            rows += BY_REPEATS[section](args.repeats)
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
    if trainer_runs:
        print("\nScale-bias trainer, peak RSS (`benchmarks/trainer_memory.py`):\n")
        print(trainer_memory_table(trainer_runs))
    for section, stats in summary.items():
        print(
            f"\n{section}: geometric-mean speedup {stats['geomean_speedup']:.2f}x, lowest "
            f"{stats['min_speedup']:.2f}x"
        )
    print(f"\nTotal benchmark time: {time.perf_counter() - started:.0f} s")
    if args.out:
        payload = {
            "machine": machine_description(),
            "rows": [asdict(r) for r in rows],
            "summary": summary,
            "memory_trace": trace,
            "memory_envs": [asdict(c) for c in env_cases],
            "trainer_memory": [asdict(r) for r in trainer_runs],
        }
        atomic_write_json(args.out, payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
