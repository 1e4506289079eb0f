"""Benchmark loaders on fixtures written in each real format, with images drawn in code.

Every image is a plain background with coloured rectangles at known places; a loader passes when
its boxes land on those rectangles (IoU > 0.99 with where they were drawn, and the decoded pixels
inside/outside agree), its options and answers map right, and it never decodes while building.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

import grounding_gym.data.loaders  # noqa: F401  (registers the loaders)
from grounding_gym.data.formats.images import EncodedImageRef
from grounding_gym.data.loaders import (
    DatasetFormatError,
    cycle_accuracy,
    load_hrbench,
    load_mme_realworld,
    load_vstar,
)
from grounding_gym.data.registry import make_dataset
from grounding_gym.data.sample import Sample
from grounding_gym.geometry import Box, iou
from grounding_gym.views import ImageHandle

BACKGROUND = (255, 255, 255)


RED = (220, 30, 30)


BLUE = (30, 60, 220)


GREEN = (30, 170, 60)


def draw(
    size: tuple[int, int], objects: list[tuple[Box, tuple[int, int, int]]], fmt: str = "PNG"
) -> bytes:
    """Encoded image: `objects` (original px xyxy, continuous edges) filled on white."""
    image = Image.new("RGB", size, BACKGROUND)
    pen = ImageDraw.Draw(image)
    for box, colour in objects:
        pen.rectangle([box.x1, box.y1, box.x2 - 1, box.y2 - 1], fill=colour)  # inclusive corners
    buffer = io.BytesIO()
    if fmt == "JPEG":
        image.save(buffer, "JPEG", quality=95, subsampling=0)
    else:
        image.save(buffer, fmt)
    return buffer.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def xywh(box: Box) -> list[float]:
    return [box.x1, box.y1, box.width, box.height]


def assert_on_object(sample: Sample, box: Box, drawn: Box, colour: tuple[int, int, int]) -> None:
    """`box` matches where the rectangle was drawn, and the decoded pixels agree."""
    assert iou(box, drawn) > 0.99, (box, drawn)
    pixels = np.asarray(ImageHandle(sample.image).image()).astype(int)
    x1, y1, x2, y2 = (round(v) for v in box.as_tuple())
    inner = pixels[y1 + 3 : y2 - 3, x1 + 3 : x2 - 3]
    assert np.abs(inner - colour).max() < 40, "the box interior is not the object"
    cy, cx = (y1 + y2) // 2, (x1 + x2) // 2
    height, width = pixels.shape[:2]
    for y, x in ((cy, x1 - 4), (cy, x2 + 3), (y1 - 4, cx), (y2 + 3, cx)):
        if 0 <= y < height and 0 <= x < width:
            assert np.abs(pixels[y, x] - BACKGROUND).max() < 40, "the object spills out of the box"


def write_tsv(path: Path, header: list[str], rows: list[list[Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, delimiter="\t", lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)
    return path


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def error_of(call, *args, **kwargs) -> str:
    with pytest.raises(DatasetFormatError) as info:
        call(*args, **kwargs)
    return str(info.value)


VSTAR_SIZE = (640, 480)


CUP = Box(96, 160, 200, 256)


DOG = Box(400, 64, 520, 200)


ATTRIBUTE_OPTIONS = ["The colour of the cup is red.", "blue", "green", "black"]


def write_vstar(root: Path, n_attribute: int = 6) -> Path:
    attributes, relative = root / "direct_attributes", root / "relative_position"
    attributes.mkdir(parents=True)
    relative.mkdir()
    for i in range(n_attribute):
        (attributes / f"sa_{100 + i}.jpg").write_bytes(draw(VSTAR_SIZE, [(CUP, RED)], "JPEG"))
        record = {
            "target_object": ["cup"],
            "bbox": [xywh(CUP)],
            "question": "What is the colour of the cup?",
            "options": ATTRIBUTE_OPTIONS,
        }
        (attributes / f"sa_{100 + i}.json").write_text(json.dumps(record))
    # Two objects, only the first one boxed (as some V* relative-position files are).
    (relative / "sa_7.jpg").write_bytes(draw(VSTAR_SIZE, [(CUP, RED), (DOG, BLUE)], "JPEG"))
    record = {
        "target_object": ["cup", "dog"],
        "bbox": [xywh(CUP)],
        "question": "Is the cup on the left or right side of the dog?",
        "options": [
            "The cup is on the left side of the dog.",
            "The cup is on the right side of the dog.",
        ],
    }
    (relative / "sa_7.json").write_text(json.dumps(record))
    # Both boxed, second entry null-free.
    (relative / "sa_8.jpg").write_bytes(draw(VSTAR_SIZE, [(CUP, RED), (DOG, BLUE)], "JPEG"))
    record = {**record, "target_object": ["dog", "cup"], "bbox": [xywh(DOG), xywh(CUP)]}
    (relative / "sa_8.json").write_text(json.dumps(record))
    return root


def test_vstar_round_trip(tmp_path):
    root = write_vstar(tmp_path / "vstar")
    samples = load_vstar(root)
    assert [s.id for s in samples][-2:] == ["relative_position/sa_7", "relative_position/sa_8"]
    assert {s.category for s in samples} == {"direct_attributes", "relative_position"}
    for sample in samples:
        assert sample.image_size == VSTAR_SIZE
        correct = json.loads(Path(sample.metadata["source_file"]).read_text())["options"][0]
        assert sample.options[sample.option_letters.index(sample.answer)] == correct
        order = sample.metadata["option_order"]
        originals = json.loads(Path(sample.metadata["source_file"]).read_text())["options"]
        assert list(sample.options) == [originals[i] for i in order]
    attribute = samples[0]
    assert len(attribute.options) == 4 and attribute.gt_boxes and len(attribute.gt_boxes) == 1
    assert_on_object(attribute, attribute.gt_boxes[0], CUP, RED)
    one_box = samples[-2]
    assert len(one_box.gt_boxes) == 1 and one_box.metadata["missing_boxes"] == 1
    assert_on_object(one_box, one_box.gt_boxes[0], CUP, RED)
    two_boxes = samples[-1]
    assert_on_object(two_boxes, two_boxes.gt_boxes[0], DOG, BLUE)
    assert_on_object(two_boxes, two_boxes.gt_boxes[1], CUP, RED)


def test_vstar_shuffle_is_deterministic_and_not_always_a(tmp_path):
    root = write_vstar(tmp_path / "vstar", n_attribute=12)
    first, again = load_vstar(root), load_vstar(root)
    assert [(s.options, s.answer) for s in first] == [(s.options, s.answer) for s in again]
    assert len({s.answer for s in first}) > 1, "the correct option is always in the same place"
    other_seed = load_vstar(root, option_seed=1)
    assert [s.options for s in other_seed] != [s.options for s in first]
    unshuffled = load_vstar(root, option_seed=None)
    assert {s.answer for s in unshuffled} == {"A"}
    assert unshuffled[0].options[0] == ATTRIBUTE_OPTIONS[0]


def test_vstar_through_registry(tmp_path):
    root = write_vstar(tmp_path / "vstar", n_attribute=2)
    samples = make_dataset("vstar", data_dir=str(root), limit=3)
    assert len(samples) == 3
    assert make_dataset("vstar", data_dir=root, categories=("relative_position",))[0].id == (
        "relative_position/sa_7"
    )


def test_vstar_errors(tmp_path):
    root = write_vstar(tmp_path / "vstar", n_attribute=2)
    (root / "direct_attributes" / "sa_100.jpg").unlink()
    message = error_of(load_vstar, root)
    assert "sa_100.json" in message and "no image" in message

    root = write_vstar(tmp_path / "vstar2", n_attribute=2)
    record = json.loads((root / "direct_attributes" / "sa_101.json").read_text())
    record["bbox"] = [[10, 10, -5, 20]]
    (root / "direct_attributes" / "sa_101.json").write_text(json.dumps(record))
    message = error_of(load_vstar, root)
    assert "sa_101.json, bbox[0]" in message and "non-positive size" in message

    del record["options"]
    (root / "direct_attributes" / "sa_101.json").write_text(json.dumps(record))
    assert "missing field(s) ['options']" in error_of(load_vstar, root)

    message = error_of(load_vstar, tmp_path)
    assert "direct_attributes" in message


HR_COLUMNS = [
    "index",
    "image",
    "question",
    "A",
    "B",
    "C",
    "D",
    "answer",
    "category",
    "cycle_category",
]


HR_QUESTIONS = [
    ("What colour is the square?", ["red", "green", "blue", "yellow"], "red", "FSP"),
    ("How many squares are there?", ["1", "2", "3", "4"], "2", "FCP"),
]


def hrbench_rows(images: list[str], share_images: bool = False) -> list[list[Any]]:
    """Each question 4 times, options rotated by one each time (as HR-Bench cycles them)."""
    rows = []
    for rotation in range(4):
        for q, (question, options, correct, category) in enumerate(HR_QUESTIONS):
            shown = options[rotation:] + options[:rotation]
            index = rotation * len(HR_QUESTIONS) + q
            image = str(q) if share_images and rotation else images[q]
            answer = "ABCD"[shown.index(correct)]
            rows.append([index, image, question, *shown, answer, category, f"cycle{rotation + 1}"])
    return rows


def hr_images() -> list[str]:
    return [
        b64(draw((512, 384), [(Box(64, 64, 192, 160), RED)], "JPEG")),
        b64(draw((512, 384), [(Box(64, 64, 192, 160), RED), (Box(256, 64, 384, 160), RED)], "PNG")),
    ]


def test_hrbench_round_trip_and_cycles(tmp_path):
    path = write_tsv(tmp_path / "hr_bench_4k.tsv", HR_COLUMNS, hrbench_rows(hr_images()))
    samples = load_hrbench(path)
    assert len(samples) == 8 and samples[0].id == "0"
    for sample in samples:
        question, options, correct, category = HR_QUESTIONS[int(sample.id) % 2]
        assert sample.options[sample.option_letters.index(sample.answer)] == correct
        assert sample.category == category and sample.gt_boxes == () and sample.image_size is None
        assert isinstance(sample.image, EncodedImageRef)
    assert {s.answer for s in samples} == {"A", "B", "C", "D"}
    cycle_ids = [s.metadata["cycle_id"] for s in samples]
    assert cycle_ids == ["0", "1"] * 4
    assert [s.metadata["rotation"] for s in samples[:3]] == ["cycle1", "cycle1", "cycle2"]
    decoded = ImageHandle(samples[2].image).image()
    assert decoded.size == (512, 384) and decoded.getpixel((100, 100))[0] > 180


def test_hrbench_cycle_accuracy_hand_example(tmp_path):
    path = write_tsv(tmp_path / "hr.tsv", HR_COLUMNS, hrbench_rows(hr_images()))
    samples = load_hrbench(path)
    # Question 1 (even ids): 3 of 4 rotations right; question 2 (odd ids): all right.
    correct = {
        s.id: not (s.metadata["cycle_id"] == "0" and s.metadata["rotation"] == "cycle3")
        for s in samples
    }
    results = [(s, correct[s.id]) for s in samples]
    assert cycle_accuracy(results) == pytest.approx(0.875)
    assert cycle_accuracy(results, mode="all") == pytest.approx(0.5)
    with pytest.raises(ValueError):
        cycle_accuracy([])


def test_hrbench_vlmevalkit_image_references(tmp_path):
    path = write_tsv(tmp_path / "hr.tsv", HR_COLUMNS, hrbench_rows(hr_images(), share_images=True))
    samples = load_hrbench(path)
    assert samples[6].image == samples[0].image  # a ref row reads the image of the row it names
    assert samples[6].metadata["image_key"] == samples[0].metadata["image_key"]
    assert samples[6].metadata["cycle_id"] == "0"
    assert ImageHandle(samples[6].image).size == (512, 384)
    assert len(load_hrbench(path, limit=3)) == 3


def test_hrbench_10000_rows_build_without_decoding(tmp_path, count_opens):
    image = b64(draw((64, 48), [(Box(8, 8, 40, 32), RED)]))
    rows = [
        [
            i,
            image,
            f"Question {i // 4}?",
            "a",
            "b",
            "c",
            "d",
            "ABCD"[i % 4],
            "FSP",
            f"cycle{i % 4 + 1}",
        ]
        for i in range(10_000)
    ]
    path = write_tsv(tmp_path / "big.tsv", HR_COLUMNS, rows)
    samples = load_hrbench(path)
    assert len(samples) == 10_000
    assert count_opens == {"open": 0, "load": 0}
    assert not any(isinstance(s.image, bytes) for s in samples)
    assert len(pickle.dumps(samples)) < 10_000 * 1_500  # addresses, not pixels
    assert samples[9_999].image().size == (64, 48)
    assert count_opens["load"] >= 1


def test_hrbench_huge_field(tmp_path):
    noise = np.random.default_rng(0).integers(0, 255, (400, 400, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, "PNG")
    assert len(b64(buffer.getvalue())) > 131_072  # csv's default field_size_limit
    write_tsv(
        tmp_path / "hr.tsv",
        HR_COLUMNS,
        [[0, b64(buffer.getvalue()), "q?", "a", "b", "c", "d", "A", "x", "c1"]],
    )
    previous = csv.field_size_limit(131_072)
    try:
        sample = load_hrbench(data_dir=tmp_path)[0]
    finally:
        csv.field_size_limit(previous)
    assert np.array_equal(np.asarray(sample.image()), noise)


def test_hrbench_quoted_multiline_fields(tmp_path):
    rows = hrbench_rows(hr_images())
    rows[0][2] = 'Read the "EXIT" sign:\n\twhat does it say?'
    path = write_tsv(tmp_path / "hr.tsv", HR_COLUMNS, rows)
    samples = load_hrbench(path)
    assert samples[0].question == 'Read the "EXIT" sign:\n\twhat does it say?'
    assert samples[0].image().size == (512, 384)
    corrupt = [list(r) for r in rows]
    corrupt[1][1] = "@@@" + corrupt[1][1]
    message = error_of(load_hrbench, write_tsv(tmp_path / "bad.tsv", HR_COLUMNS, corrupt))
    assert "bad.tsv, row 2 (line 4)" in message  # row 1 spans lines 2-3


def test_hrbench_samples_pickle(tmp_path):
    path = write_tsv(tmp_path / "hr.tsv", HR_COLUMNS, hrbench_rows(hr_images()))
    sample = pickle.loads(pickle.dumps(load_hrbench(path)[1]))
    assert sample.image().size == (512, 384)


def test_hrbench_errors(tmp_path):
    rows = hrbench_rows(hr_images())
    no_question = write_tsv(
        tmp_path / "a.tsv",
        [c for c in HR_COLUMNS if c != "question"],
        [r[:2] + r[3:] for r in rows],
    )
    message = error_of(load_hrbench, no_question)
    assert "a.tsv, line 1" in message and "missing column(s) ['question']" in message

    corrupt = [list(r) for r in rows]
    corrupt[2][1] = corrupt[2][1][:-3] + "!!"
    message = error_of(load_hrbench, write_tsv(tmp_path / "b.tsv", HR_COLUMNS, corrupt))
    assert "b.tsv, row 3 (line 4)" in message and "corrupt base64" in message

    not_image = [list(r) for r in rows]
    not_image[1][1] = b64(b"this is plain text, not an image at all...")
    message = error_of(load_hrbench, write_tsv(tmp_path / "c.tsv", HR_COLUMNS, not_image))
    assert "c.tsv, row 2 (line 3)" in message and "not an image file" in message

    bad_answer = [list(r) for r in rows]
    bad_answer[4][7] = "F"
    message = error_of(load_hrbench, write_tsv(tmp_path / "d.tsv", HR_COLUMNS, bad_answer))
    assert "d.tsv, row 5 (line 6)" in message and "answer 'F'" in message

    dangling = [list(r) for r in rows]
    dangling[3][1] = "77"
    message = error_of(load_hrbench, write_tsv(tmp_path / "e.tsv", HR_COLUMNS, dangling))
    assert "e.tsv, row 4 (line 5)" in message and "index 77" in message

    duplicate = [list(r) for r in rows]
    duplicate[5][0] = duplicate[0][0]
    message = error_of(load_hrbench, write_tsv(tmp_path / "f.tsv", HR_COLUMNS, duplicate))
    assert "f.tsv, row 6 (line 7)" in message and "duplicate sample id" in message

    short = tmp_path / "g.tsv"
    short.write_text("\t".join(HR_COLUMNS) + "\n0\tabc\n")
    message = error_of(load_hrbench, short)
    assert "g.tsv, row 1 (line 2)" in message and "2 tab-separated fields" in message


MME_CHOICES = [
    "(A) red",
    "(B) green",
    "(C) blue",
    "(D) white",
    "(E) The image does not feature the colour.",
]


def write_mme_json(root: Path) -> Path:
    (root / "remote_sensing").mkdir(parents=True)
    (root / "remote_sensing" / "03553.png").write_bytes(
        draw((800, 600), [(Box(80, 80, 160, 160), BLUE)])
    )
    records = [
        {
            "Question_id": "perception/remote_sensing/color/0001",
            "Image": "remote_sensing/03553.png",
            "Text": "What is the colour of the roof?",
            "Question Type": "Multiple Choice",
            "Answer choices": MME_CHOICES,
            "Ground truth": "C",
            "Category": "color",
            "Subtask": "Remote Sensing",
            "Task": "Perception",
        },
        {
            "Question_id": "reasoning/ocr/0002",
            "Image": b64(draw((300, 200), [], "JPEG")),
            "Text": "Which option is right?",
            "Answer Choices": ["(A) one", "(B) two", "(C) three", "(D) four", "(E) five"],
            "Ground truth": "(E)",
            "Category": "text",
            "Subtask": "OCR with Complex Context",
            "Task": "Reasoning",
        },
    ]
    path = root / "MME-RealWorld.json"
    path.write_text(json.dumps(records, indent=1))
    return path


def test_mme_realworld_json(tmp_path):
    path = write_mme_json(tmp_path / "mme")
    first, second = load_mme_realworld(path, data_dir=tmp_path / "mme")
    assert first.options == (
        "red",
        "green",
        "blue",
        "white",
        "The image does not feature the colour.",
    )
    assert first.answer == "C" and first.options[2] == "blue"
    assert first.category == "Perception/Remote Sensing/color"
    assert first.metadata["subtask"] == "Remote Sensing"
    assert ImageHandle(first.image).size == (800, 600)
    assert second.answer == "E" and second.options[4] == "five"
    assert isinstance(second.image, bytes) and ImageHandle(second.image).size == (300, 200)
    assert make_dataset("mme-realworld", data_dir=tmp_path / "mme", limit=1)[0].id == first.id


def test_mme_realworld_tsv(tmp_path):
    image = b64(draw((320, 240), [(Box(16, 16, 64, 64), GREEN)]))
    header = [
        "index",
        "image",
        "question",
        "A",
        "B",
        "C",
        "D",
        "E",
        "answer",
        "category",
        "l2-category",
    ]
    rows = [
        [
            0,
            image,
            "Colour?",
            "(A) red",
            "(B) green",
            "blue",
            "white",
            "none",
            "B",
            "color",
            "Remote Sensing",
        ],
        [
            1,
            "0",
            "Shape?",
            "square",
            "circle",
            "star",
            "line",
            "none",
            "A",
            "shape",
            "Remote Sensing",
        ],
    ]
    samples = load_mme_realworld(write_tsv(tmp_path / "MME-RealWorld.tsv", header, rows))
    assert samples[0].options[:2] == ("red", "green") and samples[0].answer == "B"
    assert samples[1].metadata["image_key"] == samples[0].metadata["image_key"]
    assert samples[1].image().size == (320, 240)


def test_mme_realworld_jsonl_base64(tmp_path):
    image = b64(draw((320, 240), [(Box(16, 16, 64, 64), GREEN)]))
    record = {
        "Question_id": 7,
        "Image": image,
        "Text": "Colour?",
        "Answer choices": MME_CHOICES,
        "Ground truth": "B",
    }
    (sample,) = load_mme_realworld(write_jsonl(tmp_path / "mme.jsonl", [record]))
    assert isinstance(sample.image, EncodedImageRef) and sample.image().size == (320, 240)
    assert sample.id == "7" and sample.options[1] == "green" and sample.category == ""


def test_mme_realworld_errors(tmp_path):
    path = write_mme_json(tmp_path / "mme")
    (tmp_path / "mme" / "remote_sensing" / "03553.png").unlink()
    message = error_of(load_mme_realworld, path)
    assert "MME-RealWorld.json, record 0" in message and "image file not found" in message

    records = json.loads(path.read_text())
    del records[1]["Text"]
    path.write_text(json.dumps(records))
    (tmp_path / "mme" / "remote_sensing" / "03553.png").write_bytes(draw((80, 60), []))
    message = error_of(load_mme_realworld, path)
    assert "record 1" in message and "missing field(s) ['Text']" in message

    records[1]["Text"] = "q"
    records[1]["Image"] = "data:image/png;base64," + "A" * 80 + "%%"
    path.write_text(json.dumps(records))
    message = error_of(load_mme_realworld, path)
    assert "record 1" in message and "corrupt base64" in message


TREE_A, TREE_B = Box(64, 96, 256, 224), Box(512, 320, 704, 512)
