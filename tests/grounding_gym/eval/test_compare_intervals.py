"""`compare RUN RUN` with uncertainty (issue 28, deliverable 4) and `grounding_gym.eval.stats`.

Two real V*-format runs (30 episodes, `fixed-answer` guessing A vs B, so their answers differ per
sample) are compared: every group shows its 95 % Wilson interval, the Δ is paired over the shared
sample ids with a bootstrap interval, and notes say when n or the sample sets differ. Expected
values are computed here from the episode files and textbook formulas.
"""

from __future__ import annotations

import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from grounding_gym.cli import main
from grounding_gym.eval import load_summary
from grounding_gym.eval.metrics import summarize
from grounding_gym.eval.report import compare_table
from grounding_gym.eval.stats import bootstrap_ci, paired_bootstrap, wilson_interval
from tests.grounding_gym.eval.test_published import run_eval, wilson, write_vstar


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("cmp")
    data = write_vstar(root / "vstar")
    common = ["--agent", "fixed-answer", "--dataset", "vstar", "--data-dir", str(data)]
    return {
        "A": run_eval(root / "a", *common, "--label", "guess-a"),
        "B": run_eval(
            root / "b", *common, "--agent-kwargs", '{"guess": "B"}', "--label", "guess-b"
        ),
        "B20": run_eval(
            root / "b20",
            *common,
            "--agent-kwargs",
            '{"guess": "B"}',
            "--label",
            "guess-b20",
            "--samples",
            "0:20",
        ),
    }


def _lines(run: Path) -> list[str]:
    return (run / "episodes.jsonl").read_text().splitlines()


def correct_by_sample(run: Path) -> dict[str, float]:
    return {r["sample_id"]: float(r["correct"]) for r in map(json.loads, _lines(run))}


def row_cells(out: str, group: str) -> list[str]:
    line = next(x for x in out.splitlines() if x.startswith(group + " "))
    return re.split(r"\s{2,}", line.strip())


def test_same_samples_per_bin_intervals_and_a_paired_difference(runs, capsys):
    capsys.readouterr()
    assert main(["compare", str(runs["A"]), str(runs["B"])]) == 0
    out = capsys.readouterr().out
    assert "95 % Wilson interval" in out and "note:" not in out
    a, b = load_summary(runs["A"]), load_summary(runs["B"])
    groups = [("overall", a["overall"], b["overall"])]
    groups += [(name, a["per_bin"][name], b["per_bin"][name]) for name in a["per_bin"]]
    for name, stats_a, stats_b in groups:
        if not stats_a["n"]:
            continue
        cells = row_cells(out, name)
        for stats, cell in ((stats_a, cells[2]), (stats_b, cells[3])):
            k = round(stats["accuracy"] * stats["n"])
            low, high = wilson(k, stats["n"])
            assert cell == f"{100 * k / stats['n']:.1f} [{100 * low:.1f}, {100 * high:.1f}]"
    by_a, by_b = correct_by_sample(runs["A"]), correct_by_sample(runs["B"])
    assert len(by_a) == 30 and by_a.keys() == by_b.keys()
    category = {r["sample_id"]: r["category"] for r in map(json.loads, _lines(runs["A"]))}
    means = {}
    for group in ("overall", "direct_attributes", "relative_position"):
        ids = [k for k in by_a if group == "overall" or category[k] == group]
        means[group] = np.mean([by_b[k] - by_a[k] for k in ids])
        delta = row_cells(out, group)[4]
        pattern = rf"([+-]\d+\.\d) \[([+-]\d+\.\d), ([+-]\d+\.\d)\] \(pairs={len(ids)}\)"
        match = re.fullmatch(pattern, delta)
        assert match, delta
        value, low, high = (float(g) for g in match.groups())
        assert value == pytest.approx(100 * means[group], abs=0.05) and low < value < high
    assert any(means.values())  # the guesses differ per sample: a real paired difference


def test_different_sample_sets_are_paired_over_the_shared_ones_with_a_note(runs, capsys):
    capsys.readouterr()
    assert main(["compare", str(runs["A"]), str(runs["B20"])]) == 0
    out = capsys.readouterr().out
    assert "note: n differs (guess-a: 30, guess-b20: 20 episodes)" in out
    assert "answered different sample sets (guess-a: 30, guess-b20: 20, shared: 20)" in out
    by_a, by_b = correct_by_sample(runs["A"]), correct_by_sample(runs["B20"])
    mean = np.mean([by_b[k] - by_a[k] for k in by_b])
    delta = row_cells(out, "overall")[4]
    assert delta.startswith(f"{100 * mean:+.1f} [") and delta.endswith("(pairs=20)")


def test_a_run_without_episode_records_gets_an_unpaired_delta_and_a_note(runs, tmp_path, capsys):
    summary_only = tmp_path / "summary-only"
    summary_only.mkdir()
    shutil.copy(runs["B"] / "summary.json", summary_only / "summary.json")
    capsys.readouterr()
    assert main(["compare", str(runs["A"]), str(summary_only)]) == 0
    out = capsys.readouterr().out
    assert "note: guess-b has no episode records (episodes.jsonl)" in out
    a, b = load_summary(runs["A"]), load_summary(runs["B"])
    diff = 100 * (b["overall"]["accuracy"] - a["overall"]["accuracy"])
    assert row_cells(out, "overall")[4] == f"{diff:+.1f}"


def test_the_plot_has_a_per_bin_bar_chart_beside_the_area_lines(runs, tmp_path, capsys):
    png = tmp_path / "cmp.png"
    assert main(["compare", str(runs["A"]), str(runs["B"]), "--plot", str(png)]) == 0
    assert f"plot: {png}" in capsys.readouterr().out
    with Image.open(png) as image:
        width, height = image.size
    assert width > 2 * height  # two panels side by side


# ---------------------------------------------------------------- the report function itself


def records(correct: list[int], areas: list[float], ids: list[str]) -> list[dict]:
    return [
        {"episode": i, "sample_id": s, "correct": bool(c), "target_rel_area": a, "category": "x"}
        for i, (c, a, s) in enumerate(zip(correct, areas, ids, strict=True))
    ]


def test_compare_table_pairs_each_bin_over_its_shared_samples():
    """Bin edges (1e-3, 1e-2): q0-q3 are small, q4-q7 large. A is right on q0, q4, q5; B on q0,
    q1, q2, q4. Small: B - A = (0 + 1 + 1 + 0) / 4 = +50 points; large: (0 - 1 + 0 + 0) / 4."""
    ids = [f"q{i}" for i in range(8)]
    areas = [1e-4] * 4 + [0.5] * 4
    edges = (1e-3, 1e-2)
    run_a = records([1, 0, 0, 0, 1, 1, 0, 0], areas, ids)
    run_b = records([1, 1, 1, 0, 1, 0, 0, 0], areas, ids)
    summaries = [
        summarize(r, edges, {"label": label, "bin_edges": list(edges)})
        for r, label in ((run_a, "A"), (run_b, "B"))
    ]
    out = compare_table(summaries, records=[run_a, run_b])
    assert row_cells(out, "small")[4].startswith("+50.0 [") and "(pairs=4)" in out
    assert row_cells(out, "large")[4].startswith("-25.0 [")
    assert row_cells(out, "overall")[4].startswith("+12.5 [")
    with pytest.raises(ValueError, match="records has 1 entries for 2 summaries"):
        compare_table(summaries, records=[run_a])


# ---------------------------------------------------------------- stats


@pytest.mark.parametrize(("k", "n"), [(0, 5), (5, 5), (15, 30), (1, 35), (34, 35), (100, 191)])
def test_wilson_interval_matches_the_textbook_formula(k, n):
    assert wilson_interval(k, n) == pytest.approx(wilson(k, n), abs=1e-12)
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n)  # exact ends
    assert math.isnan(wilson_interval(0, 0)[0])


def test_paired_bootstrap_is_bootstrap_ci_of_the_per_sample_differences():
    rng = np.random.default_rng(3)
    a = {f"s{i}": float(v) for i, v in enumerate(rng.integers(0, 2, 50))}
    b = {f"s{i}": float(v) for i, v in enumerate(rng.integers(0, 2, 60))}
    diff = paired_bootstrap(a, b)
    shared = sorted(a)  # s0..s49, all in b
    mean, low, high = bootstrap_ci([b[k] - a[k] for k in shared])
    assert (diff.n, diff.only_a, diff.only_b) == (50, 0, 10)
    assert (diff.mean, diff.low, diff.high) == (mean, low, high)
    assert diff.mean == pytest.approx(np.mean([b[k] - a[k] for k in shared]))


def test_bootstrap_ci_over_many_samples_is_drawn_in_chunks_and_stays_seeded():
    values = np.random.default_rng(0).integers(0, 2, 5000).astype(float)  # 5000 x 10000 draws
    first = bootstrap_ci(values)
    assert first == bootstrap_ci(values)
    mean, low, high = first
    se = values.std() / math.sqrt(values.size)
    assert low < mean < high and high - low == pytest.approx(2 * 1.96 * se, rel=0.1)


def test_hrbench_rotations_are_paired_by_question_with_a_note(tmp_path, capsys):
    from tests.grounding_gym.data.formats.test_loaders import (
        HR_COLUMNS,
        hr_images,
        hrbench_rows,
        write_tsv,
    )

    path = write_tsv(tmp_path / "hr_bench_4k.tsv", HR_COLUMNS, hrbench_rows(hr_images()))
    common = ["--agent", "fixed-answer", "--dataset", "hrbench", "--data-dir", str(path)]
    a = run_eval(tmp_path / "a", *common, "--label", "guess-a")
    b = run_eval(tmp_path / "b", *common, "--agent-kwargs", '{"guess": "B"}', "--label", "guess-b")
    capsys.readouterr()
    assert main(["compare", str(a), str(b)]) == 0
    out = capsys.readouterr().out
    assert "note: guess-a: n counts 8 rotations of 2 questions, which are not independent" in out
    rows = [json.loads(x) for x in _lines(a)], [json.loads(x) for x in _lines(b)]
    per_question = [{}, {}]
    for scores, run_rows in zip(per_question, rows, strict=True):
        for r in run_rows:
            scores.setdefault(r["cycle_id"], []).append(float(r["correct"]))
    mean = np.mean([np.mean(per_question[1][q]) - np.mean(per_question[0][q]) for q in ("0", "1")])
    delta = row_cells(out, "overall")[4]
    assert delta.startswith(f"{100 * mean:+.1f} [") and delta.endswith("(pairs=2)")
