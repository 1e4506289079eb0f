"""agents/trainer.py: config parsing and checks, algorithms by name, resume == uninterrupted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.config import TrainerConfig, load_config, parse_args
from agents.trainer import Trainer, main
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv

BUDGET = {"min_pixels": 28 * 28, "max_pixels": 224 * 168}


def tiny_cfg(out: Path, **kwargs) -> TrainerConfig:
    base = dict(
        output_dir=str(out),
        train_samples=4,
        eval_samples=2,
        questions_per_step=2,
        g1=2,
        g2=2,
        num_envs=3,
        env_threads=0,
        policy_kwargs={"grid": 8},
        tensorboard=False,
        progress=False,
        total_steps=4,
        checkpoint_every=2,
        lr=1e-2,
    )
    base.update(kwargs)
    return TrainerConfig(**base)


def pool(dataset, n: int = 3) -> list[GroundedVQAEnv]:
    return [GroundedVQAEnv(dataset, **BUDGET) for _ in range(n)]


# ---------------------------------------------------------------- config


def test_yaml_overrides_and_flags(tmp_path):
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump({"algo": "grpo", "lr": 0.5, "env_kwargs": {"max_turns": 5}}))
    cfg = load_config(path, ["lr=1e-3", "env_kwargs.max_pixels=200704", "bin_edges=[0.01, 0.1]"])
    assert cfg.algo == "grpo" and cfg.lr == pytest.approx(1e-3)
    assert cfg.env_kwargs == {"max_turns": 5, "max_pixels": 200704}
    assert cfg.bin_edges == (0.01, 0.1)
    cfg = parse_args(
        ["--config", str(path), "--lr", "0.01", "--g1", "8", "g2=1", "--algo", "dr_grpo"]
    )
    assert (cfg.lr, cfg.g1, cfg.g2, cfg.algo) == (0.01, 8, 1, "dr_grpo")
    assert cfg.rollouts_per_question == 8 and cfg.rollouts_per_step == 8 * cfg.questions_per_step
    cfg = parse_args(["--config", str(path), "lr=2e-3", "--loss.agg", "seq-mean-token-mean"])
    assert cfg.lr == pytest.approx(2e-3) and cfg.loss.agg == "seq-mean-token-mean"


def test_help_shows_field_docs(capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "advantage estimator name" in text and "key=value" in text


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"g1": 1, "g2": 1}, r"g1 \* g2 \(1 \* 1 = 1\) must be >= 2"),
        ({"algo": "srp"}, "Did you mean 'srpo'"),
        (
            {"algo": "grpo", "adv_kwargs": {"no_box": "exclude"}},
            r"adv_kwargs \['no_box'\] are not options",
        ),
        ({"bin_names": ["a", "b"]}, r"bin_names \(2 names\) must have len\(bin_edges\) \+ 1 = 3"),
        ({"loss": {"clip_low": 1.5}}, r"clip_low \(1.5\)"),
        ({"policy": "tinny"}, "not registered"),
    ],
)
def test_post_init_checks_name_the_numbers(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainerConfig(**kwargs)


def test_unknown_key_suggests_the_right_one(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'lr'"):
        load_config(None, ["lrr=1"])
    with pytest.raises(ValueError, match="key=value"):
        load_config(None, ["lr"])


# ---------------------------------------------------------------- algorithm by name

_SEEN: dict[str, np.ndarray] = {}


def _probe(rewards, group_ids, *, rel_areas, scale: float = 1.0):
    _SEEN["rel_areas"] = np.asarray(rel_areas)
    _SEEN["scale"] = np.asarray(scale)
    return torch.zeros(len(np.asarray(rewards)), dtype=torch.float32)


@pytest.fixture
def probe_estimator(monkeypatch):
    """Register `_probe` for one test only (the registry is global)."""
    from agents.algos import advantages

    monkeypatch.setattr(advantages, "ESTIMATORS", advantages.ESTIMATORS.copy())
    advantages.register_adv_est("test_trainer_probe")(_probe)


@pytest.mark.usefixtures("probe_estimator")
def test_extras_are_passed_only_when_the_estimator_needs_them(tmp_path, toy_dataset):
    cfg = tiny_cfg(tmp_path, algo="test_trainer_probe", adv_kwargs={"scale": 2.0})
    trainer = Trainer(cfg, envs=pool(toy_dataset))
    trajs = trainer.collect([0, 1], seed=0)
    trainer.advantages(trajs)
    expected = [t.first_crop_rel_area for t in trajs]
    np.testing.assert_array_equal(_SEEN["rel_areas"], expected)
    assert float(_SEEN["scale"]) == 2.0
    trainer.cfg = tiny_cfg(tmp_path, algo="grpo")  # grpo takes no rel_areas: would TypeError
    adv, stats = trainer.advantages(trajs)
    assert adv.shape == (len(trajs),) and "train/adv_std" in stats


# ---------------------------------------------------------------- training and resume


def test_training_writes_namespaced_metrics_and_a_checkpoint(tmp_path, toy_dataset):
    cfg = tiny_cfg(tmp_path, total_steps=2, loss={"beta": 0.04}, dynamic_sampling=True, g1=2, g2=1)
    history = Trainer(cfg, envs=pool(toy_dataset)).train()
    assert [row["step"] for row in history] == [1, 2]
    row = history[-1]
    for key in (
        "train/loss",
        "train/approx_kl",
        "train/kl",
        "train/clipfrac",
        "train/grad_norm",
        "rollout/reward",
        "rollout/reward_answer",
        "rollout/acc",
        "eval/acc",
        "eval/miou",
    ):
        assert key in row, key
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["step"] == 2 and state["ref"] is not None
    assert state["metrics_bytes"] == (tmp_path / "metrics.jsonl").stat().st_size
    assert not list(tmp_path.glob(".*.tmp"))  # atomic writes leave no temporaries
    assert yaml.safe_load((tmp_path / "config.yaml").read_text())["loss"]["beta"] == 0.04


@pytest.mark.slow
def test_resume_after_a_crash_reproduces_the_uninterrupted_metrics(
    tmp_path, toy_dataset, monkeypatch
):
    straight = tmp_path / "straight"
    Trainer(tiny_cfg(straight), envs=pool(toy_dataset)).train()
    with pytest.warns(UserWarning, match="already holds a finished run"):  # not silent
        again = Trainer(tiny_cfg(straight), envs=pool(toy_dataset)).train()
    assert [row["step"] for row in again] == [1, 2, 3, 4]  # nothing new was trained

    crashed = tmp_path / "crashed"
    original = Trainer.train_step

    def crash_at_step_4(self):
        if self.step == 3:  # rows 1-3 are logged, the last checkpoint is at step 2
            raise KeyboardInterrupt
        return original(self)

    monkeypatch.setattr(Trainer, "train_step", crash_at_step_4)
    with pytest.raises(KeyboardInterrupt):
        Trainer(tiny_cfg(crashed), envs=pool(toy_dataset)).train()
    assert len((crashed / "metrics.jsonl").read_text().splitlines()) == 3
    monkeypatch.setattr(Trainer, "train_step", original)

    resumed = Trainer(tiny_cfg(crashed), envs=pool(toy_dataset))  # fresh process state
    torch.manual_seed(12345)  # resuming must not depend on the RNG state it starts from
    history = resumed.train()
    assert [row["step"] for row in history] == [1, 2, 3, 4]
    assert (crashed / "metrics.jsonl").read_bytes() == (straight / "metrics.jsonl").read_bytes()


def test_cli_main_trains_on_the_synthetic_env(tmp_path, capsys):
    config = {
        "env_kwargs": {
            "max_pixels": 112 * 112,
            "max_turns": 3,
            "dataset_kwargs": {
                "num_samples": 12,
                "image_size": 256,
                "families": ["read"],
                "content_kinds": ["pattern"],
                "target_rel_area": [0.01, 0.05],
            },
        },
        "train_samples": 8,
        "eval_samples": 2,
        "questions_per_step": 1,
        "num_envs": 2,
        "policy_kwargs": {"grid": 8},
        "tensorboard": False,
        "progress": False,
    }
    path = tmp_path / "cfg.yaml"
    path.write_text(yaml.safe_dump(config))
    assert (
        main(["--config", str(path), "--output_dir", str(tmp_path / "run"), "total_steps=1"]) == 0
    )
    *report, summary = capsys.readouterr().out.strip().splitlines()
    out = json.loads("\n".join(report))
    assert out["step"] == 1 and "eval/acc" in out
    assert summary.startswith("scale bias (mean of 1 steps): rollout_share")
