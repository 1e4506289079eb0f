"""Benchmark section `serve`: `grounding-gym serve` over loopback against in-process envs."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from benchmarks.timing import Row

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
