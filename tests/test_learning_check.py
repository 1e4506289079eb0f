"""The LVLM path learns: GRPO from a cold-start SFT raises held-out reward, a flipped advantage
sign lowers it (the reduced learning check of docs/lvlm.md, "Learning check")."""

from __future__ import annotations

import pytest

pytest.importorskip("transformers")
pytest.importorskip("datasets")
torch = pytest.importorskip("torch")

from agents.learning_check import (  # noqa: E402
    FLIP_STEPS,
    REDUCED,
    FlippedSignTrainer,
    heldout_metrics,
    rl_trainer,
    sft_start,
)

RISE_MARGIN = 0.05
"""GRPO must beat its SFT start by this much held-out reward (docs/lvlm.md: over seeds 0-4 of
`python -m agents.learning_check --rise`, the smallest rise was several times this margin)."""

FALL_MARGIN = 0.05
"""A flipped advantage sign must lose this much held-out reward against the SFT start."""

SEED = 0
EVAL_SEED = 10**6 + SEED


@pytest.fixture(scope="module")
def start(tmp_path_factory):
    """The SFT start of the reduced check: trainer (SFT weights), checkpoint, held-out reward."""
    trainer, checkpoint, losses = sft_start(REDUCED, SEED, tmp_path_factory.mktemp("check"))
    assert losses[-1] < losses[0]
    reward = heldout_metrics(trainer, REDUCED.eval_rollouts, EVAL_SEED)["sampled/reward"]
    return trainer.cfg, checkpoint, reward


def reward_after(start, steps: int, trainer_class) -> float:
    cfg, checkpoint, _ = start
    rl = rl_trainer(cfg, checkpoint, "grpo", steps, trainer_class)
    rl.train()
    return heldout_metrics(rl, REDUCED.eval_rollouts, EVAL_SEED)["sampled/reward"]


@pytest.mark.slow
def test_grpo_raises_held_out_reward_above_the_sft_start(start):
    from agents.trainer import Trainer

    before = start[2]
    after = reward_after(start, REDUCED.rl_steps, Trainer)
    assert after > before + RISE_MARGIN, f"held-out reward {before:.3f} -> {after:.3f}"


def test_a_flipped_advantage_sign_lowers_held_out_reward(start):
    before = start[2]
    after = reward_after(start, FLIP_STEPS, FlippedSignTrainer)
    assert after < before - FALL_MARGIN, f"held-out reward {before:.3f} -> {after:.3f}"
