"""Each attack of the threat model (docs/reliability.md, "Threat model") reproduced for real, and
its defence: hostile checkpoints, hostile wire requests, hostile dataset files, racing writers.

A malicious pickle here really would run a shell command (it writes a marker file); the tests
assert the file never appears.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


class ShellOnUnpickle:
    """Unpickling this runs `touch <marker>` (pickle calls `os.system` to rebuild it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A `checkpoint.pt` shaped like the trainer's, whose unpickling would create `marker`."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"policy": {}, "config": {"policy": "tiny"}, "hook": ShellOnUnpickle(marker)}, path)
    return path


# ---------------------------------------------------------------------------- checkpoints
def test_malicious_checkpoint_is_refused_by_eval_policy_checkpoint(tmp_path, capsys):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError
    from grounding_gym.cli import main

    marker = tmp_path / "pwned"
    ckpt = malicious_checkpoint(tmp_path / "run" / "checkpoint.pt", marker)
    argv = [
        "eval",
        "--agent",
        "policy-checkpoint",
        "--agent-kwargs",
        json.dumps({"path": str(ckpt)}),
    ]
    with pytest.raises(UnsafeCheckpointError, match="refused.*could run code") as err:
        main([*argv, "-n", "1", "--out", str(tmp_path / "out"), "--no-progress"])
    assert str(ckpt) in str(err.value)
    assert not marker.exists()
    import torch

    torch.load(ckpt, weights_only=False)  # the attack is real: unpickling runs the command
    assert marker.exists()


def test_malicious_checkpoint_is_refused_by_a_resuming_trainer(tmp_path):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError
    from agents.trainer import Trainer
    from tests.test_trainer import tiny_cfg

    marker = tmp_path / "pwned"
    malicious_checkpoint(tmp_path / "run" / "checkpoint.pt", marker)
    trainer = Trainer(tiny_cfg(tmp_path / "run", total_steps=1))
    with pytest.raises(UnsafeCheckpointError, match="checkpoint.pt: refused"):
        trainer.train()  # resume=True: it finds output_dir/checkpoint.pt
    assert not marker.exists()


def test_malicious_checkpoint_is_refused_by_the_experiment_script(tmp_path):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError

    sys.path.insert(0, str(ROOT / "scripts"))
    import experiment_scale_bias as exp

    marker = tmp_path / "pwned"
    for arm in exp.MAIN_ARMS:
        malicious_checkpoint(exp.run_dir(tmp_path / "runs", arm, 0) / "checkpoint.pt", marker)
    config = str(ROOT / "examples" / "scale_bias.yaml")
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        exp.ship_baselines(tmp_path / "runs", tmp_path / "ship", config, eval_questions=1)
    assert not marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError, load_checkpoint_file

    good = ROOT / "baselines" / "scale-bias" / "reader.pt"
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(UnsafeCheckpointError, match=f"{cut}: not a readable torch checkpoint"):
        load_checkpoint_file(cut)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(UnsafeCheckpointError, match="empty.pt: not a readable"):
        load_checkpoint_file(tmp_path / "empty.pt")


def test_shipped_checkpoints_load_without_unpickling():
    pytest.importorskip("torch")
    from agents.checkpoint import load_checkpoint_file

    files = sorted((ROOT / "baselines").rglob("*.pt"))
    assert len(files) >= 6
    for file in files:
        assert isinstance(load_checkpoint_file(file), dict), file


def test_trainer_checkpoint_round_trips_rng_state_through_weights_only(tmp_path):
    pytest.importorskip("torch")
    import random

    import numpy as np
    import torch

    from agents.checkpoint import (
        atomic_torch_save,
        get_rng_state,
        load_checkpoint_file,
        set_rng_state,
    )

    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    np.random.standard_normal()  # a cached gaussian in NumPy's state
    atomic_torch_save({"rng": get_rng_state()}, tmp_path / "c.pt")
    want = (random.random(), np.random.standard_normal(), torch.rand(1).item())
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    set_rng_state(load_checkpoint_file(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.standard_normal(), torch.rand(1).item()) == want
