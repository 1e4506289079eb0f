"""Peak resident memory of the scale-bias trainer (the `trainer-memory` section).

Runs `grounding-gym train --config examples/scale_bias.yaml total_steps=10` (16 envs, 2 env
threads, 4096 px synthetic images, then the final 100-question evaluation) in a fresh process
per variant, and reads the child's peak RSS, CPU times and page faults from `os.wait4` (what
`/usr/bin/time -v` prints as "Maximum resident set size"). A variant is a list of extra
`key=value` overrides (e.g. another `env_kwargs.image_cache_bytes`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass

CONFIG = os.path.join("examples", "scale_bias.yaml")
"""The trainer configuration measured (relative to the repository root)."""


@dataclass
class TrainerMemory:
    """One trainer run: its overrides and what the kernel accounted to it."""

    overrides: tuple[str, ...]
    steps: int
    peak_rss_kib: int
    wall_s: float
    user_s: float
    sys_s: float
    minor_faults: int


def run_trainer(steps: int, overrides: Sequence[str] = (), config: str = CONFIG) -> TrainerMemory:
    """Train `config` for `steps` steps (final evaluation included) in a child process.

    Raises:
        RuntimeError: the trainer failed (its last output is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="gg-trainer-memory-") as out:
        command = [
            sys.executable,
            "-m",
            "grounding_gym.cli",
            "train",
            "--config",
            config,
            f"total_steps={steps}",
            f"output_dir={out}",
            "checkpoint_every=0",
            "progress=false",
            *overrides,
        ]
        log_path = os.path.join(out, "log.txt")
        start = time.perf_counter()
        with open(log_path, "w", encoding="utf-8") as log:
            child = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
            _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode != 0:
            with open(log_path, encoding="utf-8") as log:
                tail = log.read()[-2000:]
            raise RuntimeError(f"{' '.join(command)} exited {child.returncode}:\n{tail}")
    return TrainerMemory(
        overrides=tuple(overrides),
        steps=steps,
        peak_rss_kib=int(usage.ru_maxrss),  # KiB on Linux
        wall_s=wall,
        user_s=usage.ru_utime,
        sys_s=usage.ru_stime,
        minor_faults=int(usage.ru_minflt),
    )


def bench_trainer_memory(
    steps: int = 10, variants: Sequence[Sequence[str]] = ((),)
) -> list[TrainerMemory]:
    """`run_trainer` once per variant, in order (one process at a time); none without torch."""
    if importlib.util.find_spec("torch") is None:
        print("skip trainer-memory: torch is not installed (the agents extra)", file=sys.stderr)
        return []
    runs = []
    for overrides in variants:
        print(f"[bench] trainer-memory: {steps} steps {' '.join(overrides)}", file=sys.stderr)
        runs.append(run_trainer(steps, overrides))
    return runs


def markdown_table(runs: Sequence[TrainerMemory]) -> str:
    """One row per run: peak RSS (MiB, and kB / 10^6 as `/usr/bin/time -v` users read it),
    wall and CPU times, minor page faults."""
    lines = [
        "| overrides | steps | peak RSS (MiB) | peak RSS (kB / 10^6) | wall (s) | user (s) "
        "| sys (s) | minor faults |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in runs:
        lines.append(
            f"| {' '.join(r.overrides) or '(the example as is)'} | {r.steps} | "
            f"{r.peak_rss_kib / 1024:.0f} | {r.peak_rss_kib / 1e6:.2f} GB | {r.wall_s:.0f} | "
            f"{r.user_s:.0f} | {r.sys_s:.1f} | {r.minor_faults:,} |"
        )
    return "\n".join(lines)
