"""agents/demo.py: a smoke run with a tiny budget prints the per-bin table and saves its outputs."""

from __future__ import annotations

import json

import pytest

from agents.demo import format_table, main


def test_format_table_lists_every_agent_and_bin():
    m = {"acc": 0.5, "acc_small": 0.25, "miou": 0.1, "miou_small": 0.2, "n_small": 4.0}
    table = format_table({"a": m, "b": m})
    assert "| a |" in table and "| b |" in table and "acc small" in table and "IoU large" in table
    assert "nan" in table  # missing bins are shown as nan, not dropped
    assert "small n=4" in table and "(0.001, 0.01)" in table


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
    import argparse
    from pathlib import Path

    from agents.config import load_config
    from agents.demo import demo_config

    root = Path(__file__).resolve().parents[2]
    example = load_config(root / "examples" / "train_tiny_srpo.yaml").to_dict()
    args = argparse.Namespace(
        out=Path("x"),
        seed=0,
        image_size=2048,
        eval_questions=120,
        algo="srpo",
        lr=3e-3,
        steps=250,
        minutes=None,
        grad_diagnostics_every=10,
        no_progress=True,
    )
    demo = demo_config(args).to_dict()
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
