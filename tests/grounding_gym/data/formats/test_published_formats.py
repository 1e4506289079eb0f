"""Loaders read the benchmark files as published, not only a clean schema (issue 15).

One fixture per quirk, written in the published layout: options as one string in each labelling
style, boxes as JSON strings (TreeBench), exact duplicate records (MME-RealWorld-Lite), six
choices whose printed labels repeat (MME-RealWorld), and errors that name file, line and field.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from grounding_gym.data.formats.choices import parse_choices
from grounding_gym.data.formats.hrbench import hrbench_split
from grounding_gym.data.formats.records import DatasetFormatError
from grounding_gym.data.loaders import (
    load_hrbench,
    load_mme_realworld,
    load_mme_realworld_lite,
    load_treebench,
    load_vstar,
)
from grounding_gym.geometry import Box


def image(path: Path, size: tuple[int, int] = (640, 480)) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (240, 240, 240)).save(path)
    return path.name


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("A. red\nB. blue", ("red", "blue")),  # "A. x\nB. y"
        ("A red\nB dark blue\nC green", ("red", "dark blue", "green")),  # "A x\nB y"
        ("A. red B. blue C. green", ("red", "blue", "green")),  # "A. x B. y C. z"
        ("(A) red (B) blue\nC. green\nD white", ("red", "blue", "green", "white")),  # mixed
        ("A. a B. b C. c D. d E. e F. f", ("a", "b", "c", "d", "e", "f")),  # six, A-F
        ("  A: Vitamin C\nB) carrot", ("Vitamin C", "carrot")),  # "C" inside a text is no label
    ],
)
def test_options_as_one_string_in_every_published_style(text, expected):
    choices = parse_choices(text, "f.jsonl, line 1")
    assert choices.texts == expected
    assert choices.labels == tuple("ABCDEF"[: len(expected)])


def test_options_as_list_and_dict_and_printed_labels():
    assert parse_choices(["red", "blue"], "w").texts == ("red", "blue")
    assert parse_choices({"B": "blue", "A": "A. red"}, "w").texts == ("red", "blue")
    printed = parse_choices(["(A) a", "(B) b", "(C) c", "(D) d", "(D) e", "(E) f"], "w")
    assert printed.texts == ("a", "b", "c", "d", "e", "f") and printed.labels == tuple("ABCDDE")


def test_options_string_without_labels_names_file_line_and_field():
    with pytest.raises(
        DatasetFormatError, match=r"f.jsonl, line 3: field 'options' is one string without"
    ):
        parse_choices("red or blue", "f.jsonl, line 3")


# ---------------------------------------------------------------------------------------------
# TreeBench as published: options one string, target_instances a JSON string
# ---------------------------------------------------------------------------------------------

BOX_A, BOX_B = [64.0, 96.0, 256.0, 224.0], [300.0, 200.0, 400.0, 300.0]


def treebench_line(**change) -> dict:
    record = {
        "id": 1,
        "image": "images/t1.jpg",
        "question": "Which box is left of the blue one?",
        "options": "A. the tree\nB. the red box\nC. the car\nD. nothing",
        "answer": "B",
        "target_instances": json.dumps([BOX_A, {"bbox": BOX_B}]),
        "category": "Spatial",
    }
    return {**record, **change}


def write_lines(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def test_treebench_options_string_and_boxes_as_json_string(tmp_path):
    image(tmp_path / "images" / "t1.jpg")
    second = treebench_line(
        id=2, options="A tree\nB car", answer="A", target_instances=json.dumps([BOX_B])
    )
    (sample, other) = load_treebench(
        write_lines(tmp_path / "treebench.jsonl", [treebench_line(), second])
    )
    assert (
        sample.options == ("the tree", "the red box", "the car", "nothing") and sample.answer == "B"
    )
    assert sample.gt_boxes == (Box(*BOX_A), Box(*BOX_B))
    assert other.options == ("tree", "car") and other.gt_boxes == (Box(*BOX_B),)


def test_treebench_exact_duplicate_lines_are_kept_once_with_a_warning(tmp_path):
    image(tmp_path / "images" / "t1.jpg")
    lines = [treebench_line(), treebench_line(id=2), treebench_line(), treebench_line()]
    with pytest.warns(
        UserWarning, match=r"skipped 2 exact duplicate record\(s\).*line 3 repeats .*line 1"
    ):
        samples = load_treebench(write_lines(tmp_path / "treebench.jsonl", lines))
    assert [s.id for s in samples] == ["1", "2"]
    lines[2] = treebench_line(answer="C")  # same id, other content: an error, not a duplicate
    with pytest.raises(
        DatasetFormatError, match=r"line 3: duplicate sample id '1' with different content"
    ):
        load_treebench(write_lines(tmp_path / "treebench.jsonl", lines))


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"target_instances": "[[1, 2, 3"},
            r"line 2: field 'target_instances' is a string that is not valid JSON",
        ),
        (
            {"options": "tree or car"},
            r"line 2: field 'options' is one string without option labels",
        ),
        ({"answer": "F"}, r"line 2: field 'answer': answer 'F' is neither an option letter"),
        (
            {"target_instances": json.dumps([[5, 5, 1, 1]])},
            r"line 2, target_instances\[0\]: box .* needs x1 < x2",
        ),
    ],
)
def test_treebench_rows_it_cannot_read_name_file_line_and_field(tmp_path, change, expected):
    image(tmp_path / "images" / "t1.jpg")
    path = write_lines(
        tmp_path / "treebench.jsonl", [treebench_line(), treebench_line(id=2, **change)]
    )
    with pytest.raises(DatasetFormatError, match="treebench.jsonl, " + expected):
        load_treebench(path)


# ---------------------------------------------------------------------------------------------
# MME-RealWorld(-Lite) official JSON
# ---------------------------------------------------------------------------------------------


def mme_record(qid: str, **change) -> dict:
    record = {
        "Question_id": qid,
        "Image": "remote_sensing/r1.png",
        "Text": "What colour is the roof?",
        "Answer choices": ["(A) red", "(B) blue", "(C) green", "(D) white", "(E) black"],
        "Ground truth": "C",
        "Task": "Perception",
        "Subtask": "Remote Sensing",
        "Category": "color",
    }
    return {**record, **change}


def write_mme(root: Path, records: list[dict]) -> Path:
    image(root / "remote_sensing" / "r1.png")
    path = root / "MME-RealWorld-Lite.json"
    path.write_text(json.dumps(records, indent=2), encoding="utf-8")
    return path


def test_mme_exact_duplicates_kept_once_with_a_counting_warning(tmp_path):
    records = [
        mme_record("q1"),
        mme_record("q2"),
        mme_record("q1"),
        mme_record("q2"),
        mme_record("q1"),
    ]
    with pytest.warns(
        UserWarning, match=r"mme-realworld-lite: skipped 3 exact duplicate record\(s\)"
    ):
        samples = load_mme_realworld_lite(write_mme(tmp_path, records))
    assert [s.id for s in samples] == ["q1", "q2"]
    records[2] = mme_record("q1", **{"Ground truth": "D"})
    with pytest.raises(
        DatasetFormatError, match=r"record 2 \(line 34\): duplicate sample id 'q1' with different"
    ):
        load_mme_realworld_lite(write_mme(tmp_path, records))


def test_mme_printed_labels_name_the_answer_when_they_repeat(tmp_path):
    six = ["(A) one", "(B) two", "(C) three", "(D) four", "(D) five", "(E) six"]
    records = [
        mme_record("q1", **{"Answer choices": six, "Ground truth": "E"}),
        mme_record("q2", **{"Answer choices": six, "Ground truth": "(B)"}),
    ]
    first, second = load_mme_realworld_lite(write_mme(tmp_path, records))
    assert first.options == ("one", "two", "three", "four", "five", "six")
    assert (
        first.answer == "F" and first.options[ord(first.answer) - 65] == "six"
    )  # the choice printed "(E)"
    assert second.answer == "B"
    assert first.metadata["printed_labels"] == list("ABCDDE")


def test_mme_errors_name_file_line_and_field(tmp_path):
    records = [mme_record("q1"), mme_record("q2", **{"Ground truth": "Z"})]
    with pytest.raises(
        DatasetFormatError,
        match=r"MME-RealWorld-Lite.json, record 1 \(line 18\): field 'Ground truth'",
    ):
        load_mme_realworld_lite(write_mme(tmp_path, records))


def test_mme_realworld_and_its_lite_split_are_separate_datasets(tmp_path):
    lite = write_mme(tmp_path, [mme_record("q1"), mme_record("q2")])
    assert {s.metadata["split"] for s in load_mme_realworld_lite(lite)} == {"lite"}
    with pytest.raises(
        DatasetFormatError,
        match=r"MME-RealWorld-Lite.json: the file name says MME-RealWorld-Lite, but the dataset "
        r"is 'mme-realworld'.* Fix: use the dataset 'mme-realworld-lite'",
    ):
        load_mme_realworld(lite)
    full = lite.rename(tmp_path / "MME-RealWorld.json")
    assert {s.metadata["split"] for s in load_mme_realworld(full)} == {"full"}
    with pytest.warns(UserWarning, match=r"is not named as the Lite subset"):
        load_mme_realworld_lite(full)


# ---------------------------------------------------------------------------------------------
# HR-Bench 4K vs 8K: from the file name or a kwarg
# ---------------------------------------------------------------------------------------------


def test_hrbench_version_from_the_file_name_or_the_split_kwarg(tmp_path):
    from tests.grounding_gym.data.formats.test_loaders import (
        HR_COLUMNS,
        hr_images,
        hrbench_rows,
        write_tsv,
    )

    rows = hrbench_rows(hr_images())
    named = write_tsv(tmp_path / "hr_bench_4k.tsv", HR_COLUMNS, rows)
    assert {s.metadata["split"] for s in load_hrbench(named)} == {"4k"}
    unnamed = write_tsv(tmp_path / "bench.tsv", HR_COLUMNS, rows)
    assert {s.metadata["split"] for s in load_hrbench(unnamed)} == {None}
    assert {s.metadata["split"] for s in load_hrbench(unnamed, split="8K")} == {"8k"}
    with pytest.raises(DatasetFormatError, match=r"the file name says HR-Bench 4K but split='8k'"):
        load_hrbench(named, split="8k")
    with pytest.raises(DatasetFormatError, match=r"split='2k' is not one of \('4k', '8k'\)"):
        load_hrbench(unnamed, split="2k")
    assert hrbench_split("HR_Bench_8K.tsv") == "8k" and hrbench_split("my4kbench.tsv") is None


# ---------------------------------------------------------------------------------------------
# V*: boxes as a JSON string
# ---------------------------------------------------------------------------------------------


def test_vstar_bbox_as_json_string(tmp_path):
    folder = tmp_path / "direct_attributes"
    image(folder / "sa_1.jpg")
    (tmp_path / "relative_position").mkdir()
    record = {
        "target_object": ["cup"],
        "bbox": "[[10, 20, 30, 40]]",
        "question": "Colour?",
        "options": ["red", "blue"],
    }
    (folder / "sa_1.json").write_text(json.dumps(record))
    (sample,) = load_vstar(tmp_path, option_seed=None)
    assert sample.gt_boxes == (Box(10, 20, 40, 60),) and sample.answer == "A"
