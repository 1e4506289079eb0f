"""agents/algos/advantages.py: the estimators and their registry, by hand and against loops.

Unbiased std (n - 1) throughout. EPS = 1e-6 is the estimators' default and appears in the formulas.
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
    AdvantageEstimator,
    dr_grpo,
    estimator_needs,
    estimator_options,
    get_advantage_estimator,
    grpo,
    list_advantage_estimators,
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


def test_dr_grpo_by_hand():
    # [1, 0, 0, 0]: mean 0.25 -> [0.75, -0.25, -0.25, -0.25] (no std division)
    close(dr_grpo([1.0, 0.0, 0.0, 0.0], [0, 0, 0, 0]), [0.75, -0.25, -0.25, -0.25])
    # groups {2, 4} (mean 3) and {10, 0, 5} (mean 5): [-1, 1, 5, -5, 0]
    close(dr_grpo([2.0, 4.0, 10.0, 0.0, 5.0], [1, 1, 2, 2, 2]), [-1.0, 1.0, 5.0, -5.0, 0.0])


def test_dr_grpo_zero_variance_and_singleton():
    out = dr_grpo([0.7, 0.7, 0.7, 3.0], [0, 0, 0, 1])
    assert out.eq(0).all()


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
    assert torch.equal(out, grpo(r, g, eps=0.1))  # one standardisation (_groups.standardise)
