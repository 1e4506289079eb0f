"""The scale-bias capability: `srpo_target`, `grpo(reweight=...)`, the per-step diagnostics, the
synthetic target mixtures and coarse content, the trainer's keys and the experiment's report."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from agents.algos import (
    estimator_inputs,
    estimator_needs,
    estimator_options,
    get_advantage_estimator,
    grpo,
)
from agents.algos.diagnostics import crop_bin_names, scale_bias_metrics, shares
from agents.analysis import bootstrap_ci
from agents.config import load_config
from agents.trainer import Trainer
from grounding_gym.data.synthetic import SyntheticHR, content_period, target_group
from grounding_gym.scale import scale_bins

ROOT = Path(__file__).resolve().parents[3]
SMALL, LARGE = 5e-4, 0.1  # target relative areas: bins "small" (< 1e-3) and "large" (>= 1e-2)

# ---------------------------------------------------------------- srpo_target, by hand

# Three questions of four rollouts: q0 small target, q1 and q2 large. Two loss tokens each.
REWARDS = [1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 2.0, 0.0, 1.0, 1.0]
GROUPS = [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]
TARGETS = [SMALL] * 4 + [LARGE] * 8
TOKENS = [2] * 12


def test_srpo_target_by_hand():
    # GRPO: q0 and q1 are +-1 / sqrt(4/3) = +-0.8660 (std of {1,0,1,0} = 0.5774); q2 has mean 1,
    # std sqrt(2/3) = 0.8165: (+1.2247, -1.2247, 0, 0).
    # Mass (|A| x 2 tokens): small 4 * 0.8660 * 2 = 6.9282; large (4 * 0.8660 + 2 * 1.2247) * 2
    # = 11.8272; total 18.7554, so each bin must carry 9.3777:
    # small x 1.35355, large x 0.79290.
    a = get_advantage_estimator("srpo_target")(
        REWARDS, GROUPS, target_rel_areas=TARGETS, lengths=TOKENS
    )
    s, b = 0.8660254 * 1.3535534, 0.8660254 * 0.7928932
    expected = [s, -s, s, -s, b, b, -b, -b, 1.2247449 * 0.7928932, -1.2247449 * 0.7928932, 0.0, 0.0]
    np.testing.assert_allclose(a.numpy(), expected, rtol=1e-5)
    mass = np.abs(a.numpy()) * 2
    assert mass[:4].sum() == pytest.approx(mass[4:].sum(), rel=1e-6)  # equal credit per bin
    assert mass.sum() == pytest.approx(18.7554, rel=1e-4)  # total unchanged: GRPO's step size


def test_srpo_target_weighs_credit_by_tokens():
    # Same rewards, but the small question's rollouts are 4 tokens long: its |A| halves.
    tokens = [4] * 4 + [2] * 8
    a = get_advantage_estimator("srpo_target")(
        REWARDS, GROUPS, target_rel_areas=TARGETS, lengths=tokens
    )
    mass = np.abs(a.numpy()) * np.array(tokens)
    assert mass[:4].sum() == pytest.approx(mass[4:].sum(), rel=1e-6)


def test_srpo_target_one_bin_equals_grpo_and_zero_mass_bins_stay_zero():
    one_bin = get_advantage_estimator("srpo_target")(
        REWARDS, GROUPS, target_rel_areas=[LARGE] * 12, lengths=TOKENS
    )
    torch.testing.assert_close(one_bin, grpo(REWARDS, GROUPS))
    # q0's rewards all equal: the small bin has no mass, the large bins keep GRPO's advantages.
    flat_small = [1.0] * 4 + REWARDS[4:]
    a = get_advantage_estimator("srpo_target")(
        flat_small, GROUPS, target_rel_areas=TARGETS, lengths=TOKENS
    )
    torch.testing.assert_close(a, grpo(flat_small, GROUPS))
    assert not a[:4].any()


def test_srpo_target_validation_and_signature():
    assert estimator_needs("srpo_target") == {"target_rel_areas", "lengths"}
    assert estimator_options("srpo_target") == {"bin_edges": (1e-3, 1e-2), "eps": 1e-6}
    fn = get_advantage_estimator("srpo_target")
    with pytest.raises(ValueError, match="target_rel_areas"):
        fn(REWARDS, GROUPS, target_rel_areas=TARGETS[:-1], lengths=TOKENS)
    with pytest.raises(ValueError, match="target_rel_areas"):
        fn(REWARDS, GROUPS, target_rel_areas=[-1.0] * 12, lengths=TOKENS)
    with pytest.raises(ValueError, match="lengths"):
        fn(REWARDS, GROUPS, target_rel_areas=TARGETS, lengths=[-1] * 12)


def test_grpo_inverse_bin_frequency_by_hand():
    # 12 rollouts, 2 occupied bins: small (4 rollouts) x 12 / (2 * 4) = 1.5, large (8) x 0.75.
    a = grpo(REWARDS, GROUPS, reweight="inverse_bin_frequency", target_rel_areas=TARGETS)
    base = grpo(REWARDS, GROUPS).numpy()
    np.testing.assert_allclose(a.numpy(), base * np.array([1.5] * 4 + [0.75] * 8), rtol=1e-6)
    # NaN target (no ground truth): a bin of its own, 3 occupied bins.
    nan_targets = [SMALL] * 4 + [LARGE] * 4 + [math.nan] * 4
    weights = 12 / (3 * 4)
    np.testing.assert_allclose(
        grpo(
            REWARDS, GROUPS, reweight="inverse_bin_frequency", target_rel_areas=nan_targets
        ).numpy(),
        base * weights,
        rtol=1e-6,
    )


def test_grpo_reweight_options_and_errors():
    assert estimator_inputs("grpo") == {"target_rel_areas"} and estimator_needs("grpo") == set()
    assert "target_rel_areas" not in estimator_options("grpo")
    assert estimator_options("grpo")["reweight"] == "none"
    with pytest.raises(ValueError, match="needs `target_rel_areas`"):
        grpo(REWARDS, GROUPS, reweight="inverse_bin_frequency")
    with pytest.raises(ValueError, match="Did you mean 'inverse_bin_frequency'"):
        grpo(REWARDS, GROUPS, reweight="inverse_bin_freq", target_rel_areas=TARGETS)
    torch.testing.assert_close(
        grpo(REWARDS, GROUPS, target_rel_areas=TARGETS), grpo(REWARDS, GROUPS)
    )


# ---------------------------------------------------------------- diagnostics, by hand


def test_scale_bias_metrics_by_hand():
    adv = np.array([1.0, -1.0, 0.5, -0.5, 0.0, 0.0])
    lengths = np.array([2, 2, 2, 2, 2, 4])
    out = scale_bias_metrics(
        advantages=adv,
        lengths=lengths,
        rewards=np.array([1.0, 0, 1, 0, 1, 1]),
        group_ids=np.array([0, 0, 1, 1, 2, 2]),
        target_rel_areas=np.array([SMALL, SMALL, LARGE, LARGE, LARGE, LARGE]),
        crop_rel_areas=np.array([0.003, 0.25, 0.25, 0.25, math.nan, 0.06]),
        bin_edges=(1e-3, 1e-2),
        bin_names=("small", "medium", "large"),
        crop_bin_edges=(0.02, 0.15),
        crop_names=("small", "medium", "large"),
    )
    assert out["rollout_share/small"] == pytest.approx(2 / 6) and out["rollout_share/medium"] == 0
    # mass: small 2 + 2 = 4, large 1 + 1 = 2 -> shares 2/3, 1/3
    assert out["adv_share/small"] == pytest.approx(2 / 3) and out[
        "adv_share/large"
    ] == pytest.approx(1 / 3)
    assert out["adv_mass"] == pytest.approx(6.0)
    assert (
        out["bin_reward/small"] == 0.5
        and out["bin_reward/large"] == 0.75
        and "bin_reward/medium" not in out
    )
    assert out["crop_bin_occupancy/small"] == pytest.approx(1 / 6)
    assert out["crop_bin_occupancy/medium"] == pytest.approx(1 / 6)
    assert out["crop_bin_occupancy/large"] == pytest.approx(3 / 6)
    assert out["crop_bin_occupancy/none"] == pytest.approx(1 / 6)
    # groups: {small, large} spans 2, {large, large} 1, {none, medium} 2
    assert out["multi_bin_group_frac"] == pytest.approx(2 / 3)


def test_zero_advantages_fall_back_to_rollout_shares():
    out = scale_bias_metrics(
        advantages=np.zeros(4),
        lengths=np.full(4, 2),
        rewards=np.ones(4),
        group_ids=np.array([0, 0, 1, 1]),
        target_rel_areas=np.array([SMALL, SMALL, LARGE, LARGE]),
        crop_rel_areas=np.full(4, 0.25),
        bin_edges=(1e-3, 1e-2),
        bin_names=("small", "medium", "large"),
        crop_bin_edges=(0.02, 0.15),
        crop_names=("small", "medium", "large"),
    )
    assert out["adv_mass"] == 0 and out["adv_share/small"] == out["rollout_share/small"] == 0.5
    assert out["multi_bin_group_frac"] == 0.0


def test_bin_helpers():
    np.testing.assert_array_equal(
        scale_bins(np.array([1e-4, 1e-3, 0.5, math.nan]), (1e-3, 1e-2)), [0, 1, 2, -1]
    )
    np.testing.assert_allclose(shares(np.array([1.0, 3.0]), np.array([0, 2]), 3), [0.25, 0, 0.75])
    assert crop_bin_names(2, ("small", "medium", "large")) == ("small", "medium", "large")
    assert crop_bin_names(1, ("small", "medium", "large")) == ("bin0", "bin1")


def test_bootstrap_ci_is_seeded_and_brackets_the_mean():
    values = [0.1, 0.4, 0.35, 0.2, 0.5, 0.3]
    assert bootstrap_ci(values) == bootstrap_ci(values)
    mean, low, high = bootstrap_ci(values)
    assert low < mean < high and mean == pytest.approx(np.mean(values))
    assert math.isnan(bootstrap_ci([0.3])[1]) and math.isnan(bootstrap_ci([])[0])


# ---------------------------------------------------------------- the task's data


def test_target_mix_is_exact_in_every_window_and_independent_of_the_rng():
    mix = (0.2, 0.8)
    for start in (0, 90000):
        groups = [target_group(i, 0, mix) for i in range(start, start + 100)]
        assert abs(groups.count(0) - 20) <= 1
    balanced = [target_group(i, 0, (0.5, 0.5)) for i in range(90000, 90100)]
    assert abs(balanced.count(0) - 50) <= 1


def test_mixture_samples_come_from_their_group_and_keep_single_range_samples():
    ranges = [[1.5e-4, 6e-4], [0.08, 0.16]]
    data = SyntheticHR(
        40,
        seed=3,
        image_size=1024,
        target_rel_area=ranges,
        target_mix=[0.25, 0.75],
        families=["read"],
        content_kinds=["pattern"],
        num_distractors=0,
    )
    groups = [s.metadata["target_group"] for s in data]
    assert groups.count(0) == 10
    for s in data:
        lo, hi = ranges[s.metadata["target_group"]]
        assert lo * 0.9 <= s.metadata["target_rel_area"] <= hi * 1.1
    # a single range draws exactly as before the mixture existed (no extra RNG draws)
    plain = SyntheticHR(5, seed=3, image_size=1024, target_rel_area=(1e-3, 1e-2))
    again = SyntheticHR(5, seed=3, image_size=1024, target_rel_area=[(1e-3, 1e-2)])
    assert [s.gt_boxes for s in plain] == [s.gt_boxes for s in again]
    assert all(s.metadata["target_group"] == 0 for s in plain)


def test_coarse_content_gives_large_targets_few_periods():
    data = SyntheticHR(
        6,
        seed=0,
        image_size=4096,
        target_rel_area=[[2e-4, 4e-4], [0.1, 0.12]],
        families=["read"],
        content_kinds=["pattern"],
        num_distractors=0,
        coarse_content=(0.01, 3),
    )
    for s in data:
        d = round(s.gt_boxes[0].width)
        fine = content_period("pattern", d, 0.5)
        if s.metadata["target_group"] == 1:
            assert (
                s.metadata["content_period"]
                == content_period("pattern", d, 0.5, cycles=3)
                > 8 * fine
            )
        else:
            assert s.metadata["content_period"] == fine == 4


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"target_rel_area": [[1e-4, 1e-3], [0.1, 0.2]], "target_mix": [1.0]},
            "target_mix must hold 2",
        ),
        ({"target_rel_area": [[1e-4, 1e-3], [0.1, 0.2]], "target_mix": [-1, 2]}, "non-negative"),
        ({"target_rel_area": [[1e-3, 1e-4]]}, r"target_rel_area\[0\]"),
        ({"target_rel_area": []}, "list of pairs"),
        ({"coarse_content": (0.5, 3)}, "coarse_content"),
        ({"coarse_content": (0.01, 0.5)}, "coarse_content"),
    ],
)
def test_bad_mixture_kwargs_name_the_argument(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SyntheticHR(2, **kwargs)


# ---------------------------------------------------------------- the trainer's diagnostics


def small_scale_bias_config(out: Path, *overrides: str):
    """examples/scale_bias.yaml at test size: 512 px images, 4 envs, 4 held-out questions."""
    return load_config(
        ROOT / "examples" / "scale_bias.yaml",
        [
            f"output_dir={out}",
            "env_kwargs.dataset_kwargs.image_size=512",
            "env_kwargs.max_pixels=12544",
            "env_kwargs.dataset_kwargs.num_samples=40",
            "train_samples=32",
            "eval_samples=4",
            "num_envs=4",
            "env_threads=0",
            "questions_per_step=2",
            "g1=4",
            "policy_kwargs.grid=8",
            "progress=false",
            "tensorboard=false",
            *overrides,
        ],
    )


DIAGNOSTIC_FAMILIES = ("rollout_share", "adv_share", "grad_share")


@pytest.mark.parametrize("algo", ["grpo", "srpo", "srpo_target"])
def test_every_step_logs_the_diagnostics_and_shares_sum_to_one(tmp_path, algo):
    cfg = small_scale_bias_config(tmp_path, f"algo={algo}", "total_steps=2", "adv_kwargs={}")
    Trainer(cfg).train()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        for family in DIAGNOSTIC_FAMILIES:
            values = [row[f"{family}/{b}"] for b in ("small", "medium", "large")]
            assert sum(values) == pytest.approx(1.0, abs=1e-6), (family, row)
        occupancy = [row[f"crop_bin_occupancy/{b}"] for b in ("small", "medium", "large", "none")]
        assert sum(occupancy) == pytest.approx(1.0, abs=1e-6)
        assert 0.0 <= row["multi_bin_group_frac"] <= 1.0
        assert "rollout/p_crop_small_small" in row or "rollout/p_crop_small_large" in row
    final = rows[-1]
    assert final["eval/n_small"] == final["eval/n_large"] == 2  # the balanced held-out set


def test_grad_share_is_the_gradient_of_each_bins_loss(tmp_path):
    """grad_share/<bin> matches norms computed by hand from the policy's own loss."""
    cfg = small_scale_bias_config(
        tmp_path, "total_steps=1", "env_kwargs.dataset_kwargs.target_mix=[0.5, 0.5]"
    )
    trainer = Trainer(cfg)
    trajs = trainer.collect([0, 1], seed=0)
    adv, _ = trainer.advantages(trajs)
    from agents.algos import compute_loss
    from agents.rollout import rollout_arrays
    from agents.trainer import batch_old_logprobs

    bins = scale_bins(rollout_arrays(trajs)["target_rel_areas"], cfg.bin_edges)
    norms = []
    for b in (0, 2):
        trainer.policy.zero_grad()
        logp, mask = trainer.policy.trajectory_logprobs(trajs)
        loss, _ = compute_loss(
            logp,
            batch_old_logprobs(trajs, mask),
            None,
            adv * torch.from_numpy(bins == b).float(),
            mask,
            cfg.loss,
        )
        loss.backward()
        norms.append(
            sum(
                float(p.grad.pow(2).sum())
                for p in trainer.policy.parameters()
                if p.grad is not None
            )
        )
    logp, mask = trainer.policy.trajectory_logprobs(trajs)
    got = trainer.gradient_shares(logp, batch_old_logprobs(trajs, mask), adv, mask, bins)
    assert got["grad_share/small"] == pytest.approx(norms[0] / sum(norms), rel=1e-4)
    assert got["grad_share/large"] == pytest.approx(norms[1] / sum(norms), rel=1e-4)


def test_grad_diagnostics_can_be_switched_off(tmp_path):
    history = Trainer(
        small_scale_bias_config(tmp_path, "total_steps=1", "grad_diagnostics=false")
    ).train()
    assert not any(k.startswith("grad_share/") for k in history[0])
    assert "adv_share/small" in history[0]


def test_grad_share_every_k_steps_and_the_summary_averages_the_logged_steps(tmp_path):
    from agents.trainer import scale_bias_summary

    cfg = small_scale_bias_config(tmp_path, "total_steps=3", "grad_diagnostics_every=2")
    history = Trainer(cfg).train()
    assert [any(k.startswith("grad_share/") for k in row) for row in history] == [
        True,
        False,
        True,
    ]
    assert all("adv_share/small" in row for row in history)  # free diagnostics: every step
    expected = (history[0]["grad_share/small"] + history[2]["grad_share/small"]) / 2
    assert f"grad_share small {expected:.2f}" in scale_bias_summary(history, cfg.bin_names)
    with pytest.raises(ValueError, match=r"grad_diagnostics_every \(0\) must be >= 1"):
        small_scale_bias_config(tmp_path, "grad_diagnostics_every=0")


@pytest.mark.slow
def test_train_cli_on_the_scale_bias_config_prints_the_summary(tmp_path):
    """The acceptance command itself (`total_steps=3`), at full size, with 4 held-out questions."""
    cmd = [
        sys.executable,
        "-m",
        "agents.trainer",
        "--config",
        str(ROOT / "examples" / "scale_bias.yaml"),
        "total_steps=3",
        f"output_dir={tmp_path}",
        "eval_samples=4",
        "progress=false",
        "tensorboard=false",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    summary = done.stdout.strip().splitlines()[-1]
    assert summary.startswith("scale bias (mean of 3 steps): rollout_share small")
    assert "adv_share" in summary and "grad_share" in summary and "multi_bin_group_frac" in summary
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 3 and all(
        f"grad_share/{b}" in r for r in rows for b in ("small", "medium", "large")
    )


# ---------------------------------------------------------------- the warm-started reader


def test_reader_sft_trains_only_the_answer_head_on_centred_crops(tmp_path):
    import gymnasium as gym

    from agents.policies.tiny import TinyPolicy
    from agents.reader_sft import READER_PARAMETERS, crop_views, legible_scales, train_reader
    from grounding_gym.geometry import Box

    cfg = small_scale_bias_config(tmp_path)
    env = gym.make(cfg.env_id, **cfg.env_kwargs)
    assert legible_scales(cfg, 0) == [0.06] and legible_scales(cfg, 1) == [0.25, 0.5]
    views, answers = [], []
    for i in range(4):
        shown = crop_views(env, i, [0.25])
        target = env.unwrapped.sample.gt_boxes[0]
        crop = Box(*shown[0][1]["view_box"])  # the crop, original px
        assert crop.x1 <= (target.x1 + target.x2) / 2 <= crop.x2 and crop.width == pytest.approx(
            0.25 * 512, abs=1
        )
        views += shown
        answers.append(ord(env.unwrapped.sample.answer) - ord("A"))
    torch.manual_seed(0)
    policy = TinyPolicy(**cfg.policy_kwargs)
    before = {k: v.clone() for k, v in policy.state_dict().items()}
    losses = train_reader(policy, views, answers, epochs=20)
    assert losses[-1] < 0.5 * losses[0]
    for key, value in policy.state_dict().items():
        assert torch.equal(value, before[key]) != key.startswith(READER_PARAMETERS), key


# ---------------------------------------------------------------- the experiment's report


@pytest.mark.parametrize(
    "reference, arm",
    [("grpo_skewed", "srpo_target_skewed"), ("a_grpo_skewed", "a_grpo_forced_skewed")],
)
def test_experiment_report_pairs_seeds_and_writes_tables(tmp_path, reference, arm):
    sys.path.insert(0, str(ROOT / "scripts"))
    import experiment_scale_bias as exp

    rng = np.random.default_rng(0)
    for name in (reference, arm):
        for seed in range(3):
            run = tmp_path / f"{name}-seed{seed}"
            run.mkdir()
            bump = 0.2 if name == arm else 0.0
            result = {
                "arm": name,
                "seed": seed,
                "seconds": 60.0,
                "steps": 2,
                "env_steps": 128,
                "eval": {
                    "acc_small": 0.3 + 0.1 * seed + bump,
                    "acc_large": 0.8,
                    "acc": 0.55,
                    "miou": 0.1,
                    "p_crop_small_small": 0.2 + bump,
                    "p_crop_small_large": 0.0,
                },
                "train": {f"train_{k}": 0.2 for k in exp.DIAGNOSTICS},
            }
            (run / "result.json").write_text(json.dumps(result))
            rows = [
                {
                    "env_steps": 64 * (i + 1),
                    "adv_share/small": rng.uniform(),
                    "grad_share/small": 0.3,
                    "rollout/p_crop_small_small": 0.5,
                }
                for i in range(3)
            ]
            (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert exp.main(["--out", str(tmp_path), "--report-only"]) == 0
    summary = json.loads((tmp_path / "results.json").read_text())["summary"]
    assert set(summary["paired"]) == {arm}  # against its own reference only
    paired = summary["paired"][arm]
    assert paired["seeds"] == [0, 1, 2]
    assert paired["acc_small"] == pytest.approx(
        [0.2, 0.2, 0.2]
    )  # identical differences: a zero-width CI
    assert summary["power"][arm]["acc_small"]["sd"] == pytest.approx(0.0, abs=1e-12)
    assert (tmp_path / "accuracy.png").stat().st_size > 0 and (
        tmp_path / "diagnostics.png"
    ).stat().st_size > 0
    assert f"| {arm} | 3 |" in (tmp_path / "results.md").read_text()


def test_experiment_commands_are_the_configs_keys():
    sys.path.insert(0, str(ROOT / "scripts"))
    import experiment_scale_bias as exp

    for arm in exp.ARMS:
        cfg = load_config(
            ROOT / "examples" / "scale_bias.yaml", exp.overrides(arm, 3, Path("/tmp/x"), 9600, 100)
        )
        assert cfg.seed == 3 and cfg.eval_samples == 100
        assert cfg.total_env_steps == round(exp.BUDGET.get(arm, 1.0) * 9600)
    assert exp.BUDGET["grpo_balanced"] * 0.5 == pytest.approx(
        0.2
    )  # the skewed arms' small-target exposure
    assert (
        yaml.safe_load((ROOT / "examples" / "scale_bias.yaml").read_text())["policy_kwargs"][
            "min_crops"
        ]
        == 1
    )


# ---------------------------------------------------------------- the shipped baselines

SHIPPED = ROOT / "baselines" / "scale-bias"


def test_compare_lists_every_shipped_scale_bias_arm(capsys):
    from grounding_gym.cli import main as cli

    assert cli(["compare", "--baselines", "scale-bias"]) == 0
    out = capsys.readouterr().out
    for label in (
        "tiny-grpo_skewed",
        "tiny-srpo_skewed",
        "tiny-srpo_target_skewed",
        "tiny-grpo_reweight_skewed",
        "tiny-grpo_balanced",
        "no-crop",
        "oracle-crop",
    ):
        assert label in out, label


def test_shipped_scale_bias_checkpoints_load_and_match_their_config():
    from agents.baselines.policy_checkpoint import load_policy

    for arm in (
        "grpo_skewed",
        "srpo_skewed",
        "srpo_target_skewed",
        "grpo_reweight_skewed",
        "grpo_balanced",
    ):
        folder = SHIPPED / f"tiny-{arm}"
        policy = load_policy(folder / "checkpoint.pt")
        assert policy.min_crops == 1 and len(policy.scales) == 3
        config = json.loads((folder / "config.json").read_text())
        assert config["benchmark"] == "scale-bias" and config["samples"] == [90000, 90100]
        assert json.loads((folder / "summary.json").read_text())["overall"]["n"] == 100
