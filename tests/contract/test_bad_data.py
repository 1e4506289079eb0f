"""Files that fight back: a truncated JPEG and bad rows in a JSONL dataset.

`eval --on-error record` (the default) finishes with the bad episode recorded, its error kept and
left out of the metrics; `check-dataset` lists every bad row with file, line and reason; CLI user
errors print one line and exit 2 (`--debug` shows the traceback).
"""

from __future__ import annotations

import json

import pytest
from PIL import Image

from grounding_gym.cli import main
from grounding_gym.data.check import check_dataset
from grounding_gym.eval.harness import evaluate
from grounding_gym.eval.records import read_records

QUESTIONS = [("a.jpg", "A"), ("b.jpg", "B"), ("c.jpg", "A")]


@pytest.fixture
def bad_jpeg_dataset(tmp_path):
    """Three rows; b.jpg keeps its header but loses the second half of its bytes."""
    for index, (name, _) in enumerate(QUESTIONS):
        Image.new("RGB", (320, 240), (40 * index, 90, 160)).save(tmp_path / name, quality=90)
    data = (tmp_path / "b.jpg").read_bytes()
    (tmp_path / "b.jpg").write_bytes(data[: len(data) // 2])
    lines = [
        {"id": f"q{i}", "image": name, "question": "Colour?", "options": ["x", "y"], "answer": a}
        for i, (name, a) in enumerate(QUESTIONS)
    ]
    (tmp_path / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    return tmp_path


def eval_args(data_dir, out, *extra):
    return [
        "eval",
        "--agent",
        "fixed-answer",
        "--dataset",
        "jsonl",
        "--data-dir",
        str(data_dir),
        "--out",
        str(out),
        "--no-progress",
        "--no-plots",
        *extra,
    ]


def test_eval_records_the_corrupt_image_and_goes_on(bad_jpeg_dataset, tmp_path, capsys):
    out = tmp_path / "run"
    with pytest.warns(UserWarning, match="1 of 3 episodes failed"):
        assert main(eval_args(bad_jpeg_dataset, out)) == 0
    records = sorted(read_records(out / "episodes.jsonl"), key=lambda r: r["episode"])
    assert len(records) == 3
    failed = [r for r in records if r.get("error")]
    assert len(failed) == 1 and failed[0]["sample_id"] == "q1"
    assert failed[0]["error_stage"] == "reset" and "ImageLoadError" in failed[0]["error"]
    assert "b.jpg" in failed[0]["error"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["errors"]["n"] == 1 and summary["errors"]["episodes"][0]["sample_id"] == "q1"
    assert summary["overall"]["n"] == 2  # left out of the metrics
    assert "1 episode(s) failed" in (out / "summary.md").read_text()
    # A rerun resumes: nothing left to run, the failed sample is not retried, no duplicates.
    with pytest.warns(UserWarning, match="1 of 3"):
        assert main(eval_args(bad_jpeg_dataset, out)) == 0
    assert len(read_records(out / "episodes.jsonl")) == 3


def test_on_error_skip_writes_nothing_and_raise_stops(bad_jpeg_dataset, tmp_path, capsys):
    out = tmp_path / "skip"
    assert main(eval_args(bad_jpeg_dataset, out, "--on-error", "skip")) == 0
    assert sorted(r["sample_id"] for r in read_records(out / "episodes.jsonl")) == ["q0", "q2"]
    capsys.readouterr()
    code = main(eval_args(bad_jpeg_dataset, tmp_path / "raise", "--on-error", "raise"))
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("grounding-gym: error: ") and "\n" not in err
    assert "b.jpg" in err


def test_check_dataset_names_the_truncated_image(bad_jpeg_dataset, capsys):
    assert main(["check-dataset", "--data-dir", str(bad_jpeg_dataset)]) == 0  # header is fine
    assert "3 samples loaded, 0 bad" in capsys.readouterr().out
    assert main(["check-dataset", "--data-dir", str(bad_jpeg_dataset), "--decode"]) == 1
    out = capsys.readouterr().out
    assert "line 2, file" in out and "b.jpg" in out and "'q1'" in out
    assert "3 samples loaded, 1 bad" in out


def test_check_dataset_lists_every_bad_row(bad_jpeg_dataset):
    rows = (bad_jpeg_dataset / "data.jsonl").read_text().splitlines()
    rows[0] = "{not json"
    rows.append(json.dumps({"id": "q3", "image": "missing.jpg", "question": "?", "answer": "x"}))
    rows.append(json.dumps({"id": "q4", "image": "a.jpg", "answer": "x"}))
    (bad_jpeg_dataset / "data.jsonl").write_text("\n".join(rows) + "\n")
    n, problems = check_dataset("jsonl", {"data_dir": str(bad_jpeg_dataset)}, decode=True)
    assert n == 2  # q1 (truncated image) and q2 load; q1's pixels fail
    reasons = {p.where.split(",")[1].strip(): p.reason for p in problems if p.sample_id is None}
    assert set(reasons) == {"line 1", "line 4", "line 5"}
    assert "not valid JSON" in reasons["line 1"] and "image file not found" in reasons["line 4"]
    assert "question" in reasons["line 5"]
    assert [p.sample_id for p in problems if p.sample_id is not None] == ["q1"]


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["eval", "--agent", "no-crp", "-n", "1"], "Did you mean 'no-crop'?"),
        (["eval", "--agent", "no-crop", "--env", "GroundedVQA-HR-v9"], "GroundedVQA-HR-v0"),
        (["eval", "--agent", "no-crop", "--dataset", "vstra"], "Did you mean 'vstar'?"),
        (
            ["eval", "--agent", "no-crop", "--dataset", "vstar"],
            "missing required argument 'data_dir'",
        ),
        (
            ["eval", "--agent", "no-crop", "--env-kwargs", '{"reward_weights": {"anser": 5}}'],
            "Did you mean 'answer'?",
        ),
        (["check-dataset", "--dataset", "jsonl", "--data-dir", "/nonexistent"], "nonexistent"),
    ],
)
def test_cli_user_errors_are_one_line(argv, fragment, tmp_path, capsys):
    code = main([*argv, "--out", str(tmp_path / "o")] if argv[0] == "eval" else argv)
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("grounding-gym: error: ") and "\n" not in err
    assert fragment in err


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(ValueError, match="no-crop"):
        main(["--debug", "eval", "--agent", "no-crp", "--out", str(tmp_path / "o")])


def test_strict_kwargs_of_datasets_and_agents():
    with pytest.raises(ValueError, match="Did you mean 'image_size'"):
        evaluate("no-crop", dataset_kwargs={"imagesize": 512}, n=1, progress=False, plots=False)
    with pytest.raises(ValueError, match="agent 'random-crop'.*Did you mean 'seed'"):
        evaluate(
            "random-crop",
            dataset_kwargs={"num_samples": 4, "image_size": 512},
            agent_kwargs={"sed": 1},
            n=1,
            progress=False,
            plots=False,
        )
