"""Crash safety: checkpoints are written atomically; a run killed with SIGKILL resumes.

Unit tests make a checkpoint write fail half-way (a full disk, a failing `fsync` or `os.replace`)
and check that the previous checkpoint is intact and no temporary file is left. The end-to-end
test kills a real `grounding-gym train` subprocess at a random point after its first checkpoint;
the same command then finishes the run. Nothing may be corrupted or lost: every metrics row
appears exactly once and the resumed run's metrics equal an uninterrupted run's. The kill point
comes from a seed printed with any failure; `KILL_SEED=<seed> pytest
tests/agents/test_crash_safety.py`
replays it (as closely as timing allows).
"""

from __future__ import annotations

import errno
import io
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from agents.checkpoint import atomic_torch_save
from tests.agents.test_trainer import Trainer, pool, tiny_cfg
from tests.conftest import toy_samples

TOTAL_STEPS = 12
CONFIG = f"""
exp_name: crash-test
seed: 3
torch_threads: 1
env_id: GroundedVQA-HR-v0
env_kwargs:
  max_pixels: 50176
  max_turns: 2
  dataset_kwargs:
    {{num_samples: 64, seed: 0, image_size: 512, families: [read], content_kinds: [pattern]}}
num_envs: 4
env_threads: 0
train_samples: 48
eval_samples: 4
questions_per_step: 2
g1: 2
g2: 1
total_steps: {TOTAL_STEPS}
eval_every: 4
checkpoint_every: 1
tensorboard: false
progress: false
"""


def train_command(config: Path, out: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "grounding_gym.cli",
        "train",
        "--config",
        str(config),
        "--output_dir",
        str(out),
    ]


def metric_rows(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.slow
def test_sigkill_mid_training_then_resume_matches_an_uninterrupted_run(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(CONFIG)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}

    straight = tmp_path / "straight"
    subprocess.run(
        train_command(config, straight), check=True, env=env, timeout=600, capture_output=True
    )

    crashed = tmp_path / "crashed"
    proc = subprocess.Popen(
        train_command(config, crashed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    metrics = crashed / "metrics.jsonl"
    deadline = time.monotonic() + 300
    seed = int(os.environ.get("KILL_SEED", random.SystemRandom().randrange(2**32)))
    rng = random.Random(seed)
    kill_after_rows, delay = rng.randint(1, TOTAL_STEPS // 2), rng.uniform(0, 0.3)
    where = f"KILL_SEED={seed}: killed after {kill_after_rows} metrics rows + {delay:.3f} s"
    print(where)  # shown with any failure (captured output)
    while time.monotonic() < deadline and proc.poll() is None:
        rows = len(metrics.read_text().splitlines()) if metrics.exists() else 0
        if rows >= kill_after_rows and (crashed / "checkpoint.pt").exists():
            break
        time.sleep(0.02)
    assert proc.poll() is None, (
        f"{where}: training finished before it could be killed; make the run longer"
    )
    time.sleep(delay)  # land anywhere inside the next step
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, where

    # Whatever the kill interrupted, the checkpoint on disk is whole and loadable.
    state = torch.load(crashed / "checkpoint.pt", weights_only=True)
    assert 1 <= state["step"] < TOTAL_STEPS, where

    subprocess.run(
        train_command(config, crashed), check=True, env=env, timeout=600, capture_output=True
    )
    rows = metric_rows(crashed)
    assert [row["step"] for row in rows] == list(range(1, TOTAL_STEPS + 1)), (
        where
    )  # each exactly once
    assert rows == metric_rows(straight), where


# ---------------------------------------------------------------- a write that fails half-way


def disk_full_half_way(monkeypatch) -> None:
    """Make `torch.save` write half of its bytes, then fail as a full disk does."""
    real_save = torch.save

    def save(obj, f, *args, **kwargs):
        buffer = io.BytesIO()
        real_save(obj, buffer, *args, **kwargs)
        data = buffer.getvalue()
        if isinstance(f, (str, os.PathLike)):
            with open(f, "wb") as handle:
                handle.write(data[: len(data) // 2])
        else:
            f.write(data[: len(data) // 2])
            f.flush()
        raise OSError(errno.ENOSPC, "No space left on device (test)")

    monkeypatch.setattr(torch, "save", save)


def fail_at(monkeypatch, name: str) -> None:
    """Make `os.<name>` (fsync or replace) fail once the temporary file is complete."""

    def fail(*args, **kwargs):
        raise OSError(errno.EIO, f"{name} failed (test)")

    monkeypatch.setattr(os, name, fail)


def assert_previous_checkpoint_intact(folder: Path, previous: dict) -> None:
    assert sorted(p.name for p in folder.iterdir()) == ["checkpoint.pt"], (
        "a temporary file was left"
    )
    state = torch.load(folder / "checkpoint.pt", weights_only=True)
    assert state.keys() == previous.keys()
    for key, value in previous.items():
        assert (
            torch.equal(state[key], value)
            if isinstance(value, torch.Tensor)
            else state[key] == value
        )


@pytest.mark.parametrize("failure", ["disk full half-way", "fsync", "replace"])
def test_a_checkpoint_write_that_fails_keeps_the_previous_checkpoint(
    tmp_path, monkeypatch, failure
):
    path = tmp_path / "checkpoint.pt"
    previous = {"step": 3, "weights": torch.arange(50_000, dtype=torch.float32)}
    atomic_torch_save(previous, path)
    with monkeypatch.context() as patch:
        if failure == "disk full half-way":
            disk_full_half_way(patch)
        else:
            fail_at(patch, failure)
        with pytest.raises(OSError, match="test"):
            atomic_torch_save({"step": 4, "weights": torch.zeros(50_000)}, path)
    assert_previous_checkpoint_intact(tmp_path, previous)


def test_trainer_checkpoint_survives_a_failed_save(tmp_path, monkeypatch):
    """The trainer's own `save_checkpoint`: a save that dies half-way leaves step 1's checkpoint."""
    out = tmp_path / "run"
    trainer = Trainer(tiny_cfg(out, total_steps=1, checkpoint_every=1), envs=pool(toy_samples()))
    trainer.train()
    previous = torch.load(out / "checkpoint.pt", weights_only=True)
    assert previous["step"] == 1
    trainer.step += 1
    with monkeypatch.context() as patch:
        disk_full_half_way(patch)
        with pytest.raises(OSError, match="No space left"):
            trainer.save_checkpoint()
    assert not list(out.glob(".*.tmp")), "a temporary file was left"
    state = torch.load(out / "checkpoint.pt", weights_only=True)
    assert state["step"] == 1 and state["metrics_bytes"] == previous["metrics_bytes"]
    for name, tensor in previous["policy"].items():
        assert torch.equal(state["policy"][name], tensor), name
