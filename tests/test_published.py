"""Published reference accuracies (`baselines/published/`) and `compare --published` (issue 15,
deliverable 4).

The shipped files must load, cite a source for every row and quote every number; `compare RUN
--published` prints them beside a run's overall and per-category accuracy. The run is a tiny V*
folder (two questions per category, as V*'s loader reads them) evaluated with the oracle agent.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from grounding_gym.cli import main
from grounding_gym.eval import load_summary
from grounding_gym.eval.cli import baselines_dir
from grounding_gym.eval.published import (
    OVERALL,
    PublishedFormatError,
    find_published,
    list_published,
    load_published,
    match_category,
)

PUBLISHED = baselines_dir() / "published"
EXPECTED = {"vstar", "hrbench-4k", "hrbench-8k", "mme-realworld", "treebench"}


def test_every_shipped_file_loads_and_every_row_is_sourced_and_quoted():
    benchmarks = {b.name: b for b in list_published(PUBLISHED)}
    assert set(benchmarks) == EXPECTED
    for bench in benchmarks.values():
        assert bench.path.name == f"{bench.name}.json"
        for row in bench.rows:
            assert row.source.title and row.source.url.startswith("https://") and row.source.table
            assert row.quote and row.accuracy
            for split, value in row.accuracy.items():
                assert split == OVERALL or split in bench.categories
                assert f"{value:g}" in row.quote, (bench.name, row.system, split)


def test_vstar_has_at_least_four_sourced_systems_with_categories_named_as_our_loader_names_them():
    (vstar,) = find_published("vstar", PUBLISHED)
    systems = {r.system for r in vstar.rows if OVERALL in r.accuracy}
    assert len(systems) >= 4
    assert {"DeepEyes", "Mini-o3", "Qwen2.5-VL-7B"} <= systems
    from grounding_gym.data.formats.vstar import VSTAR_CATEGORIES

    assert vstar.categories == VSTAR_CATEGORIES
    qwen = next(r for r in vstar.rows if r.system == "Qwen2.5-VL-7B")
    assert qwen.accuracy == {"direct_attributes": 73.9, "relative_position": 67.1, OVERALL: 71.2}
    assert qwen.source.key == "see-it-say-it-sorted" and qwen.size == "7B"


def test_a_dataset_name_finds_every_benchmark_it_covers():
    assert [b.name for b in find_published("hrbench", PUBLISHED)] == ["hrbench-4k", "hrbench-8k"]
    assert [b.name for b in find_published("hrbench-8k", PUBLISHED)] == ["hrbench-8k"]
    with pytest.raises(
        FileNotFoundError, match=r"'vstr' \(did you mean 'vstar'\?\); published: \["
    ):
        find_published("vstr", PUBLISHED)


def test_categories_match_by_name_case_or_last_path_part():
    categories = ("Attributes", "OCR")
    assert match_category("attributes", categories) == "Attributes"
    assert match_category("Perception/OCR", categories) == "OCR"
    assert match_category("Perception/Material", categories) is None


# ---------------------------------------------------------------- malformed files


def write_published(root: Path, row: dict, **top) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    source = {
        "title": "A paper",
        "url": "https://example.org/paper",
        "table": "Table 1",
        "arxiv": "2501.00001",
    }
    (root / "sources.json").write_text(json.dumps({"paper": source}))
    data = {
        "benchmark": "vstar",
        "title": "V* Bench",
        "datasets": ["vstar"],
        "categories": ["direct_attributes", "relative_position"],
        "category_labels": {},
        "rows": [
            {
                "system": "Good",
                "base_model": None,
                "size": "7B",
                "source": "paper",
                "accuracy": {"overall": 50.0},
                "quote": "Good | 50.0",
            },
            row,
        ],
        **top,
    }
    file = root / "vstar.json"
    file.write_text(json.dumps(data))
    return file


GOOD = {
    "system": "Sys",
    "base_model": None,
    "size": None,
    "source": "paper",
    "accuracy": {"overall": 61.5},
    "quote": "Sys | 61.5",
}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"source": "papr"},
            r"row 1 \('Sys'\): source 'papr' is not in sources.json \(did you mean 'paper'\?\)",
        ),
        (
            {"accuracy": {"overall": 61.6}},
            r"row 1 \('Sys'\): accuracy\['overall'\] = 61.6 does not appear in its quote",
        ),
        (
            {"accuracy": {"overall": 0.615}},
            r"row 1 \('Sys'\): accuracy\['overall'\] = 0.615 does not appear",
        ),
        (
            {"accuracy": {"overall": 161.5}},
            r"accuracy\['overall'\] must be a percentage in \[0, 100\], got 161.5",
        ),
        (
            {"accuracy": {"attribute": 61.5}},
            r"unknown split 'attribute'.*splits: \['overall', 'direct_attributes'",
        ),
        ({"quote": " "}, r"row 1 \('Sys'\): 'quote' must be a non-empty string"),
        ({"szie": "7B"}, r"row 1 \('Sys'\): unknown field\(s\) 'szie' \(did you mean 'size'\?\)"),
    ],
)
def test_a_malformed_row_names_the_file_the_row_and_the_problem(tmp_path, change, message):
    file = write_published(tmp_path / "published", {**GOOD, **change})
    with pytest.raises(PublishedFormatError, match=message) as info:
        load_published(file)
    assert str(info.value).startswith(f"{file}: ")


def test_a_row_without_a_source_and_a_broken_file_are_refused(tmp_path):
    row = {k: v for k, v in GOOD.items() if k != "source"}
    file = write_published(tmp_path / "published", row)
    with pytest.raises(
        PublishedFormatError, match=r"vstar.json: row 1 \('Sys'\): missing field\(s\) \['source'\]"
    ):
        load_published(file)
    file.write_text('{"benchmark": "vstar",')
    with pytest.raises(PublishedFormatError, match=r"vstar.json: not valid JSON"):
        load_published(file)


def test_compare_reports_a_malformed_published_file_and_exits_2(tmp_path, capsys):
    write_published(tmp_path / "published", {**GOOD, "accuracy": {"overall": 99.0}})
    assert main(["compare", "--published", "vstar", "--baselines-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert (
        "compare: " in err
        and "vstar.json: row 1 ('Sys'): accuracy['overall'] = 99 does not appear" in err
    )


# ---------------------------------------------------------------- compare --published


def write_vstar(root: Path) -> Path:
    """Two questions per V* category; each target is a 60x60 px box of a 1200x900 px image."""
    for category in ("direct_attributes", "relative_position"):
        (root / category).mkdir(parents=True)
        for i in range(2):
            Image.new("RGB", (1200, 900), (180, 180, 180)).save(
                root / category / f"q{i}.jpg", quality=50
            )
            record = {
                "target_object": ["cup"],
                "bbox": [[100.0 + 200 * i, 100.0, 60.0, 60.0]],
                "question": "What is the colour of the cup?",
                "options": ["red", "blue"],
            }
            (root / category / f"q{i}.json").write_text(json.dumps(record))
    return root


@pytest.fixture
def vstar_run(tmp_path) -> Path:
    out = tmp_path / "run"
    code = main(
        [
            "eval",
            "--agent",
            "oracle-crop",
            "--dataset",
            "vstar",
            "--data-dir",
            str(write_vstar(tmp_path / "vstar")),
            "--out",
            str(out),
            "--no-progress",
            "--no-plots",
        ]
    )
    assert code == 0
    return out


def table_lines(text: str) -> dict[str, str]:
    """Table lines of `published_table`'s text output, by their first cell (the system)."""
    body = text.split("\n\nsources:")[0].splitlines()[3:]
    return {line.split("  ")[0].strip(): line for line in body}


def test_compare_run_published_prints_the_run_beside_four_or_more_sourced_systems(
    vstar_run, capsys
):
    capsys.readouterr()
    assert main(["compare", str(vstar_run), "--published"]) == 0
    out = capsys.readouterr().out
    assert "published accuracy (%) on V* Bench (vstar.json)" in out
    summary = load_summary(vstar_run)
    lines = table_lines(out.split("published accuracy")[1])
    run = lines["run: oracle-crop"].split()
    expected = [summary["overall"]["accuracy"]] + [
        summary["per_category"][c]["accuracy"] for c in ("direct_attributes", "relative_position")
    ]
    assert run[-3:] == [f"{100 * v:.1f}" for v in expected]
    published = [name for name in lines if not name.startswith("run: ")]
    assert len(published) >= 4
    assert lines["Qwen2.5-VL-7B"].split()[-5:] == [
        "7B",
        "see-it-say-it-sorted",
        "71.2",
        "73.9",
        "67.1",
    ]
    assert lines["Chain-of-Focus"].split()[-5:] == ["-", "mini-o3", "88.0", "-", "-"]
    assert (
        "[mini-o3] Mini-o3: Scaling Up Reasoning Patterns" in out
        and "https://mini-o3.github.io" in out
    )
    assert "per-scale-bin accuracies are not published for V* Bench" in out
    assert out.index("accuracy (%, Δ in points)") < out.index(
        "published accuracy"
    )  # per-bin table first


def test_compare_published_without_a_run_and_as_markdown(capsys):
    assert main(["compare", "--published", "treebench", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert "| system | size | source | overall | Attr. | Mater." in out
    assert "| TreeVGR-7B | 7B | see-it-say-it-sorted | 50.4 | 65.5 |" in out
    assert "| OpenAI-o3 | - | treebench | 54.87 | - |" in out
    assert main(["compare", "--published"]) == 2
    assert "--published without a run needs a benchmark name" in capsys.readouterr().err
