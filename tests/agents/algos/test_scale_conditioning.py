"""Conditional crop-scale choice: the dead-group and per-(crop, target) reward diagnostics, the
conditioning index (per step, held-out probe), TinyPolicy's scale head and the scale SFT."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from agents.algos.diagnostics import crop_choice, scale_bias_metrics
from agents.policies.tiny import EXTENT_FLOOR, TinyPolicy
from agents.probe import FirstViews, first_crop_rel_areas
from agents.scale_sft import conditioning, scale_targets, train_scale
from agents.trainer import Trainer
from grounding_gym.scale import scale_bins
from tests.agents.algos.test_scale_bias import small_scale_bias_config as small_config

ROOT = Path(__file__).resolve().parents[3]
SMALL, LARGE = 5e-4, 0.1  # target relative areas: bins "small" (< 1e-3) and "large" (>= 1e-2)
CROP_EDGES = (0.02, 0.15)  # crop bins of the three crop scales' areas 0.0036, 0.0625, 0.25
NAMES = ("small", "medium", "large")


# ---------------------------------------------------------------- diagnostics, by hand


def test_dead_groups_and_reward_per_crop_and_target_bin_by_hand():
    # q0 (small target): rewards all 0 -> dead; q1 (small): alive; q2 (large): all 1.1 -> dead.
    rewards = [0.0, 0.0, 0.0, 1.1, 0.1, 0.1, 1.1, 1.1, 1.1]
    groups = [0, 0, 0, 1, 1, 1, 2, 2, 2]
    targets = [SMALL] * 6 + [LARGE] * 3
    crops = [0.25, 0.25, 0.0036, 0.0036, 0.25, math.nan, 0.25, 0.0625, 0.25]
    out = scale_bias_metrics(
        advantages=np.zeros(9),
        lengths=np.full(9, 2),
        rewards=np.array(rewards),
        group_ids=np.array(groups),
        target_rel_areas=np.array(targets),
        crop_rel_areas=np.array(crops),
        bin_edges=(1e-3, 1e-2),
        bin_names=NAMES,
        crop_bin_edges=CROP_EDGES,
        crop_names=NAMES,
    )
    assert out["dead_group_frac"] == pytest.approx(2 / 3)
    assert out["dead_group_frac/small"] == pytest.approx(1 / 2)
    assert out["dead_group_frac/large"] == pytest.approx(1.0)
    assert "dead_group_frac/medium" not in out  # no group of that bin
    # small targets: crop "large" (0.25) rewards 0, 0, 0.1; crop "small" (0.0036) 0, 1.1; none 0.1
    assert out["crop_reward/large/small"] == pytest.approx(0.1 / 3)
    assert out["crop_reward/small/small"] == pytest.approx(0.55)
    assert out["crop_reward/none/small"] == pytest.approx(0.1)
    assert out["crop_reward/large/large"] == pytest.approx(1.1)
    assert out["crop_reward/medium/large"] == pytest.approx(1.1)
    assert "crop_reward/small/large" not in out  # an empty cell


def test_crop_choice_and_conditioning_index_by_hand():
    # 4 small targets: small crop 3 times, no crop once; 2 large targets: small crop once.
    crops = [0.0036, 0.0036, 0.0036, math.nan, 0.0036, 0.25]
    targets = [SMALL] * 4 + [LARGE] * 2
    out = crop_choice(
        np.array(crops),
        np.array(targets),
        bin_edges=(1e-3, 1e-2),
        bin_names=NAMES,
        crop_bin_edges=CROP_EDGES,
        crop_names=NAMES,
    )
    assert out["p_crop_small_small"] == 0.75 and out["p_crop_large_small"] == 0.0
    assert out["p_crop_small_large"] == 0.5 and out["p_crop_large_large"] == 0.5
    assert out["conditioning_index"] == pytest.approx(0.25)
    one_bin = crop_choice(
        np.array([0.0036]),
        np.array([SMALL]),
        bin_edges=(1e-3, 1e-2),
        bin_names=NAMES,
        crop_bin_edges=CROP_EDGES,
        crop_names=NAMES,
    )
    assert "conditioning_index" not in one_bin  # no large target to compare with


def test_paper_srpo_shape_is_grpo_on_the_scale_bias_crops():
    """K = 3 equal-width bins put all three crops (0.0036, 0.0625, 0.25 of the image) in bin 0."""
    from agents.algos import get_advantage_estimator

    rng = np.random.default_rng(0)
    rewards = rng.choice([0.2, 1.2], size=32)
    groups = np.repeat(np.arange(4), 8)
    areas = rng.choice([0.0036, 0.0625, 0.25], size=32)
    paper = get_advantage_estimator("srpo")(rewards, groups, rel_areas=areas, num_bins=3)
    assert torch.equal(paper, get_advantage_estimator("grpo")(rewards, groups))
    ours = get_advantage_estimator("srpo")(rewards, groups, rel_areas=areas, bin_edges=CROP_EDGES)
    assert not torch.equal(ours, paper)  # the task's crop-scale edges do separate them


def test_scale_curiosity_by_hand_and_in_the_trainer(tmp_path):
    from agents.algos.exploration import scale_curiosity

    # one group of 8: small crop once (share 1/8), medium twice (1/4), large 4 times, no crop once
    areas = np.array([0.0036, 0.0625, 0.0625, 0.25, 0.25, 0.25, 0.25, math.nan])
    bonus = scale_curiosity(areas, np.zeros(8), CROP_EDGES, target_share=0.3, coef=0.5)
    expected = [0.5 * (0.3 - 1 / 8), 0.025, 0.025, 0, 0, 0, 0, 0]
    np.testing.assert_allclose(bonus, expected, atol=1e-12)
    with pytest.raises(ValueError, match="target_share"):
        scale_curiosity(areas, np.zeros(8), CROP_EDGES, target_share=1.5)

    cfg = small_config(tmp_path, "total_steps=1", "g1=8", "scale_curiosity=[1.0, 0.5]")
    trainer = Trainer(cfg)
    trajs = trainer.collect([0, 1], seed=0)
    _, with_bonus = trainer.advantages(trajs)
    trainer.cfg.scale_curiosity = None
    _, without = trainer.advantages(trajs)
    from agents.rollout import rollout_arrays

    arrays = rollout_arrays(trajs)
    added = scale_curiosity(
        arrays["rel_areas"], arrays["group_ids"], cfg.crop_edges, target_share=1.0
    )
    assert added.any()  # some scale is rare in some group
    assert with_bonus["rollout_share/small"] == without["rollout_share/small"]
    target = scale_bins(arrays["target_rel_areas"], cfg.bin_edges)
    for b, name in enumerate(NAMES):  # the bin rewards the estimator saw include the bonus
        if f"bin_reward/{name}" in without:
            gained = with_bonus[f"bin_reward/{name}"] - without[f"bin_reward/{name}"]
            assert gained == pytest.approx(added[target == b].mean())


# ---------------------------------------------------------------- the scale head


def _target_map(cells: list[tuple[int, int]], grid: int = 48) -> torch.Tensor:
    """(1, 1, grid, grid) logits: 30 on `cells`, 0 elsewhere (a ring outline)."""
    target = torch.zeros(1, 1, grid, grid)
    for i, j in cells:
        target[0, 0, i, j] = 30.0
    return target


def test_extent_coverage_tells_a_point_from_a_wide_ring():
    policy = TinyPolicy(scales=(0.5, 0.25, 0.06), scale_head=True)
    point = policy.extent_coverage(_target_map([(20, 20)]))[0]
    assert point.tolist() == pytest.approx([1.0, 1.0, 1.0], abs=1e-6)
    # a square outline 17 cells wide: 64 cells; the 3-cell footprint holds at most 3 + 2 = 5 of
    # them (a corner), the 25-cell footprint all of them
    outline = [
        (i, j) for i in range(10, 27) for j in range(10, 27) if i in (10, 26) or j in (10, 26)
    ]
    ring = policy.extent_coverage(_target_map(outline))[0]
    assert ring[0] == pytest.approx(1.0, abs=1e-6)
    assert ring[2] == pytest.approx(5 / len(outline), abs=1e-6)
    assert EXTENT_FLOOR <= ring[2] < ring[1] < ring[0]


def test_scale_head_starts_at_zero_and_loads_checkpoints_without_it():
    torch.manual_seed(0)
    plain = TinyPolicy(grid=8, scales=(0.5, 0.25, 0.06))
    head = TinyPolicy(grid=8, scales=(0.5, 0.25, 0.06), scale_head=True)
    result = head.load_state_dict(plain.state_dict())  # no scale_extent key: filled with zeros
    assert not result.missing_keys and not result.unexpected_keys
    assert torch.count_nonzero(head.scale_extent.weight) == 0
    assert "scale_extent.weight" not in plain.state_dict()
    with pytest.raises(RuntimeError, match="scale_extent"):
        plain.load_state_dict(head.state_dict())  # the other way round is a real mismatch


# ---------------------------------------------------------------- scale SFT and the probe


def test_scale_targets_put_the_asked_mass_on_the_smallest_scale():
    bins = np.array([0, 2, 0])
    t = scale_targets(bins, (0.5, 0.25, 0.06), (0.6, 0.2), num_bins=3)
    expected = [[0.2, 0.2, 0.6], [0.4, 0.4, 0.2], [0.2, 0.2, 0.6]]
    np.testing.assert_allclose(t.numpy(), np.array(expected), atol=1e-6)
    with pytest.raises(ValueError, match="smallest and the largest bin"):
        scale_targets(np.array([1]), (0.5, 0.25, 0.06), (1.0, 0.0), num_bins=3)


@pytest.mark.parametrize("trained", ["scale", "all"])
def test_scale_sft_moves_the_scale_choice_and_leaves_the_reader(tmp_path, trained):
    import gymnasium as gym

    from agents.reader_sft import READER_PARAMETERS
    from agents.scale_sft import SCALE_PARAMETERS

    cfg = small_config(tmp_path, "g1=8", "policy_kwargs.scale_head=true")
    env = gym.make(cfg.env_id, **cfg.env_kwargs)
    pool = FirstViews(env, range(10), cfg.bin_edges)
    views = pool.take(range(8))
    assert views.bins.tolist() == pool.bins[:8].tolist() and len(views) == 8
    assert set(views.bins.tolist()) == {0, 2}  # the 20/80 mix still has both groups in 8
    torch.manual_seed(0)
    policy = TinyPolicy(**cfg.policy_kwargs)
    reader = {n: p.detach().clone() for n, p in policy.named_parameters()}
    targets = scale_targets(views.bins, policy.scales, (1.0, 0.0), num_bins=3)
    losses = train_scale(policy, views, targets, epochs=40, lr=3e-2, trained=trained)
    assert losses[-1] < losses[0]
    for name, p in policy.named_parameters():
        top = name.split(".")[0]
        frozen = top in READER_PARAMETERS or (trained == "scale" and top not in SCALE_PARAMETERS)
        assert torch.equal(p, reader[name]) == frozen, name
    assert not torch.equal(policy.scale_extent.weight, torch.zeros(3, 3))
    after = conditioning(policy, views, 3)
    assert after["prob_small_small"] > after["prob_small_large"]  # on its training views
    # the probe reads the same greedy choice through the policy's action text
    areas = first_crop_rel_areas(policy, views)
    greedy_small = areas < CROP_EDGES[0]
    assert greedy_small[views.bins == 0].mean() == pytest.approx(after["greedy_small_small"])
    assert greedy_small[views.bins == 2].mean() == pytest.approx(after["greedy_small_large"])


def test_every_step_logs_dead_groups_crop_rewards_and_the_heldout_probe(tmp_path):
    cfg = small_config(tmp_path, "algo=srpo", "g1=4", "g2=2", "total_steps=2", "probe_every=1")
    trainer = Trainer(cfg)
    trainer.train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert 0.0 <= row["dead_group_frac"] <= 1.0
        assert any(k.startswith("crop_reward/") for k in row)
        assert row["heldout/conditioning_index"] == pytest.approx(
            row["heldout/p_crop_small_small"] - row["heldout/p_crop_small_large"]
        )
    # the probe's last reading equals the final greedy evaluation's first-crop choice
    final = rows[-1]
    assert final["heldout/p_crop_small_small"] == pytest.approx(final["eval/p_crop_small_small"])
    assert final["heldout/conditioning_index"] == pytest.approx(final["eval/conditioning_index"])


@pytest.mark.slow
def test_acceptance_command_srpo_4x2_logs_dead_group_frac(tmp_path):
    """`grounding-gym train --config examples/scale_bias.yaml --algo srpo g1=4 g2=2` at full
    size (`total_steps=1`, 4 held-out questions)."""
    cmd = [
        sys.executable,
        "-m",
        "grounding_gym.cli",
        "train",
        "--config",
        str(ROOT / "examples" / "scale_bias.yaml"),
        "--algo",
        "srpo",
        "g1=4",
        "g2=2",
        "total_steps=1",
        "questions_per_step=2",
        f"output_dir={tmp_path}",
        "eval_samples=4",
        "progress=false",
        "tensorboard=false",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "dead_group_frac" in done.stdout.strip().splitlines()[-1]
    (row,) = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "dead_group_frac" in row and "adv_share/small" in row
    rollouts = sum(row.get(f"rollout/n_{b}", 0) for b in NAMES)
    assert rollouts == 16  # 2 questions x 4 x 2
