"""Published reference accuracies (`baselines/published/`) and `compare --published` (issue 15,
deliverable 4).

The shipped files must load, cite a source for every row and quote every number; `compare RUN
--published` prints them beside a run's overall and per-category accuracy. The run is a tiny V*
folder (two questions per category, as V*'s loader reads them) evaluated with the oracle agent.
"""

from __future__ import annotations

import json
import math
import re
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
    load_sources,
    match_category,
)

PUBLISHED = baselines_dir() / "published"
EXPECTED = {
    "vstar",
    "hrbench-4k",
    "hrbench-8k",
    "mme-realworld",
    "mme-realworld-lite",
    "treebench",
    "visualprobe-easy",
    "visualprobe-medium",
    "visualprobe-hard",
}


def cell_values(quote: str) -> list[str]:
    """A table-row quote's cells, bold markup removed (written here, not by the loader)."""
    text = quote.strip().strip("|")
    return [
        c.replace("**", "").replace("<b>", "").replace("</b>", "").strip() for c in text.split("|")
    ]


def test_every_shipped_row_has_provenance_and_its_number_in_its_column():
    benchmarks = {b.name: b for b in list_published(PUBLISHED)}
    assert set(benchmarks) == EXPECTED
    raw_sources = json.loads((PUBLISHED / "sources.json").read_text(encoding="utf-8"))
    for bench in benchmarks.values():
        assert bench.path.name == f"{bench.name}.json"
        raw = json.loads(bench.path.read_text(encoding="utf-8"))
        for row, raw_row in zip(bench.rows, raw["rows"], strict=True):
            where = (bench.name, row.system)
            assert row.source.title and row.source.url.startswith("https://") and row.source.table
            assert row.quote and row.accuracy, where
            assert raw_row["protocol"].strip() and raw_row["reported_by"].strip(), where
            assert raw_row["check"].strip(), where
            columns = raw_sources[row.source.key].get("columns")
            for split, value in row.accuracy.items():
                assert split == OVERALL or split in bench.categories
                if columns:  # a table: the number is in the cell under its mapped header
                    header = raw["columns"][row.source.key][split]
                    cell = cell_values(row.quote)[columns.index(header)]
                    assert float(cell) == value, (where, split, cell)
                else:  # a figure or prose: the number is one of the quote's numbers
                    assert any(
                        float(t) == value for t in re.findall(r"\d+(?:\.\d+)?", row.quote)
                    ), (where, split)
            for marker in "†‡":  # a marked row says so, with the source's meaning
                if marker in row.quote.split("|")[0]:
                    assert row.marker == marker and row.marker_meaning, where


def test_markers_keep_their_meaning_and_protocol():
    (vstar,) = find_published("vstar", PUBLISHED)
    rows = {(r.system, r.source.key): r for r in vstar.rows}
    cof = rows["Chain-of-Focus", "mini-o3"]
    assert cof.marker == "†" and cof.protocol.startswith("Avg@1")
    assert cof.marker_meaning.startswith("The models only report the metric of Avg@1")
    deepeyes = rows["DeepEyes", "mini-o3"]
    assert deepeyes.marker == "‡" and deepeyes.protocol.startswith("Avg@32")
    assert deepeyes.reported_by.startswith("Mini-o3") and "Re-evaluated" in deepeyes.marker_meaning
    assert rows["Mini-o3", "mini-o3"].reported_by == "authors"


def test_deepeyes_own_vstar_and_ground_r1_hrbench_are_shipped_with_source_and_check():
    (vstar,) = find_published("vstar", PUBLISHED)
    own = next(r for r in vstar.rows if r.system == "DeepEyes-7B")
    assert own.accuracy[OVERALL] == 90.1 and own.reported_by == "authors"
    assert own.source.arxiv == "2505.14362" and "accuracy_comparison.svg" in own.source.read
    assert "re-read" in own.check and own.protocol
    for name, value in (("hrbench-4k", 75.0), ("hrbench-8k", 71.1)):
        (bench,) = find_published(name, PUBLISHED)
        ground = next(r for r in bench.rows if r.system == "Ground-R1")
        assert ground.accuracy == {OVERALL: value}
        assert ground.source.secondary and ground.source.arxiv == "2505.20272"
        assert ground.check.startswith("secondary")


def test_corrections_of_the_audit():
    (tree,) = find_published("treebench", PUBLISHED)
    o3 = [r for r in tree.rows if "o3" in r.system]
    assert len(o3) == 1 and "54.87" in o3[0].note  # one measurement, one row
    deepeyes = next(r for r in tree.rows if r.system == "DeepEyes-7B")
    assert deepeyes.accuracy[OVERALL] == 37.5 and "39.8" in deepeyes.note  # printed, with a note
    sources = load_sources(PUBLISHED)
    assert all(s.arxiv for s in sources.values())
    assert sources["see-it-say-it-sorted-t1"].arxiv == "2602.21497"
    (hr4k,) = find_published("hrbench-4k", PUBLISHED)
    ranked = sorted(hr4k.rows, key=lambda r: -r.accuracy[OVERALL])
    assert ranked[0].system != "Human baseline"  # the rows above the human baseline are shipped
    human = next(r for r in hr4k.rows if r.system == "Human baseline")
    assert human.protocol == "human"
    gpt4o = [r for r in hr4k.rows if r.system.startswith("GPT-4o")]
    assert {r.accuracy[OVERALL] for r in gpt4o} == {62.0, 68.0}
    assert all("three published HR-Bench values" in r.note for r in gpt4o)


def test_vstar_categories_are_named_as_our_loader_names_them():
    (vstar,) = find_published("vstar", PUBLISHED)
    from grounding_gym.data.formats.vstar import VSTAR_CATEGORIES

    assert vstar.categories == VSTAR_CATEGORIES
    qwen = next(r for r in vstar.rows if r.system == "Qwen2.5-VL-7B")
    assert qwen.accuracy == {"direct_attributes": 73.9, "relative_position": 67.1, OVERALL: 71.2}
    assert qwen.source.key == "see-it-say-it-sorted-t5" and qwen.size == "7B"


def test_a_dataset_name_finds_every_benchmark_it_covers_and_lite_is_apart():
    assert [b.name for b in find_published("hrbench", PUBLISHED)] == ["hrbench-4k", "hrbench-8k"]
    assert [b.name for b in find_published("hrbench-8k", PUBLISHED)] == ["hrbench-8k"]
    assert [b.name for b in find_published("mme-realworld", PUBLISHED)] == ["mme-realworld"]
    (lite,) = find_published("mme-realworld-lite", PUBLISHED)
    assert lite.datasets == ("mme-realworld-lite",) and lite.note
    with pytest.raises(
        FileNotFoundError, match=r"'vstr' \(did you mean 'vstar'\?\); published: \["
    ):
        find_published("vstr", PUBLISHED)


def test_categories_match_by_name_case_alias_or_last_path_part():
    categories = ("Attributes", "OCR")
    assert match_category("attributes", categories) == "Attributes"
    assert match_category("Perception/OCR", categories) == "OCR"
    assert match_category("Perception/Material", categories) is None
    (hr4k,) = find_published("hrbench-4k", PUBLISHED)
    assert match_category("FSP", hr4k.categories, hr4k.category_aliases) == "FSP"
    assert match_category("cross", hr4k.categories, hr4k.category_aliases) == "FCP"
    assert (
        match_category(
            "Fine-grained single-instance perception", hr4k.categories, hr4k.category_aliases
        )
        == "FSP"
    )


# ---------------------------------------------------------------- malformed files


# Copied from baselines/published/sources.json and vstar.json (checks shortened): the Mini-o3
# table as its authors' README prints it, with its markers.
MINI_O3_SOURCE = {
    "title": "Mini-o3: Scaling Up Reasoning Patterns and Interaction Turns for Visual Search",
    "arxiv": "2509.07969",
    "url": "https://arxiv.org/abs/2509.07969",
    "table": "main results table",
    "columns": [
        "Model",
        "VisualProbe hard",
        "VisualProbe medium",
        "VisualProbe easy",
        "V* Bench",
        "HR-Bench 4K",
        "HR-Bench 8K",
        "MME-Realworld",
    ],
    "markers": {
        "†": "The models only report the metric of Avg@1 and the model weights are not available.",
        "‡": "Re-evaluated using its official model and evaluation code to yield the metric of "
        "Avg@32.",
    },
}
MINI_O3_ROW = {
    "system": "Mini-o3",
    "base_model": "Qwen2.5-VL-7B-Instruct",
    "size": "7B",
    "source": "mini-o3",
    "accuracy": {"overall": 88.2},
    "quote": "Mini-o3 (Ours) | 48.0 | 50.4 | 67.0 | 88.2 | 77.5 | 73.3 | 65.5 |",
    "protocol": "Avg@32 (inferred)",
    "reported_by": "authors",
    "check": "quote re-read in the Mini-o3 authors' README (commit 8654dbf)",
}
GOOD = {
    "system": "Chain-of-Focus",
    "base_model": None,
    "size": None,
    "source": "mini-o3",
    "accuracy": {"overall": 88.0},
    "quote": "Chain-of-Focus† | – | – | – | 88.0 | – | – | – |",
    "protocol": "Avg@1 †",
    "reported_by": "authors, via Mini-o3",
    "check": "quote re-read in the Mini-o3 authors' README (commit 8654dbf)",
    "marker": "†",
}


def write_published(root: Path, row: dict, **top) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "sources.json").write_text(json.dumps({"mini-o3": MINI_O3_SOURCE}))
    data = {
        "benchmark": "vstar",
        "title": "V* Bench",
        "datasets": ["vstar"],
        "categories": ["direct_attributes", "relative_position"],
        "category_labels": {},
        "columns": {"mini-o3": {"overall": "V* Bench"}},
        "rows": [MINI_O3_ROW, row],
        **top,
    }
    file = root / "vstar.json"
    file.write_text(json.dumps(data))
    return file


def test_the_real_rows_load_with_their_marker(tmp_path):
    bench = load_published(write_published(tmp_path / "published", GOOD))
    assert [r.accuracy[OVERALL] for r in bench.rows] == [88.2, 88.0]
    assert bench.rows[1].marker_meaning.startswith("The models only report the metric of Avg@1")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"source": "mini_o3"},
            r"row 1 \('Chain-of-Focus'\): source 'mini_o3' is not in sources.json "
            r"\(did you mean 'mini-o3'\?\)",
        ),
        (  # the case: 88.0 against a quote holding only 88.2 (a substring match passed)
            {"quote": MINI_O3_ROW["quote"], "marker": None},
            r"accuracy\['overall'\] = 88 is not the quote's 'V\* Bench' cell '88.2'",
        ),
        (  # a number of the row, but of another column (HR-Bench 4K)
            {**MINI_O3_ROW, "accuracy": {"overall": 77.5}, "marker": None},
            r"row 1 \('Mini-o3'\): accuracy\['overall'\] = 77.5 is not the quote's 'V\* Bench'",
        ),
        (
            {"accuracy": {"overall": 0.88}},
            r"accuracy\['overall'\] = 0.88 is not the quote's 'V\* Bench' cell '88.0'",
        ),
        (
            {"accuracy": {"overall": 188.0}},
            r"accuracy\['overall'\] must be a percentage in \[0, 100\], got 188.0",
        ),
        (
            {"accuracy": {"attribute": 88.0}},
            r"unknown split 'attribute'.*splits: \['overall', 'direct_attributes'",
        ),
        (
            {"accuracy": {"direct_attributes": 88.0}},
            r"no column of source 'mini-o3' is mapped to split 'direct_attributes'",
        ),
        (
            {"quote": "Chain-of-Focus† | 88.0 |"},
            r"the quote has 2 cells but source 'mini-o3' has 8",
        ),
        ({"marker": "§"}, r"marker '§' is not explained by source 'mini-o3'"),
        ({"marker": "‡"}, r"marker '‡' is not in the quote"),
        ({"marker": None}, r"the quote marks the system with '†' \('The models only report"),
        ({"quote": " "}, r"row 1 \('Chain-of-Focus'\): 'quote' must be a non-empty string"),
        ({"protocol": ""}, r"'protocol' must be a non-empty string"),
        (
            {"szie": "7B"},
            r"row 1 \('Chain-of-Focus'\): unknown field\(s\) 'szie' \(did you mean 'size'\?\)",
        ),
    ],
)
def test_a_malformed_row_names_the_file_the_row_and_the_problem(tmp_path, change, message):
    file = write_published(tmp_path / "published", {**GOOD, **change})
    with pytest.raises(PublishedFormatError, match=message) as info:
        load_published(file)
    assert str(info.value).startswith(f"{file}: ")


@pytest.mark.parametrize("field", ["source", "protocol", "reported_by", "check"])
def test_a_row_without_provenance_and_a_broken_file_are_refused(tmp_path, field):
    row = {k: v for k, v in GOOD.items() if k != field}
    file = write_published(tmp_path / "published", row)
    with pytest.raises(
        PublishedFormatError,
        match=rf"vstar.json: row 1 \('Chain-of-Focus'\): missing field\(s\) \['{field}'\]",
    ):
        load_published(file)
    file.write_text('{"benchmark": "vstar",')
    with pytest.raises(PublishedFormatError, match=r"vstar.json: not valid JSON"):
        load_published(file)


def test_figure_and_prose_quotes_are_checked_number_by_number(tmp_path):
    """A source without columns (DeepEyes' README figure, copied from sources.json): the number
    must be one of the quote's numbers, whole: 90 is not 90.1."""
    root = tmp_path / "published"
    root.mkdir()
    figure = {
        "title": "DeepEyes",
        "arxiv": "2505.14362",
        "url": "https://arxiv.org/abs/2505.14362",
        "table": "README figure 'accuracy_comparison'",
    }
    (root / "sources.json").write_text(json.dumps({"deepeyes-figure": figure}))
    row = {
        "system": "DeepEyes-7B",
        "base_model": "Qwen2.5-VL-7B-Instruct",
        "size": "7B",
        "source": "deepeyes-figure",
        "accuracy": {"overall": 90.1},
        "quote": "Qwen2.5VL-7B Qwen2.5VL-32B o3 DeepEyes-7B 71.2 87.9 95.7 90.1 V* Bench",
        "protocol": "not stated",
        "reported_by": "authors",
        "check": "re-read in the SVG's text labels",
    }
    data = {
        "benchmark": "vstar",
        "title": "V* Bench",
        "datasets": ["vstar"],
        "categories": [],
        "category_labels": {},
        "rows": [row],
    }
    file = root / "vstar.json"
    file.write_text(json.dumps(data))
    assert load_published(file).rows[0].accuracy == {OVERALL: 90.1}
    data["rows"] = [{**row, "accuracy": {"overall": 90.0}}]
    file.write_text(json.dumps(data))
    with pytest.raises(PublishedFormatError, match=r"= 90 does not appear as a number"):
        load_published(file)


def test_compare_reports_a_malformed_published_file_and_exits_2(tmp_path, capsys):
    write_published(tmp_path / "published", {**GOOD, "accuracy": {"overall": 99.0}})
    assert main(["compare", "--published", "vstar", "--baselines-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "compare: " in err
    assert (
        "vstar.json: row 1 ('Chain-of-Focus'): accuracy['overall'] = 99 is not the quote's" in err
    )


# ---------------------------------------------------------------- compare --published


def write_vstar(root: Path, per_category: int = 15) -> Path:
    """V*'s layout: `per_category` questions per category, targets from 20 to 160 px a side on
    1200x900 px images (so they fall in several scale bins), two options each."""
    for category in ("direct_attributes", "relative_position"):
        (root / category).mkdir(parents=True)
        for i in range(per_category):
            Image.new("RGB", (1200, 900), (180, 180, 180)).save(
                root / category / f"q{i}.jpg", quality=50
            )
            side = 20.0 + 10.0 * i
            record = {
                "target_object": ["cup"],
                "bbox": [[100.0 + 30 * i, 100.0, side, side]],
                "question": "What is the colour of the cup?",
                "options": ["red", "blue"],
            }
            (root / category / f"q{i}.json").write_text(json.dumps(record))
    return root


def run_eval(out: Path, *args: str) -> Path:
    assert main(["eval", *args, "--out", str(out), "--no-progress", "--no-plots"]) == 0
    return out


@pytest.fixture(scope="module")
def vstar_dir(tmp_path_factory) -> Path:
    return write_vstar(tmp_path_factory.mktemp("data") / "vstar")


@pytest.fixture(scope="module")
def vstar_run(vstar_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "oracle"
    return run_eval(
        out, "--agent", "oracle-crop", "--dataset", "vstar", "--data-dir", str(vstar_dir)
    )


def wilson(k: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """The Wilson score interval, from its textbook formula (not the project's function)."""
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def table_lines(text: str) -> dict[str, list[str]]:
    """Cells of `published_table`'s text table, by their first cell (the system)."""
    body = text.split("\n\n")[0].splitlines()[3:]
    return {cells[0]: cells for cells in (re.split(r"\s{2,}", line.strip()) for line in body)}


def published_part(out: str, title: str) -> str:
    return out.split(f"published accuracy (%) on {title} ")[1]


def test_compare_run_published_ranks_the_run_with_its_n_and_interval(vstar_run, capsys):
    capsys.readouterr()
    assert main(["compare", str(vstar_run), "--published"]) == 0
    out = capsys.readouterr().out
    summary = load_summary(vstar_run)
    n = summary["overall"]["n"]
    k = round(summary["overall"]["accuracy"] * n)
    assert n == 30
    text = published_part(out, "V* Bench")
    lines = table_lines(text)
    run = lines["run: oracle-crop"]
    low, high = wilson(k, n)
    assert run[5:8] == [f"{100 * k / n:.1f}", f"[{100 * low:.1f}, {100 * high:.1f}]", "30"]
    expected = [
        summary["per_category"][c]["accuracy"] for c in ("direct_attributes", "relative_position")
    ]
    assert run[-2:] == [f"{100 * v:.1f}" for v in expected]
    overall = [float(cells[5]) for cells in lines.values()]
    assert overall == sorted(overall, reverse=True)  # the run is ranked among the published rows
    assert lines["Qwen2.5-VL-7B"] == [
        "Qwen2.5-VL-7B",
        "7B",
        "not stated",
        "via arXiv 2602.21497",
        "see-it-say-it-sorted-t5",
        "71.2",
        "-",
        "-",
        "73.9",
        "67.1",
    ]
    assert lines["Chain-of-Focus†"][1:8] == [
        "-",
        "Avg@1 †",
        "authors, via Mini-o3",
        "mini-o3",
        "88.0",
        "-",
        "-",
    ]
    assert lines["DeepEyes-7B"][2:6] == ["not stated", "authors", "deepeyes-figure", "90.1"]
    assert "† [mini-o3]: The models only report the metric of Avg@1" in text
    assert "[mini-o3] Mini-o3: Scaling Up Reasoning Patterns" in text
    assert "per-scale-bin accuracies are not published for V* Bench" in text
    assert "not comparable" not in text
    assert out.index("95 % Wilson interval") < out.index("published accuracy")  # per-bin first


def test_a_synthetic_run_is_not_ranked_among_vstar_results(tmp_path, capsys):
    run = run_eval(tmp_path / "syn", "--agent", "oracle-crop", "-n", "5", "--image-size", "1024")
    capsys.readouterr()
    assert main(["compare", str(run), "--published", "vstar"]) == 0
    text = published_part(capsys.readouterr().out, "V* Bench")
    assert not any(name.startswith("run: ") for name in table_lines(text))
    summary = load_summary(run)
    k, n = round(summary["overall"]["accuracy"] * 5), 5
    low, high = wilson(k, n)
    assert (
        f"  run: oracle-crop: {100 * k / n:.1f} % [{100 * low:.1f}, {100 * high:.1f}], n = 5: "
        "not comparable (synthetic-hr); not ranked among V* Bench results"
    ) in text


def test_hrbench_runs_record_4k_or_8k_and_are_ranked_only_in_their_table(tmp_path, capsys):
    from tests.grounding_gym.data.formats.test_loaders import (
        HR_COLUMNS,
        hr_images,
        hrbench_rows,
        write_tsv,
    )

    rows = hrbench_rows(hr_images())
    named = write_tsv(tmp_path / "hr_bench_8k.tsv", HR_COLUMNS, rows)
    unnamed = write_tsv(tmp_path / "hr.tsv", HR_COLUMNS, rows)
    common = ["--agent", "no-crop", "--dataset", "hrbench"]
    by_name = run_eval(tmp_path / "named", *common, "--data-dir", str(named))
    by_kwarg = run_eval(
        tmp_path / "kwarg",
        *common,
        "--data-dir",
        str(unnamed),
        "--dataset-kwargs",
        '{"split": "4k"}',
        "--label",
        "no-crop-4k",
    )
    neither = run_eval(tmp_path / "neither", *common, "--data-dir", str(unnamed), "--label", "x")
    assert load_summary(by_name)["meta"]["dataset_split"] == "8k"
    assert load_summary(by_kwarg)["meta"]["dataset_split"] == "4k"
    assert load_summary(neither)["meta"]["dataset_split"] is None
    capsys.readouterr()
    assert main(["compare", str(by_name), str(by_kwarg), str(neither), "--published"]) == 0
    out = capsys.readouterr().out
    hr4k, hr8k = published_part(out, "HR-Bench 4K"), published_part(out, "HR-Bench 8K")
    assert "run: no-crop-4k" in table_lines(hr4k) and "run: no-crop" not in table_lines(hr4k)
    assert "run: no-crop" in table_lines(hr8k) and "run: no-crop-4k" not in table_lines(hr8k)
    assert "n = 8: not comparable (hrbench 8k)" in hr4k
    assert "n = 8: not comparable (hrbench 4k)" in hr8k
    assert "run: x: " in hr4k and "split not recorded" in hr4k and "run: x: " in hr8k
    summary = load_summary(by_kwarg)
    fsp, fcp = (summary["per_category"][c]["accuracy"] for c in ("FSP", "FCP"))
    assert table_lines(hr4k)["run: no-crop-4k"][-2:] == [f"{100 * fsp:.1f}", f"{100 * fcp:.1f}"]
    assert "no published counterpart" not in hr4k


def test_an_mme_realworld_lite_run_is_kept_out_of_the_full_table(tmp_path, capsys):
    from tests.grounding_gym.data.formats.test_published_formats import mme_record, write_mme

    path = write_mme(tmp_path, [mme_record("q1"), mme_record("q2")])
    run = run_eval(
        tmp_path / "lite",
        "--agent",
        "no-crop",
        "--dataset",
        "mme-realworld-lite",
        "--data-dir",
        str(path),
    )
    assert load_summary(run)["meta"]["dataset_split"] == "lite"
    capsys.readouterr()
    assert main(["compare", str(run), "--published", "mme-realworld"]) == 0
    text = published_part(capsys.readouterr().out, "MME-RealWorld (full)")
    assert "n = 2: not comparable (mme-realworld-lite)" in text
    assert main(["compare", str(run), "--published", "mme-realworld-lite"]) == 0
    text = published_part(capsys.readouterr().out, "MME-RealWorld-Lite")
    assert list(table_lines(text)) == ["run: no-crop"] and "no MME-RealWorld-Lite number" in text


def test_compare_published_without_a_run_and_as_markdown(capsys):
    assert main(["compare", "--published", "treebench", "--markdown"]) == 0
    out = capsys.readouterr().out
    assert (
        "| system | size | protocol | reported by | source | overall | 95 % CI | n | Attr. |" in out
    )
    assert (
        "| TreeVGR-7B | 7B | not stated | via arXiv 2602.21497 | see-it-say-it-sorted-t1 | 50.4 "
        "| - | - | 65.5 |"
    ) in out
    assert (
        "| o3-0416 | - | not stated | via arXiv 2602.21497 | see-it-say-it-sorted-t1 | 54.8 |"
        in out
    )
    assert main(["compare", "--published"]) == 2
    assert "--published without a run needs a benchmark name" in capsys.readouterr().err
