"""agents/demo.py: a smoke run with a tiny budget prints the per-bin table and saves its outputs."""

from __future__ import annotations

import json

import pytest

from agents.demo import (
    CROP_NAMES,
    SCALES,
    SRPO_BIN_EDGES,
    demo_config,
    format_crop_choice,
    format_table,
    main,
)


def test_format_table_lists_every_agent_and_bin():
    m = {"acc": 0.5, "acc_small": 0.25, "miou": 0.1, "miou_small": 0.2, "n_small": 4.0}
    table = format_table({"a": m, "b": m})
    assert "| a |" in table and "| b |" in table and "acc small" in table and "IoU large" in table
    assert "nan" in table  # missing bins are shown as nan, not dropped
    assert "small n=4" in table and "(0.001, 0.01)" in table


def test_format_crop_choice_shares_sum_to_one_with_no_crop():
    m = {"p_crop_0.22_large": 0.75, "p_crop_0.12_large": 0.0}
    table = format_crop_choice({"tiny": m})
    assert "| no crop | crop 0.22 | crop 0.12 |" in table  # widest first
    assert "| tiny | large | 0.25 | 0.75 | 0.00 |" in table
    assert "| tiny | small | nan | nan | nan |" in table  # a bin without episodes


def _demo_args(**overrides):
    import argparse
    from pathlib import Path

    args = {
        "out": Path("x"),
        "seed": 0,
        "image_size": 2048,
        "eval_questions": 120,
        "algo": "srpo",
        "lr": 3e-3,
        "steps": 250,
        "minutes": None,
        "grad_diagnostics_every": 10,
        "no_progress": True,
    }
    return argparse.Namespace(**{**args, **overrides})


def test_demo_policy_has_the_scale_head_and_one_srpo_bin_per_scale():
    """The demo's policy conditions its crop scale on the target's extent (issue 25), and
    SRPO's crop bins hold one scale each."""
    from agents.policies import make_policy

    cfg = demo_config(_demo_args())
    policy = make_policy(cfg.policy, **cfg.policy_kwargs)
    assert policy.scale_head and policy.scale_extent is not None
    assert policy.scale_extent.weight.shape == (len(SCALES), len(SCALES))
    assert policy.scales == SCALES
    areas = sorted(s * s for s in SCALES)  # first crop's relative area: the view is the image
    bins = [sum(a >= e for e in SRPO_BIN_EDGES) for a in areas]
    assert bins == list(range(len(SCALES)))
    assert CROP_NAMES == tuple(f"{s:g}" for s in sorted(SCALES))
    assert cfg.adv_kwargs == {"bin_edges": list(SRPO_BIN_EDGES)}


@pytest.mark.slow
def test_demo_smoke_run_prints_the_table(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(
        [
            "--steps",
            "2",
            "--eval-questions",
            "6",
            "--image-size",
            "512",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    text = capsys.readouterr().out
    for row in ("| no-crop |", "| oracle-crop |", "| tiny (before) |", "| tiny (after) |"):
        assert row in text
    assert "| tiny (after) | small |" in text  # the crop-choice table
    assert "512x512 px images" in text and "Trained 2 steps" in text
    results = json.loads((out / "results.json").read_text())
    assert results["steps"] == 2 and set(results["results"]) == {
        "no-crop",
        "oracle-crop",
        "tiny (before)",
        "tiny (after)",
    }
    assert (out / "learning_curve.png").stat().st_size > 0
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_example_config_is_the_demo_config():
    from pathlib import Path

    from agents.config import load_config

    root = Path(__file__).resolve().parents[2]
    example = load_config(root / "examples" / "train_tiny_srpo.yaml").to_dict()
    demo = demo_config(_demo_args()).to_dict()
    for key in (
        "env_id",
        "env_kwargs",
        "policy",
        "policy_kwargs",
        "algo",
        "adv_kwargs",
        "g1",
        "g2",
        "questions_per_step",
        "lr",
        "update_epochs",
        "bin_edges",
        "train_samples",
        "total_steps",
    ):
        assert example[key] == demo[key], key
