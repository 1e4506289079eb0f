"""Tests for agents/algos: advantage estimators, their registry, and the losses.

Expected values are computed by hand; the arithmetic is in the comments. Unbiased std
(n - 1) throughout. EPS = 1e-6 is the estimators' default and appears in the formulas.
"""

from __future__ import annotations

import math
import random
import statistics

import numpy as np
import pytest
import torch

import agents.algos.advantages as adv_mod
from agents.algos import (
    AGG_MODES,
    AdvantageEstimator,
    LossConfig,
    agg_loss,
    compute_loss,
    dr_grpo,
    dynamic_sampling_mask,
    estimator_needs,
    estimator_options,
    get_advantage_estimator,
    grpo,
    kl_k3,
    list_advantage_estimators,
    overlong_penalty,
    policy_loss,
    register_adv_est,
    rloo,
    srpo,
    srpo_target,
)

EPS = 1e-6
NAN = float("nan")
S2 = math.sqrt(2.0)


def close(actual, expected, atol=1e-6):
    expected = torch.as_tensor(expected, dtype=torch.float32)
    torch.testing.assert_close(actual, expected, atol=atol, rtol=1e-5)


# =============================================================================================
# registry
# =============================================================================================


def test_registry_lists_builtins_and_enum_matches():
    assert list_advantage_estimators() == ["dr_grpo", "grpo", "rloo", "srpo", "srpo_target"]
    assert {e.value for e in AdvantageEstimator} == set(list_advantage_estimators())
    assert get_advantage_estimator("grpo") is grpo
    assert get_advantage_estimator(AdvantageEstimator.SRPO) is srpo
    with pytest.raises(ValueError):
        AdvantageEstimator("grop")


def test_unknown_name_lists_names_and_suggests():
    with pytest.raises(ValueError) as exc:
        get_advantage_estimator("grop")
    msg = str(exc.value)
    assert "Did you mean 'grpo'?" in msg
    for name in ("dr_grpo", "grpo", "rloo", "srpo"):
        assert name in msg
    with pytest.raises(ValueError, match="Registered"):
        get_advantage_estimator("completely_different")


def test_duplicate_registration_raises(monkeypatch):
    monkeypatch.setattr(adv_mod, "ESTIMATORS", adv_mod.ESTIMATORS.copy())

    def other(rewards, group_ids):
        return torch.zeros(len(rewards))

    with pytest.raises(ValueError, match="already registered"):
        register_adv_est("grpo")(other)
    # Same function again is fine (e.g. importlib.reload); a new name works.
    register_adv_est("grpo")(grpo)
    register_adv_est("my_zero")(other)
    assert get_advantage_estimator("my_zero") is other
    with pytest.raises(ValueError, match="already registered"):
        register_adv_est(AdvantageEstimator.RLOO)(other)


def test_registration_enforces_call_convention(monkeypatch):
    monkeypatch.setattr(adv_mod, "ESTIMATORS", adv_mod.ESTIMATORS.copy())

    def wrong_order(group_ids, rewards):
        return rewards

    def var_kwargs(rewards, group_ids, **kwargs):
        return rewards

    with pytest.raises(TypeError, match="rewards, group_ids"):
        register_adv_est("x1")(wrong_order)
    with pytest.raises(TypeError, match="explicitly"):
        register_adv_est("x2")(var_kwargs)


def test_estimator_needs_and_options():
    assert estimator_needs("srpo") == {"rel_areas"}
    assert estimator_needs("grpo") == set()
    assert estimator_needs(AdvantageEstimator.DR_GRPO) == set()
    assert estimator_needs("rloo") == set()
    assert estimator_options("grpo") == {
        "eps": 1e-6,
        "scale_by_std": True,
        "reweight": "none",
        "bin_edges": (1e-3, 1e-2),
    }
    assert estimator_options("srpo") == {
        "bin_edges": (0.1, 0.3),
        "num_bins": None,
        "eps": 1e-6,
        "no_box": "own_bin",
        "inter_scale": "group_std",
        "tie": "all",
    }
    with pytest.raises(ValueError, match="Did you mean"):
        estimator_needs("srp")


def test_trainer_style_call_passes_exactly_declared_extras():
    batch = {
        "rel_areas": [0.05, 0.05, 0.5, 0.5],
        "target_rel_areas": [1e-4, 1e-4, 0.1, 0.1],
        "lengths": [1, 2, 3, 4],
    }
    rewards, gids = [1.0, 0.0, 1.0, 0.0], [0, 0, 0, 0]
    for name in list_advantage_estimators():
        extras = {k: batch[k] for k in estimator_needs(name)}
        out = get_advantage_estimator(name)(rewards, gids, **extras)
        assert out.shape == (4,) and out.dtype == torch.float32
    # Undeclared extras are a TypeError, never silently ignored.
    with pytest.raises(TypeError):
        grpo(rewards, gids, rel_areas=batch["rel_areas"])
    with pytest.raises(TypeError):
        srpo(rewards, gids, rel_areas=batch["rel_areas"], bin_edge=(0.2,))


# =============================================================================================
# input handling shared by all estimators
# =============================================================================================


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "srpo"])
def test_input_validation(name):
    fn = get_advantage_estimator(name)
    extra = (lambda n: {"rel_areas": [0.2] * n}) if name == "srpo" else (lambda n: {})
    with pytest.raises(ValueError, match=r"\(3,\).*\(2,\)"):
        fn([1.0, 0.0, 1.0], [0, 0], **extra(3))
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        fn([[1.0, 0.0], [1.0, 0.0]], [0, 0], **extra(2))
    with pytest.raises(ValueError, match="finite"):
        fn([1.0, NAN], [0, 0], **extra(2))
    with pytest.raises(ValueError, match="finite"):
        fn([1.0, float("inf")], [0, 0], **extra(2))


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo", "srpo"])
def test_accepts_numpy_torch_lists_and_string_ids(name):
    fn = get_advantage_estimator(name)
    kw = {"rel_areas": np.array([0.2, 0.2, 0.2, 0.2])} if name == "srpo" else {}
    r = [1.0, 0.0, 3.0, 1.0]
    a = fn(np.array(r), np.array([0, 0, 7, 7]), **kw)
    b = fn(torch.tensor(r), torch.tensor([0, 0, 7, 7]), **kw)
    c = fn(r, ["q1", "q1", "q2", "q2"], **kw)
    d = fn(np.array(r, dtype=np.float32), np.array(["q1", "q1", "q2", "q2"]), **kw)
    for out in (a, b, c, d):
        assert out.dtype == torch.float32 and out.shape == (4,)
        torch.testing.assert_close(out, a)
    empty = fn([], [], **({"rel_areas": []} if name == "srpo" else {}))
    assert empty.shape == (0,) and empty.dtype == torch.float32


@pytest.mark.parametrize("name", ["grpo", "dr_grpo", "rloo"])
def test_permuting_the_batch_permutes_the_output(name):
    fn = get_advantage_estimator(name)
    gen = torch.Generator().manual_seed(0)
    r = torch.rand(30, generator=gen)
    g = torch.randint(0, 5, (30,), generator=gen)
    perm = torch.randperm(30, generator=gen)
    torch.testing.assert_close(fn(r, g)[perm], fn(r[perm], g[perm]))


# =============================================================================================
# GRPO
# =============================================================================================


def test_grpo_one_group_by_hand():
    # r = [1, 0, 1, 0]: mean 0.5; squared deviations 4 * 0.25 = 1; unbiased var 1/3;
    # std = 0.577350; A = +-0.5 / (0.577350 + EPS) = +-0.866024
    s = math.sqrt(1 / 3)
    a = 0.5 / (s + EPS)
    close(grpo([1.0, 0.0, 1.0, 0.0], [0, 0, 0, 0]), [a, -a, a, -a])


def test_grpo_interleaved_groups_by_hand():
    # group 0 = indices 0, 2 -> r {1, 3}: mean 2, var (1 + 1) / 1 = 2, std sqrt(2)
    #   A = -1 / (sqrt2 + EPS), +1 / (sqrt2 + EPS)
    # group 1 = indices 1, 3 -> r {0, 6}: mean 3, var (9 + 9) / 1 = 18, std 3 sqrt(2)
    #   A = -3 / (3 sqrt2 + EPS), +3 / (3 sqrt2 + EPS)
    out = grpo([1.0, 0.0, 3.0, 6.0], [0, 1, 0, 1])
    close(out, [-1 / (S2 + EPS), -3 / (3 * S2 + EPS), 1 / (S2 + EPS), 3 / (3 * S2 + EPS)])


def test_grpo_zero_variance_and_singleton_groups_are_zero():
    # group 0: [0.1, 0.1, 0.1] (sum/3 rounds, yet A must be exactly 0); group 1: one rollout;
    # group 2: [2, 4] -> mean 3, std sqrt(2), A = -+1 / (sqrt2 + EPS)
    out = grpo([0.1, 0.1, 0.1, 5.0, 2.0, 4.0], [0, 0, 0, 1, 2, 2])
    assert out[:4].eq(0).all()
    close(out[4:], [-1 / (S2 + EPS), 1 / (S2 + EPS)])


def test_grpo_without_std_scaling_and_custom_eps():
    # r = [3, 1, 2]: mean 2 -> r - mean = [1, -1, 0]; std = 1 -> with eps 1: [0.5, -0.5, 0]
    close(grpo([3.0, 1.0, 2.0], [0, 0, 0], scale_by_std=False), [1.0, -1.0, 0.0])
    close(grpo([3.0, 1.0, 2.0], [0, 0, 0], eps=1.0), [0.5, -0.5, 0.0])


def _ref_grpo(r, g, eps=EPS, scale=True):
    """Slow, obvious reference: a Python loop over groups with the statistics module."""
    out = [0.0] * len(r)
    for q in set(g):
        idx = [i for i in range(len(r)) if g[i] == q]
        vals = [r[i] for i in idx]
        if len(vals) < 2 or len(set(vals)) == 1:
            continue
        m, s = statistics.mean(vals), statistics.stdev(vals)
        for i in idx:
            out[i] = (r[i] - m) / (s + eps) if scale else r[i] - m
    return out


def _random_batch(rng, n_groups=12, levels=(0.0, 0.5, 1.0)):
    r, g = [], []
    for q in range(n_groups):
        size = rng.choice([1, 2, 3, 4, 6, 8])
        r += [rng.choice(levels) if rng.random() < 0.7 else rng.random() for _ in range(size)]
        g += [q] * size
    order = list(range(len(r)))
    rng.shuffle(order)  # groups are not contiguous
    return [r[i] for i in order], [g[i] for i in order]


@pytest.mark.parametrize("seed", range(5))
def test_grpo_loop_vs_vectorised(seed):
    rng = random.Random(seed)
    r, g = _random_batch(rng)
    close(grpo(r, g), _ref_grpo(r, g), atol=1e-5)
    close(grpo(r, g, scale_by_std=False), _ref_grpo(r, g, scale=False), atol=1e-5)
    close(dr_grpo(r, g), _ref_grpo(r, g, scale=False), atol=1e-5)


# =============================================================================================
# Dr.GRPO
# =============================================================================================


def test_dr_grpo_by_hand():
    # [1, 0, 0, 0]: mean 0.25 -> [0.75, -0.25, -0.25, -0.25] (no std division)
    close(dr_grpo([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0]), [0.75, -0.25, -0.25, -0.25])
    # groups {2, 4} (mean 3) and {10, 0, 5} (mean 5): [-1, 1, 5, -5, 0]
    close(dr_grpo([2.0, 4.0, 10.0, 0.0, 5.0], [1, 1, 2, 2, 2]), [-1.0, 1.0, 5.0, -5.0, 0.0])


def test_dr_grpo_zero_variance_and_singleton():
    out = dr_grpo([0.7, 0.7, 0.7, 3.0], [0, 0, 0, 1])
    assert out.eq(0).all()


# =============================================================================================
# RLOO
# =============================================================================================


def test_rloo_by_hand():
    # [1, 0, 0, 0]: A_0 = 1 - (0 + 0 + 0) / 3 = 1; A_k = 0 - (1 + 0 + 0) / 3 = -1/3
    close(rloo([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0]), [1.0, -1 / 3, -1 / 3, -1 / 3])
    # group a {2, 4}: 2 - 4 = -2, 4 - 2 = 2; group b {1, 1, 4}: 1 - (1 + 4)/2 = -1.5 (twice),
    # 4 - (1 + 1)/2 = 3
    close(rloo([2.0, 1.0, 4.0, 1.0, 4.0], [0, 1, 0, 1, 1]), [-2.0, -1.5, 2.0, -1.5, 3.0])


def test_rloo_zero_variance_and_singleton():
    assert rloo([0.3, 0.3, 0.3, 9.0], [0, 0, 0, 1]).eq(0).all()


@pytest.mark.parametrize("seed", range(3))
def test_rloo_loop_vs_vectorised(seed):
    r, g = _random_batch(random.Random(100 + seed))
    ref = [0.0] * len(r)
    for i in range(len(r)):
        others = [r[j] for j in range(len(r)) if g[j] == g[i] and j != i]
        ref[i] = r[i] - statistics.mean(others) if others else 0.0
    close(rloo(r, g), ref, atol=1e-5)


# =============================================================================================
# SRPO
# =============================================================================================

# Shared case: one question, 4 rollouts, default edges (0.1, 0.3).
#   rewards   [1,    0,    1,   0  ]
#   rel_areas [0.05, 0.05, 0.5, NaN]
#   bins      [0,    0,    2,   NaN-rule]
R4 = [1.0, 0.0, 1.0, 0.0]
A4 = [0.05, 0.05, 0.5, NAN]
G4 = [0, 0, 0, 0]
# bin 0 = {1, 0}: mean 0.5, std sqrt(0.5) -> intra +-0.5 / (sqrt(0.5) + EPS)
I0 = 0.5 / (math.sqrt(0.5) + EPS)


def test_srpo_no_box_own_bin_one_member_bins():
    # bins [0, 0, 2, 3]; bins 2 and 3 have one member -> intra [I0, -I0, 0, 0]
    # bin means: 0.5, 1, 0 -> best = bin 2 -> x = [0, 0, 1, 0]
    # x: mean 0.25, devs [-.25, -.25, .75, -.25], var (3 * .0625 + .5625) / 3 = .25, std .5
    #   inter = devs / (0.5 + EPS) = [-0.5, -0.5, 1.5, -0.5]
    s = 0.5 + EPS
    expected = [I0 - 0.25 / s, -I0 - 0.25 / s, 0.75 / s, -0.25 / s]
    close(srpo(R4, G4, rel_areas=A4), expected)
    close(srpo(R4, G4, rel_areas=A4, no_box="own_bin"), expected)


def test_srpo_no_box_exclude():
    # rollout 3 is left out: A_3 = 0. Remaining bins [0, 0, 2]: intra [I0, -I0, 0]
    # x = [0, 0, 1]: mean 1/3, devs [-1/3, -1/3, 2/3], var (1/9 + 1/9 + 4/9) / 2 = 1/3
    #   inter = devs / (sqrt(1/3) + EPS) = [-0.57735, -0.57735, 1.154701]
    s = math.sqrt(1 / 3) + EPS
    expected = [I0 - (1 / 3) / s, -I0 - (1 / 3) / s, (2 / 3) / s, 0.0]
    out = srpo(R4, G4, rel_areas=A4, no_box="exclude")
    close(out, expected)
    assert out[3] == 0


def test_srpo_no_box_smallest():
    # NaN -> bin 0: bins [0, 0, 2, 0]. bin 0 = {1, 0, 0} (indices 0, 1, 3): mean 1/3,
    #   devs [2/3, -1/3, -1/3], var 1/3 -> intra [2/3, -1/3, -1/3] / (sqrt(1/3) + EPS)
    # bin means 1/3 and 1 -> best bin 2 -> x = [0, 0, 1, 0] -> inter [-.5, -.5, 1.5, -.5]
    si = math.sqrt(1 / 3) + EPS
    sx = 0.5 + EPS
    expected = [
        (2 / 3) / si - 0.25 / sx,
        (-1 / 3) / si - 0.25 / sx,
        0.75 / sx,
        (-1 / 3) / si - 0.25 / sx,
    ]
    close(srpo(R4, G4, rel_areas=A4, no_box="smallest"), expected)


def test_srpo_inter_scale_none():
    # As the own_bin case, but inter = x - mean(x) = [-0.25, -0.25, 0.75, -0.25]
    close(
        srpo(R4, G4, rel_areas=A4, inter_scale="none"),
        [I0 - 0.25, -I0 - 0.25, 0.75, -0.25],
    )


# Tie case: rewards [1, 0, 0, 1, 0, 0], areas [.05, .05, .5, .5, .2, .2] -> bins 0,0,2,2,1,1
#   bin 0 = {1, 0} mean .5, bin 2 = {0, 1} mean .5 (tied best), bin 1 = {0, 0} mean 0
#   intra: bin 0 [I0, -I0], bin 2 [-I0, I0], bin 1 zero variance -> [0, 0]
RT = [1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
AT = [0.05, 0.05, 0.5, 0.5, 0.2, 0.2]
INTRA_T = [I0, -I0, -I0, I0, 0.0, 0.0]


def test_srpo_tie_all():
    # tie="all": x = [1, 1, 1, 1, 0, 0]: mean 2/3, devs [1/3 x4, -2/3 x2]
    #   var = (4 * 1/9 + 2 * 4/9) / 5 = (12/9) / 5 = 4/15, std 0.516398
    s = math.sqrt(4 / 15) + EPS
    inter = [(1 / 3) / s] * 4 + [(-2 / 3) / s] * 2
    out = srpo(RT, [0] * 6, rel_areas=AT, tie="all")
    close(out, [a + b for a, b in zip(INTRA_T, inter, strict=True)])
    close(srpo(RT, [0] * 6, rel_areas=AT), out)  # "all" is the default


def test_srpo_tie_none():
    # tie="none": two bins tie for best -> x = 0 everywhere -> inter 0 -> A = intra
    close(srpo(RT, [0] * 6, rel_areas=AT, tie="none"), INTRA_T)
    # Without a tie, "none" still rewards the single best bin (same as the own_bin case).
    close(srpo(R4, G4, rel_areas=A4, tie="none"), srpo(R4, G4, rel_areas=A4, tie="all"))


def test_srpo_equal_width_bins():
    # num_bins=2 -> edge 0.5: areas [0.1, 0.2, 0.6, 1.0] -> bins 0, 0, 1, 1
    # bin 0 = {1, 0}: intra [I0, -I0]; bin 1 = {1, 1}: zero variance -> intra [0, 0]
    # bin means .5, 1 -> best bin 1 -> x = [0, 0, 1, 1]: mean .5, devs +-.5, var 1/3
    #   inter = [-.5, -.5, .5, .5] / (sqrt(1/3) + EPS) = [-.866, -.866, .866, .866]
    s = math.sqrt(1 / 3) + EPS
    out = srpo([1.0, 0.0, 1.0, 1.0], [0] * 4, rel_areas=[0.1, 0.2, 0.6, 1.0], num_bins=2)
    close(out, [I0 - 0.5 / s, -I0 - 0.5 / s, 0.5 / s, 0.5 / s])


def test_srpo_bins_follow_numpy_digitize():
    # Read the binning back from a 2-rollout group, rewards [1, 0], inter_scale="none":
    #   same bin      -> one bin {1, 0}: intra [I0, -I0], inter 0        -> [0.7071, -0.7071]
    #   different bins -> intra 0 (one-member bins), x = [1, 0], inter x - 0.5 -> [0.5, -0.5]
    def same_bin(a, probe, **kw):
        out = srpo([1.0, 0.0], [0, 0], rel_areas=[a, probe], inter_scale="none", **kw)
        if np.allclose(out.numpy(), [I0, -I0], atol=1e-5):
            return True
        assert np.allclose(out.numpy(), [0.5, -0.5], atol=1e-5), out
        return False

    # default edges (0.1, 0.3): bin k = number of edges <= area, as numpy.digitize
    areas = [0.0, 0.0999, 0.1, 0.2999, 0.3, 1.0, 1.5]
    expected_bins = np.digitize(areas, (0.1, 0.3))
    assert expected_bins.tolist() == [0, 0, 1, 1, 2, 2, 2]
    for a, b in zip(areas, expected_bins, strict=True):
        for probe, probe_bin in ((0.05, 0), (0.2, 1), (0.5, 2)):
            assert same_bin(a, probe) == (b == probe_bin), (a, probe)
    # K equal bins: num_bins=4 -> edges 0.25, 0.5, 0.75; an area on an edge goes up.
    for a, b in ((0.0, 0), (0.25, 1), (0.5, 2), (0.74, 2), (0.75, 3), (1.0, 3)):
        assert np.digitize(a, [0.25, 0.5, 0.75]) == b
        for probe_bin, probe in enumerate((0.1, 0.3, 0.6, 0.9)):
            assert same_bin(a, probe, num_bins=4) == (b == probe_bin), (a, probe)


def test_srpo_equals_grpo_when_all_rollouts_share_a_bin():
    gen = torch.Generator().manual_seed(1)
    r = torch.rand(40, generator=gen).round(decimals=1)
    g = torch.randint(0, 6, (40,), generator=gen)
    areas = 0.1 + 0.19 * torch.rand(40, generator=gen)  # all in the medium bin [0.1, 0.3)
    torch.testing.assert_close(srpo(r, g, rel_areas=areas), grpo(r, g))
    # One bin overall (no edges, or num_bins=1), NaN areas folded into it by "smallest".
    areas[::5] = NAN
    torch.testing.assert_close(
        srpo(r, g, rel_areas=areas, bin_edges=(), no_box="smallest"), grpo(r, g)
    )
    torch.testing.assert_close(
        srpo(r, g, rel_areas=areas, num_bins=1, no_box="smallest"), grpo(r, g)
    )
    torch.testing.assert_close(
        srpo(r, g, rel_areas=areas, num_bins=1, eps=0.1, no_box="smallest"), grpo(r, g, eps=0.1)
    )


def test_srpo_degenerate_groups_are_zero():
    # group 0: a single rollout; group 1: every rollout without a box under "exclude";
    # group 2: all rewards equal and one bin -> intra 0, inter 0
    out = srpo(
        [1.0, 1.0, 0.0, 0.5, 0.5],
        [0, 1, 1, 2, 2],
        rel_areas=[0.2, NAN, NAN, 0.4, 0.5],
        no_box="exclude",
    )
    assert out.eq(0).all()


def test_srpo_validation():
    with pytest.raises(ValueError, match=r"rel_areas.*\(2,\).*\(3,\)"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match=">= 0"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[-0.1, 0.2])
    with pytest.raises(ValueError, match=">= 0"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[float("inf"), 0.2])
    with pytest.raises(ValueError, match="Did you mean 'exclude'"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[0.1, 0.2], no_box="exlude")
    with pytest.raises(ValueError, match="tie"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[0.1, 0.2], tie="first")
    with pytest.raises(ValueError, match="inter_scale"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[0.1, 0.2], inter_scale="std")
    with pytest.raises(ValueError, match="increasing"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[0.1, 0.2], bin_edges=(0.3, 0.1))
    with pytest.raises(ValueError, match="num_bins"):
        srpo([1.0, 0.0], [0, 0], rel_areas=[0.1, 0.2], num_bins=0)


def _ref_srpo(r, g, a, edges, eps, no_box, inter_scale, tie):
    """Slow, obvious reference: loops over questions and bins, the statistics module."""
    out = [0.0] * len(r)
    k = len(edges) + 1
    for q in sorted(set(g)):
        members = []  # (index, bin)
        for i in (i for i in range(len(r)) if g[i] == q):
            if math.isnan(a[i]):
                if no_box == "exclude":
                    continue
                members.append((i, k if no_box == "own_bin" else 0))
            else:
                members.append((i, sum(1 for e in edges if e <= a[i])))
        bins: dict[int, list[int]] = {}
        for i, b in members:
            bins.setdefault(b, []).append(i)
        intra = {}
        for ids in bins.values():
            vals = [r[i] for i in ids]
            for i in ids:
                if len(vals) < 2 or len(set(vals)) == 1:
                    intra[i] = 0.0
                else:
                    intra[i] = (r[i] - statistics.mean(vals)) / (statistics.stdev(vals) + eps)
        means = {b: statistics.mean(r[i] for i in ids) for b, ids in bins.items()}
        if not means:
            continue
        best = max(means.values())
        best_bins = [b for b, m in means.items() if abs(m - best) <= 1e-9]
        if tie == "none" and len(best_bins) > 1:
            best_bins = []
        x = {i: 1.0 if b in best_bins else 0.0 for i, b in members}
        xs = list(x.values())
        for i, _ in members:
            if len(xs) < 2 or len(set(xs)) == 1:
                inter = 0.0
            elif inter_scale == "group_std":
                inter = (x[i] - statistics.mean(xs)) / (statistics.stdev(xs) + eps)
            else:
                inter = x[i] - statistics.mean(xs)
            out[i] = intra[i] + inter
    return out


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("no_box", ["own_bin", "exclude", "smallest"])
@pytest.mark.parametrize("tie", ["all", "none"])
@pytest.mark.parametrize("inter_scale", ["group_std", "none"])
@pytest.mark.parametrize("num_bins", [None, 4])
def test_srpo_loop_vs_vectorised(seed, no_box, tie, inter_scale, num_bins):
    rng = random.Random(seed)
    r, g = _random_batch(rng, n_groups=10)
    # coarse areas so that bins share members; ~20% rollouts without a box
    a = [NAN if rng.random() < 0.2 else rng.choice([0.05, 0.2, 0.25, 0.5, 0.9]) for _ in r]
    edges = (0.1, 0.3) if num_bins is None else tuple(i / num_bins for i in range(1, num_bins))
    expected = _ref_srpo(r, g, a, edges, EPS, no_box, inter_scale, tie)
    out = srpo(
        r, g, rel_areas=a, num_bins=num_bins, no_box=no_box, inter_scale=inter_scale, tie=tie
    )
    close(out, expected, atol=1e-5)


def test_srpo_degenerate_cells_are_exactly_zero_with_eps_zero():
    # 0.1 + 0.1 + 0.1 does not divide back to 0.1: the bin statistics must still give exact 0.
    # group 0: one bin of three 0.1 -> 0. group 1: bin 0 = {0.7, 0.7} (constant), bin 2 = {0.1}
    # (one member): intra 0; bin 0 is best, x = [1, 1, 0]: mean 2/3, std sqrt(1/3).
    out = srpo(
        [0.1, 0.1, 0.1, 0.7, 0.7, 0.1],
        [0, 0, 0, 1, 1, 1],
        rel_areas=[0.05, 0.05, 0.05, 0.05, 0.05, 0.5],
        eps=0.0,
    )
    assert out[:3].eq(0).all()
    s = math.sqrt(1 / 3)
    close(out[3:], [(1 / 3) / s, (1 / 3) / s, -(2 / 3) / s], atol=1e-6)


@pytest.mark.parametrize("seed", range(4))
def test_srpo_eps_zero_loop_vs_vectorised(seed):
    rng = random.Random(seed)
    r, g = _random_batch(rng, n_groups=10, levels=(0.1, 0.3, 0.7))
    a = [NAN if rng.random() < 0.2 else rng.choice([0.05, 0.2, 0.5]) for _ in r]
    out = srpo(r, g, rel_areas=a, eps=0.0)
    close(out, _ref_srpo(r, g, a, (0.1, 0.3), 0.0, "own_bin", "group_std", "all"), atol=1e-5)


# =============================================================================================
# SRPO, target reading
# =============================================================================================


def _ref_srpo_target(r, g, t, lengths, edges, eps):
    """Slow, obvious reference: GRPO by loop, then every target bin with advantage mass rescaled
    to an equal share of the total."""
    a = _ref_grpo(r, g, eps=eps)
    bins = [len(edges) + 1 if math.isnan(x) else sum(1 for e in edges if e <= x) for x in t]
    mass: dict[int, float] = {}
    for ai, b, n in zip(a, bins, lengths, strict=True):
        mass[b] = mass.get(b, 0.0) + abs(ai) * n
    carrying = {b: m for b, m in mass.items() if m > 0}
    total = sum(carrying.values())
    return [
        ai * total / (len(carrying) * carrying[b]) if b in carrying else ai
        for ai, b in zip(a, bins, strict=True)
    ]


@pytest.mark.parametrize("seed", range(6))
def test_srpo_target_loop_vs_vectorised(seed):
    rng = random.Random(seed)
    r, g = _random_batch(rng)
    # one target per question, log-uniform over the bins (NaN: no target); some empty rollouts
    target = {q: NAN if rng.random() < 0.15 else 10 ** rng.uniform(-4, -0.5) for q in set(g)}
    t = [target[q] for q in g]
    lengths = [rng.randint(0, 5) for _ in r]
    out = srpo_target(r, g, target_rel_areas=t, lengths=lengths)
    close(out, _ref_srpo_target(r, g, t, lengths, (1e-3, 1e-2), EPS), atol=1e-5)
    one_bin = [0.5] * len(r)  # every target in the last of the default bins: GRPO
    out = srpo_target(r, g, target_rel_areas=one_bin, lengths=lengths, eps=0.1)
    close(out, _ref_grpo(r, g, eps=0.1), atol=1e-5)


# =============================================================================================
# losses: aggregation
# =============================================================================================

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1, 1, 0], [1, 0, 0]], dtype=torch.bool)


def test_agg_modes_registry():
    assert set(AGG_MODES) == {"token-mean", "seq-mean-token-mean", "seq-mean-token-sum-norm"}


def test_agg_loss_by_hand():
    # tokens kept: row 0 -> 1, 2; row 1 -> 4
    # token-mean: (1 + 2 + 4) / 3 = 7/3
    assert agg_loss(LOSS, MASK, "token-mean").item() == pytest.approx(7 / 3)
    # seq-mean-token-mean: ((1 + 2) / 2 + 4 / 1) / 2 = (1.5 + 4) / 2 = 2.75
    assert agg_loss(LOSS, MASK, "seq-mean-token-mean").item() == pytest.approx(2.75)
    # seq-mean-token-sum-norm, norm_len None -> T = 3: (3 / 3 + 4 / 3) / 2 = 7/6
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum-norm").item() == pytest.approx(7 / 6)
    # norm_len = 4: (3 / 4 + 4 / 4) / 2 = 0.875
    assert agg_loss(LOSS, MASK, "seq-mean-token-sum-norm", norm_len=4).item() == pytest.approx(
        0.875
    )
    # float mask is the same as bool mask
    assert agg_loss(LOSS, MASK.float(), "token-mean").item() == pytest.approx(7 / 3)


def test_agg_loss_empty_rows():
    mask = torch.tensor([[1, 1, 0], [0, 0, 0]])
    # token-mean: (1 + 2) / 2 = 1.5; seq-mean-token-mean skips the empty row: 1.5
    # seq-mean-token-sum-norm divides by all B = 2 rows: (3 / 3 + 0) / 2 = 0.5
    assert agg_loss(LOSS, mask, "token-mean").item() == pytest.approx(1.5)
    assert agg_loss(LOSS, mask, "seq-mean-token-mean").item() == pytest.approx(1.5)
    assert agg_loss(LOSS, mask, "seq-mean-token-sum-norm").item() == pytest.approx(0.5)
    zero = torch.zeros(2, 3)
    for mode in AGG_MODES:
        assert agg_loss(LOSS, zero, mode).item() == 0.0


def test_agg_loss_gradient_weights():
    x = LOSS.clone().requires_grad_(True)
    agg_loss(x, MASK, "token-mean").backward()
    # d/dx = mask / 3 tokens
    torch.testing.assert_close(x.grad, MASK.float() / 3)
    x.grad = None
    agg_loss(x, MASK, "seq-mean-token-mean").backward()
    # row 0: 1 / (2 tokens * 2 rows) = 0.25; row 1: 1 / (1 token * 2 rows) = 0.5
    torch.testing.assert_close(x.grad, torch.tensor([[0.25, 0.25, 0.0], [0.5, 0.0, 0.0]]))


def test_agg_loss_errors():
    with pytest.raises(ValueError, match="Did you mean 'token-mean'") as exc:
        agg_loss(LOSS, MASK, "token_mean")
    assert "seq-mean-token-sum-norm" in str(exc.value)
    with pytest.raises(ValueError, match="norm_len"):
        agg_loss(LOSS, MASK, "seq-mean-token-sum-norm", norm_len=0)
    with pytest.raises(ValueError, match=r"\(2, 2\)"):
        agg_loss(LOSS, MASK[:, :2], "token-mean")


# =============================================================================================
# losses: clipped surrogate
# =============================================================================================


def test_policy_loss_clip_higher_by_hand():
    # one sequence, old_logp = 0, ratios [1.5, 1.0, 0.7], A = +1, clip 0.2 / 0.28 -> [0.8, 1.28]
    #   token 0: unclipped -1.5, clipped -1.28 -> max -1.28 (clipped, gradient 0)
    #   token 1: -1.0 both                      (gradient d(-ratio)/dlogp = -ratio = -1)
    #   token 2: unclipped -0.7, clipped -0.8   -> max -0.7 (unclipped, gradient -0.7)
    # token-mean: (-1.28 - 1 - 0.7) / 3 = -0.993333
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.7]])).requires_grad_(True)
    old = torch.zeros(1, 3)
    mask = torch.ones(1, 3)
    loss, m = policy_loss(logp, old, torch.tensor([1.0]), mask, clip_low=0.2, clip_high=0.28)
    assert loss.item() == pytest.approx(-2.98 / 3, abs=1e-6)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -1.0, -0.7]]) / 3)
    # clipfrac: only token 0 (clipped -1.28 > unclipped -1.5) -> 1/3
    assert m["clipfrac"].item() == pytest.approx(1 / 3)
    # approx_kl = mean((ratio - 1) - log ratio) = (0.5 - ln 1.5 + 0 + (-0.3) - ln 0.7) / 3
    kl = ((0.5 - math.log(1.5)) + (-0.3 - math.log(0.7))) / 3
    assert m["approx_kl"].item() == pytest.approx(kl, abs=1e-6)
    assert not m["clipfrac"].requires_grad


def test_policy_loss_symmetric_vs_asymmetric_clip():
    # ratio 1.25, A = +1: clip_high 0.2 -> clipped at 1.2 (gradient 0);
    # clip_high 0.28 -> inside (gradient -1.25)
    for clip_high, grad in ((0.2, 0.0), (0.28, -1.25)):
        logp = torch.log(torch.tensor([[1.25]])).requires_grad_(True)
        loss, _ = policy_loss(
            logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), clip_high=clip_high
        )
        loss.backward()
        assert logp.grad.item() == pytest.approx(grad)


def test_policy_loss_negative_advantage():
    # A = -1: ratio 0.5 -> unclipped 0.5, clipped 0.8 -> 0.8 (clipped, gradient 0);
    #         ratio 1.5 -> unclipped 1.5, clipped 1.2 -> 1.5 (unclipped, gradient +1.5)
    # token-mean (0.8 + 1.5) / 2 = 1.15; clipfrac 1/2
    logp = torch.log(torch.tensor([[0.5, 1.5]])).requires_grad_(True)
    loss, m = policy_loss(logp, torch.zeros(1, 2), torch.tensor([-1.0]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(1.15)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, 1.5]]) / 2)
    assert m["clipfrac"].item() == pytest.approx(0.5)


def test_policy_loss_broadcasts_advantages_and_masks():
    # ratio 1 everywhere -> per-token loss = -A; rows A = [2, -1]; mask drops row 0's last token
    # token-mean: (-2 - 2 + 1 + 1 + 1) / 5 = -0.2 ; seq-mean-token-mean: (-2 + 1) / 2 = -0.5
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 1, 0], [1, 1, 1]])
    adv = np.array([2.0, -1.0])  # numpy accepted
    loss, m = policy_loss(logp, logp, adv, mask)
    assert loss.item() == pytest.approx(-0.2)
    loss2, _ = policy_loss(logp, logp, adv, mask, agg="seq-mean-token-mean")
    assert loss2.item() == pytest.approx(-0.5)
    assert m["clipfrac"].item() == 0.0 and m["approx_kl"].item() == 0.0
    # (B, T) per-token advantages give the same as the broadcast (B,)
    loss3, _ = policy_loss(logp, logp, torch.tensor([[2.0] * 3, [-1.0] * 3]), mask)
    assert loss3.item() == pytest.approx(-0.2)


def test_policy_loss_errors():
    x = torch.zeros(2, 3)
    with pytest.raises(ValueError, match=r"advantages.*\(2,\)"):
        policy_loss(x, x, torch.zeros(3), torch.ones(2, 3))
    with pytest.raises(ValueError, match="old_logp"):
        policy_loss(x, torch.zeros(2, 4), torch.zeros(2), torch.ones(2, 3))
    with pytest.raises(ValueError, match="clip_low"):
        policy_loss(x, x, torch.zeros(2), torch.ones(2, 3), clip_low=1.0)
    with pytest.raises(ValueError, match="clip_high"):
        policy_loss(x, x, torch.zeros(2), torch.ones(2, 3), clip_high=-0.1)
    with pytest.raises(ValueError, match="Modes"):
        policy_loss(x, x, torch.zeros(2), torch.ones(2, 3), agg="mean")


# =============================================================================================
# losses: KL, config, combined loss
# =============================================================================================


def test_kl_k3_by_hand():
    logp = torch.tensor([[-1.0, -2.0, 0.0, math.log(2.0)]])
    ref = torch.tensor([[-1.0, -2.0, math.log(2.0), 0.0]])
    # equal -> 0; d = ref - logp = ln 2 -> 2 - ln 2 - 1 = 0.306853;
    # d = -ln 2 -> 0.5 + ln 2 - 1 = 0.193147
    k = kl_k3(logp, ref)
    torch.testing.assert_close(
        k, torch.tensor([[0.0, 0.0, 1 - math.log(2.0), math.log(2.0) - 0.5]])
    )
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(4, 7, generator=gen), torch.randn(4, 7, generator=gen)
    assert (kl_k3(a, b) > 0).all()
    assert kl_k3(a, a).eq(0).all()
    with pytest.raises(ValueError, match="must match"):
        kl_k3(a, b[:, :3])


def test_loss_config_validation():
    assert LossConfig().needs_ref is False and LossConfig(beta=0.04).needs_ref is True
    with pytest.raises(ValueError, match=r"clip_low \(1.0\)"):
        LossConfig(clip_low=1.0)
    with pytest.raises(ValueError, match=r"clip_high \(-0.1\)"):
        LossConfig(clip_high=-0.1)
    with pytest.raises(ValueError, match=r"beta \(-1"):
        LossConfig(beta=-1.0)
    with pytest.raises(ValueError, match="Did you mean 'token-mean'"):
        LossConfig(agg="tokenmean")
    with pytest.raises(ValueError, match="norm_len"):
        LossConfig(norm_len=0)


def test_compute_loss_with_kl_by_hand():
    # ratio 1, A = 1 -> pg per token -1 -> token-mean -1
    # ref = [ln 2, 0] vs logp 0: k3 = [1 - ln 2, 0] -> token-mean (1 - ln 2) / 2 = 0.153426
    # loss = -1 + 0.1 * 0.153426 = -0.984657
    logp = torch.zeros(1, 2, requires_grad=True)
    ref = torch.tensor([[math.log(2.0), 0.0]])
    cfg = LossConfig(beta=0.1)
    loss, m = compute_loss(logp, logp.detach(), ref, torch.tensor([1.0]), torch.ones(1, 2), cfg)
    kl = (1 - math.log(2.0)) / 2
    assert loss.item() == pytest.approx(-1 + 0.1 * kl)
    assert m["kl"].item() == pytest.approx(kl)
    assert m["pg_loss"].item() == pytest.approx(-1.0)
    assert m["loss"].item() == pytest.approx(loss.item())
    assert set(m) == {"loss", "pg_loss", "clipfrac", "approx_kl", "kl"}
    loss.backward()
    assert torch.isfinite(logp.grad).all() and logp.grad.abs().sum() > 0


def test_compute_loss_beta_zero_and_missing_ref():
    logp = torch.zeros(1, 2)
    ref = torch.tensor([[math.log(2.0), 0.0]])
    # beta 0: the KL is reported but not added
    loss, m = compute_loss(logp, logp, ref, torch.tensor([1.0]), torch.ones(1, 2))
    assert loss.item() == pytest.approx(-1.0) and "kl" in m
    loss, m = compute_loss(logp, logp, None, torch.tensor([1.0]), torch.ones(1, 2))
    assert "kl" not in m
    with pytest.raises(ValueError, match="ref_logp"):
        compute_loss(logp, logp, None, torch.tensor([1.0]), torch.ones(1, 2), LossConfig(beta=0.1))


def test_compute_loss_dr_grpo_aggregation():
    # ratio 1, A = [1, 1], mask lengths 1 and 3, norm_len 4:
    # seq-mean-token-sum-norm: ((-1) / 4 + (-3) / 4) / 2 = -0.5
    logp = torch.zeros(2, 3)
    mask = torch.tensor([[1, 0, 0], [1, 1, 1]])
    cfg = LossConfig(agg="seq-mean-token-sum-norm", norm_len=4)
    loss, _ = compute_loss(logp, logp, None, torch.ones(2), mask, cfg)
    assert loss.item() == pytest.approx(-0.5)


# =============================================================================================
# DAPO options
# =============================================================================================


def test_dynamic_sampling_mask_by_hand():
    # groups: 0 -> {1, 1} all equal (drop); 1 -> {0, 1} (keep); 2 -> {0.5, 0.5} (drop);
    # 3 -> a single rollout (drop)
    keep = dynamic_sampling_mask([1.0, 0.0, 1.0, 0.5, 1.0, 0.5, 2.0], [0, 1, 0, 2, 1, 2, 3])
    assert keep.dtype == torch.bool
    assert keep.tolist() == [False, True, False, False, True, False, False]
    # numpy rewards and string ids are accepted
    assert dynamic_sampling_mask(np.array([0.2, 0.2]), ["a", "a"]).tolist() == [False, False]


def test_overlong_penalty_by_hand():
    # max_len 100, cache 20 -> soft window (80, 100]
    # 50 -> 0; 80 -> 0; 90 -> (80 - 90) / 20 = -0.5; 95 -> -0.75; 100 -> -1; 101 -> -1
    out = overlong_penalty([50, 80, 90, 95, 100, 101], max_len=100, cache_len=20)
    assert out.dtype == torch.float32
    close(out, [0.0, 0.0, -0.5, -0.75, -1.0, -1.0])
    # cache_len 0: hard cut beyond max_len
    close(overlong_penalty(np.array([100, 101]), max_len=100, cache_len=0), [0.0, -1.0])
    with pytest.raises(ValueError, match="cache_len"):
        overlong_penalty([1], max_len=10, cache_len=11)
    with pytest.raises(ValueError, match="max_len"):
        overlong_penalty([1], max_len=0, cache_len=0)


def test_advantages_are_constants():
    # Rewards that carry a graph must not leak it into the advantages.
    r = torch.tensor([1.0, 0.0, 0.5], requires_grad=True)
    for name in ("grpo", "dr_grpo", "rloo"):
        assert not get_advantage_estimator(name)(r, [0, 0, 0]).requires_grad
    assert not srpo(r, [0, 0, 0], rel_areas=[0.2, 0.2, NAN]).requires_grad
