"""Per-benchmark default scale bins and `--bin-edges quantiles:K` (issue 15, deliverable 3).

Fixture: a V*-layout folder whose targets span 1e-4..3e-2 of the image, as V*'s do (with the old
default edges 0.1 / 0.3 every one of them would be "small").
"""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import pytest
from PIL import Image

import grounding_gym  # noqa: F401  (registers the env ids)
import grounding_gym.data.loaders  # noqa: F401  (registers the datasets and their edges)
from grounding_gym.cli import main
from grounding_gym.data.registry import dataset_bin_edges
from grounding_gym.eval import load_summary
from grounding_gym.scale import DEFAULT_BIN_EDGES, parse_bin_spec, quantile_bin_edges

SIZE = (2000, 1500)  # 3e6 px
AREAS = (1e-4, 3e-4, 3e-3, 5e-3, 2e-2, 3e-2)  # target relative areas: two per decade bin


def write_vstar(root: Path) -> Path:
    """One square target per image, of each area in `AREAS`."""
    (root / "direct_attributes").mkdir(parents=True)
    (root / "relative_position").mkdir()
    for i, area in enumerate(AREAS):
        side = (area * SIZE[0] * SIZE[1]) ** 0.5
        Image.new("RGB", SIZE, (200, 200, 200)).save(
            root / "direct_attributes" / f"sa_{i}.jpg", quality=50
        )
        record = {
            "target_object": ["cup"],
            "bbox": [[100.0, 100.0, side, side]],
            "question": "What is the colour of the cup?",
            "options": ["red", "blue"],
        }
        (root / "direct_attributes" / f"sa_{i}.json").write_text(json.dumps(record))
    return root


def test_high_resolution_benchmarks_declare_log_decade_edges():
    for name in ("vstar", "hrbench", "mme-realworld", "treebench", "synthetic-hr"):
        edges, why = dataset_bin_edges(name)
        assert edges == (1e-3, 1e-2) and why
    assert dataset_bin_edges("refcoco")[0] == DEFAULT_BIN_EDGES  # larger objects
    assert dataset_bin_edges("jsonl") is None


def test_shipped_synthetic_hr_baselines_use_its_edges_and_fill_three_bins():
    folder = Path(__file__).resolve().parents[2] / "baselines" / "synthetic-hr"
    summaries = sorted(folder.glob("*/summary.json"))
    assert len(summaries) == 5
    for file in summaries:
        summary = load_summary(file)
        meta, per_bin = summary["meta"], summary["per_bin"]
        assert (
            meta["bin_edges"] == [1e-3, 1e-2]
            and "dataset 'synthetic-hr' default" in meta["bin_edges_source"]
        )
        assert all(per_bin[name]["n"] > 0 for name in ("small", "medium", "large")), (file, per_bin)


def test_env_info_uses_the_dataset_edges_unless_given(tmp_path):
    root = write_vstar(tmp_path / "vstar")
    env = gym.make(
        "GroundedVQA-HR-v0", dataset="vstar", data_dir=str(root), disable_env_checker=True
    )
    assert env.unwrapped.scale_bin_edges == (1e-3, 1e-2)
    assert "dataset 'vstar' default" in env.unwrapped.scale_bin_edges_source
    bins = [
        env.reset(seed=0, options={"sample_id": i})[1]["target_scale_bin"]
        for i in range(len(AREAS))
    ]
    assert bins == ["small", "small", "medium", "medium", "large", "large"]
    given = gym.make(
        "GroundedVQA-HR-v0",
        dataset="vstar",
        data_dir=str(root),
        scale_bin_edges=(0.1, 0.3),
        disable_env_checker=True,
    )
    assert (
        given.unwrapped.scale_bin_edges == (0.1, 0.3)
        and given.unwrapped.scale_bin_edges_source == "scale_bin_edges given"
    )


def test_eval_oracle_crop_on_vstar_reports_three_non_empty_bins(tmp_path, capsys):
    root = write_vstar(tmp_path / "vstar")
    out = tmp_path / "run"
    code = main(
        [
            "eval",
            "--agent",
            "oracle-crop",
            "--dataset",
            "vstar",
            "--data-dir",
            str(root),
            "--out",
            str(out),
            "--no-progress",
            "--no-plots",
        ]
    )
    assert code == 0
    summary = load_summary(out)
    assert [stats["n"] for stats in summary["per_bin"].values()] == [2, 2, 2]
    assert summary["meta"]["bin_edges"] == [1e-3, 1e-2]
    assert "dataset 'vstar' default" in summary["meta"]["bin_edges_source"]
    assert "edges 0.001, 0.01 (dataset 'vstar' default" in capsys.readouterr().out


def test_bin_edges_quantiles_split_a_run_into_equal_counts(tmp_path):
    root = write_vstar(tmp_path / "vstar")
    out = tmp_path / "q"
    assert (
        main(
            [
                "eval",
                "--agent",
                "no-crop",
                "--dataset",
                "vstar",
                "--data-dir",
                str(root),
                "--out",
                str(out),
                "--bin-edges",
                "quantiles:2",
                "--no-progress",
                "--no-plots",
            ]
        )
        == 0
    )
    summary = load_summary(out)
    assert [stats["n"] for stats in summary["per_bin"].values()] == [3, 3]
    assert summary["meta"]["bin_edges"] == pytest.approx([5e-3])
    assert summary["meta"]["bin_edges_source"].startswith("quantiles:2")


def test_bin_spec_parsing_and_quantiles_by_hand():
    assert parse_bin_spec("1e-3, 1e-2") == (1e-3, 1e-2) and parse_bin_spec("quantiles:3") == 3
    assert quantile_bin_edges([0.4, None, 0.1, float("nan"), 0.3, 0.2], 2) == (0.3,)
    assert quantile_bin_edges(AREAS, 3) == (3e-3, 2e-2)
    for bad in ("quantiles:1", "quantiles:x", "0.3,0.1", "big"):
        with pytest.raises(ValueError):
            parse_bin_spec(bad)
    with pytest.raises(ValueError, match="needs at least 4 episodes"):
        quantile_bin_edges([0.1, 0.2], 4)
    with pytest.raises(SystemExit):  # argparse refuses it, naming the option
        main(["eval", "--agent", "no-crop", "--bin-edges", "quantiles:1"])
