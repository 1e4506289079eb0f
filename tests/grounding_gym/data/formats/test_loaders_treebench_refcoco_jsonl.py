"""TreeBench, RefCOCO and the generic JSONL loader on fixtures written in each format, with images
drawn in code (the shared fixture helpers are in `test_loaders`).
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

import pytest

import grounding_gym.data.loaders  # noqa: F401  (registers the loaders)
from grounding_gym.data.formats.images import EncodedImageRef
from grounding_gym.data.loaders import (
    box_miou,
    load_jsonl,
    load_refcoco,
    load_treebench,
)
from grounding_gym.data.registry import make_dataset
from grounding_gym.geometry import Box
from tests.grounding_gym.data.formats.test_loaders import (
    BLUE,
    GREEN,
    RED,
    TREE_A,
    TREE_B,
    assert_on_object,
    b64,
    draw,
    error_of,
    write_jsonl,
    xywh,
)

TREE_SIZE = (1024, 768)


def write_treebench(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    picture = draw(TREE_SIZE, [(TREE_A, RED), (TREE_B, BLUE)], "JPEG")
    (root / "images").mkdir(exist_ok=True)
    (root / "images" / "sa_1.jpg").write_bytes(picture)
    records = [
        {
            "id": 11,
            "image": "images/sa_1.jpg",
            "question": "Which object is left of the blue one?",
            "options": {"A": "a tree", "B": "a red box", "C": "a car", "D": "nothing"},
            "answer": "B",
            "target_instances": [TREE_A.as_list(), {"bbox": TREE_B.as_list(), "label": "blue box"}],
            "category": "Spatial",
        },
        {
            "id": 12,
            "image": b64(picture),
            "question": "What colour is the right box?",
            "options": ["red", "blue"],
            "answer": "blue",
            "target_instances": [{"bbox": TREE_B.as_list()}],
            "category": "Attributes",
        },
    ]
    return write_jsonl(root / "treebench.jsonl", records)


def test_treebench_round_trip(tmp_path):
    samples = load_treebench(write_treebench(tmp_path / "tree"))
    first, second = samples
    assert first.id == "11" and first.options[1] == "a red box" and first.answer == "B"
    assert second.answer == "B" and second.options[1] == "blue"
    assert first.image_size == second.image_size == TREE_SIZE
    assert_on_object(first, first.gt_boxes[0], TREE_A, RED)
    assert_on_object(first, first.gt_boxes[1], TREE_B, BLUE)
    assert isinstance(second.image, EncodedImageRef)
    assert_on_object(second, second.gt_boxes[0], TREE_B, BLUE)
    assert box_miou([first.gt_boxes[0]], list(first.gt_boxes)) == pytest.approx(0.5)
    assert make_dataset("treebench", data_dir=tmp_path / "tree")[1].category == "Attributes"


def test_box_miou_hand_computed():
    gt = [Box(0, 0, 10, 10), Box(20, 0, 30, 10)]
    assert box_miou([Box(0, 0, 10, 10), Box(20, 0, 30, 10)], gt) == 1.0
    assert box_miou([Box(0, 0, 10, 10), Box(25, 0, 30, 10)], gt) == pytest.approx(0.75)
    assert box_miou([], gt) == 0.0
    with pytest.raises(ValueError):
        box_miou([Box(0, 0, 1, 1)], [])


@pytest.mark.parametrize(
    ("instances", "expected"),
    [
        ([[64, 96, "x", 224]], "non-numeric coordinate 'x'"),
        ([[64, 96, 256]], "not a list of 4 numbers"),
        ([[256, 96, 64, 224]], "needs x1 < x2"),
        ([[64, 96, math.nan, 224]], "non-finite coordinate"),
        ([[2000, 2000, 2100, 2100]], "entirely outside the 1024x768 image"),
        ([{"box2": [1, 2, 3, 4]}], "needs a 'bbox' key"),
    ],
)
def test_treebench_bad_boxes(tmp_path, instances, expected):
    path = write_treebench(tmp_path / "tree")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[1]["target_instances"] = instances
    write_jsonl(path, records)
    message = error_of(load_treebench, path)
    assert "treebench.jsonl, line 2, target_instances[0]" in message and expected in message


def test_treebench_clips_partial_boxes_with_a_warning(tmp_path):
    path = write_treebench(tmp_path / "tree")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    records[1]["target_instances"] = [[900, 700, 1100, 800]]
    write_jsonl(path, records)
    with pytest.warns(UserWarning, match=r"clipped 1 ground-truth box"):
        samples = load_treebench(path)
    assert samples[1].gt_boxes[0] == Box(900, 700, 1024, 768)


def test_treebench_missing_image(tmp_path):
    path = write_treebench(tmp_path / "tree")
    (tmp_path / "tree" / "images" / "sa_1.jpg").unlink()
    message = error_of(load_treebench, path)
    assert "treebench.jsonl, line 1" in message and "image file not found" in message


PERSON = Box(40, 80, 200, 360)


def write_refcoco(root: Path) -> Path:
    (root / "images").mkdir(parents=True)
    (root / "images" / "COCO_train2014_000000000001.jpg").write_bytes(
        draw((480, 400), [(PERSON, GREEN), (Box(280, 80, 440, 360), RED)], "JPEG")
    )
    records = [
        {
            "ann_id": 1001,
            "image": "COCO_train2014_000000000001.jpg",
            "bbox": xywh(PERSON),
            "sentences": [{"sent": "green man on the left", "tokens": []}, "left guy"],
            "split": "val",
        },
        {
            "ann_id": 1002,
            "file_name": "COCO_train2014_000000000001.jpg",
            "bbox": [280, 80, 160, 280],
            "expression": "red one",
            "split": "testA",
        },
    ]
    path = root / "refs.json"
    path.write_text(json.dumps(records))
    return path


def test_refcoco_round_trip(tmp_path):
    samples = load_refcoco(write_refcoco(tmp_path / "refcoco"), data_dir=tmp_path / "refcoco")
    assert [s.id for s in samples] == ["1001-0", "1001-1", "1002-0"]
    first = samples[0]
    assert (
        first.question == "green man on the left" and first.answer == "" and first.options is None
    )
    assert first.category == "refcoco" and first.metadata["referring_expression"] == first.question
    assert_on_object(first, first.gt_boxes[0], PERSON, GREEN)
    assert_on_object(samples[2], samples[2].gt_boxes[0], Box(280, 80, 440, 360), RED)
    only_val = make_dataset("refcoco", data_dir=tmp_path / "refcoco", split="val", read_sizes=True)
    assert len(only_val) == 2 and only_val[0].image_size == (480, 400)


def test_refcoco_errors(tmp_path):
    path = write_refcoco(tmp_path / "refcoco")
    records = json.loads(path.read_text())
    records[1]["bbox"] = [280, 80, 0, 280]
    path.write_text(json.dumps(records))
    message = error_of(load_refcoco, path)
    assert "refs.json, record 1" in message and "non-positive size" in message
    records[1]["bbox"] = [280, 80, 160, 280]
    records[0]["image"] = "missing.jpg"
    path.write_text(json.dumps(records))
    message = error_of(load_refcoco, path)
    assert "refs.json, record 0" in message and "image file not found" in message


GEN_SIZE = (1600, 1200)


GEN_BOX = Box(320, 240, 640, 480)


def generic_records(image: str = "img/scene.jpg") -> list[dict[str, Any]]:
    w, h = GEN_SIZE
    norm1 = [GEN_BOX.x1 / w, GEN_BOX.y1 / h, GEN_BOX.x2 / w, GEN_BOX.y2 / h]
    return [
        {
            "id": "xyxy",
            "image": image,
            "question": "Where?",
            "answer": "",
            "boxes": [GEN_BOX.as_list()],
            "box_format": "xyxy",
        },
        {
            "id": "xywh",
            "image": image,
            "question": "Where?",
            "answer": "",
            "boxes": [xywh(GEN_BOX)],
            "box_format": "xywh",
        },
        {
            "id": "norm1",
            "image": image,
            "question": "Where?",
            "answer": "",
            "boxes": [norm1],
            "box_format": "norm1",
        },
        {
            "id": "norm1000",
            "image": image,
            "question": "Where?",
            "answer": "",
            "boxes": [[v * 1000 for v in norm1]],
            "box_format": "norm1000",
        },
        {
            "id": "mc",
            "image": image,
            "question": "Colour?",
            "options": ["blue", "red"],
            "answer": "red",
            "category": "colour",
            "metadata": {"source": "unit"},
        },
    ]


def write_generic(root: Path, records: list[dict[str, Any]] | None = None) -> Path:
    (root / "img").mkdir(parents=True, exist_ok=True)
    (root / "img" / "scene.jpg").write_bytes(draw(GEN_SIZE, [(GEN_BOX, RED)], "JPEG"))
    return write_jsonl(root / "data.jsonl", generic_records() if records is None else records)


def test_jsonl_every_box_format_lands_on_the_object(tmp_path):
    samples = load_jsonl(write_generic(tmp_path / "gen"))
    for sample in samples[:4]:
        assert len(sample.gt_boxes) == 1, sample.id
        assert_on_object(sample, sample.gt_boxes[0], GEN_BOX, RED)
    assert samples[2].image_size == GEN_SIZE and samples[0].image_size is None
    mc = samples[4]
    assert mc.answer == "B" and mc.options == ("blue", "red") and mc.category == "colour"
    assert mc.metadata["source"] == "unit" and mc.metadata["line"] == 5


def test_jsonl_base64_and_registry(tmp_path):
    encoded = b64(draw(GEN_SIZE, [(GEN_BOX, RED)], "JPEG"))
    records = [
        dict(r, image="data:image/jpeg;base64," + encoded, image_encoding="base64")
        for r in generic_records()
    ]
    write_generic(tmp_path / "gen", records)
    samples = make_dataset("jsonl", data_dir=tmp_path / "gen")
    assert isinstance(samples[3].image, EncodedImageRef)
    assert_on_object(samples[3], samples[3].gt_boxes[0], GEN_BOX, RED)


@pytest.mark.slow
def test_jsonl_10000_rows_build_without_decoding(tmp_path, count_opens):
    root = tmp_path / "gen"
    write_generic(root)
    encoded = b64(draw((64, 48), [(Box(8, 8, 40, 32), RED)]))
    base64_rows = [
        {
            "id": i,
            "image": encoded,
            "image_encoding": "base64",
            "question": "q",
            "answer": "",
            "boxes": [[8, 8, 40, 32]],
            "box_format": "xyxy",
        }
        for i in range(10_000)
    ]
    path_rows = [dict(r, image="img/scene.jpg", image_encoding="path") for r in base64_rows]
    assert len(load_jsonl(write_jsonl(root / "b.jsonl", base64_rows))) == 10_000
    assert len(load_jsonl(write_jsonl(root / "p.jsonl", path_rows))) == 10_000
    assert count_opens == {"open": 0, "load": 0}
    norm_rows = [dict(r, boxes=[[100, 100, 200, 200]], box_format="norm1000") for r in path_rows]
    samples = load_jsonl(write_jsonl(root / "n.jsonl", norm_rows))
    assert count_opens == {"open": 1, "load": 0}, "one header read for the one image, no decode"
    assert samples[0].gt_boxes[0] == Box(160, 120, 320, 240)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"box_format": "xyxy_px"}, "box_format 'xyxy_px' is not one of"),
        ({"box_format": "norm1"}, "declared norm1 but its coordinates leave 0..1"),
        ({"box_format": None}, "boxes given without box_format"),
        ({"boxes": [[1, 2, 3]]}, "not a list of 4 numbers"),
        ({"boxes": [[1, 2, 3, "4"]]}, "non-numeric coordinate '4'"),
        ({"image": "img/nope.jpg"}, "image file not found"),
        ({"image_encoding": "base64", "image": "bm90IGFuIGltYWdl"}, "not an image file"),
        ({"image_encoding": "base64", "image": "abc$"}, "corrupt base64"),
        ({"question": None}, "missing field(s) ['question']"),
    ],
)
def test_jsonl_errors_name_file_and_line(tmp_path, change, expected):
    records = generic_records()
    records[2] = {k: v for k, v in {**records[0], "id": "bad", **change}.items() if v is not None}
    message = error_of(load_jsonl, write_generic(tmp_path / "gen", records))
    assert re.search(r"data\.jsonl, line 3\b", message), message
    assert expected in message


def test_jsonl_wrong_box_format_suggests(tmp_path):
    records = generic_records()
    records[0]["box_format"] = "xywh_"
    message = error_of(load_jsonl, write_generic(tmp_path / "gen", records))
    assert "data.jsonl, line 1" in message and "Did you mean 'xywh'?" in message


def test_jsonl_bad_json_line(tmp_path):
    path = write_generic(tmp_path / "gen")
    path.write_text(path.read_text() + "{not json\n")
    message = error_of(load_jsonl, path)
    assert "data.jsonl, line 6" in message and "not valid JSON" in message


def test_data_dir_must_name_one_file(tmp_path):
    write_generic(tmp_path / "gen")
    write_jsonl(tmp_path / "gen" / "other.jsonl", [])
    message = error_of(load_jsonl, data_dir=tmp_path / "gen")
    assert "exactly one" in message and "data.jsonl" in message and "other.jsonl" in message
    with pytest.raises(ValueError, match="limit"):
        load_jsonl(tmp_path / "gen" / "data.jsonl", limit=-1)
