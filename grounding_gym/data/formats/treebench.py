"""TreeBench (TreeVGR, 2025): traceable-evidence VQA, with boxes for the objects the answer needs.

JSONL, one object per line: `{"image": <path relative to data_dir, or base64>, "question": ...,
"options": {"A": ..., ...} or [...] or one string "A. x\nB. y", "answer": "B",
"target_instances": [[x1, y1, x2, y2], ...] or [{"bbox": [...]}, ...] (or either as a JSON
string, as the published file stores them), "category": ...}` (boxes in original px). An `id` /
`index` / `question_id` field names the sample, else its line number. Exact repeats of a line
are kept once, with a warning that counts them.

`box_miou` is the benchmark's localisation score for one sample.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from grounding_gym.data.formats.boxes import BoxFitter, check_box_format, parse_box
from grounding_gym.data.formats.choices import answer_letter, parse_choices
from grounding_gym.data.formats.images import EncodedImageRef, ImageFields
from grounding_gym.data.formats.records import (
    IdRegistry,
    JsonlRecord,
    at_line,
    check_limit,
    format_error,
    iter_jsonl,
    json_field,
    require,
    resolve_file,
)
from grounding_gym.data.sample import Sample
from grounding_gym.geometry import Box, iou

TREEBENCH_REQUIRED: tuple[str, ...] = ("image", "question", "options", "answer")
_ID_KEYS = ("id", "index", "question_id")
_BOX_KEYS = ("bbox", "bbox_2d", "box")


def load_treebench(
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    box_format: str = "xyxy",
    read_sizes: bool = True,
    limit: int | None = None,
) -> list[Sample]:
    """TreeBench questions as `Sample`s, in file order.

    Args:
        path: the `.jsonl` file.
        data_dir: the folder image paths are relative to; alone, the file or a folder holding
            exactly one `.jsonl`.
        box_format: format of `target_instances` (TreeBench: "xyxy", original px).
        read_sizes: read each image's header (no pixel decode) to fill `Sample.image_size` and
            clip boxes to the image (always done for normalised box formats).
        limit: keep the first `limit` questions.

    Returns:
        Samples with `answer` the correct letter, `gt_boxes` the target instances, and
        `metadata`: `line`, `image_key`.

    Raises:
        DatasetFormatError: a missing field, corrupt base64, a missing image file or a bad box
            (message: file and line).
    """
    check_limit(limit)
    file, root = resolve_file("treebench", path, data_dir, (".jsonl",))
    check_box_format(box_format, f"treebench {file}")
    images, ids, fitter = ImageFields(root), IdRegistry("treebench"), BoxFitter("treebench")
    samples: list[Sample] = []
    for record in iter_jsonl(file):
        if limit is not None and len(samples) >= limit:
            break
        sample = _treebench_sample(file, record, box_format, read_sizes, images, ids, fitter)
        if sample is not None:
            samples.append(sample)
    fitter.warn()
    ids.warn()
    return samples


def _treebench_sample(
    file: str,
    record: JsonlRecord,
    box_format: str,
    read_sizes: bool,
    images: ImageFields,
    ids: IdRegistry,
    fitter: BoxFitter,
) -> Sample | None:
    where = at_line(file, record.line)
    value = record.value
    require(value, TREEBENCH_REQUIRED, where)
    sample_id = next(
        (str(value[k]) for k in _ID_KEYS if value.get(k) is not None), str(record.line)
    )
    if ids.is_repeat(sample_id, value, where):
        return None
    ref = EncodedImageRef(file, record.offset, record.length, "jsonl", "image", where)
    image = images.auto(value["image"], where, ref)
    size = images.size(image, where) if read_sizes or box_format.startswith("norm") else None
    choices = parse_choices(value["options"], where)
    return Sample(
        id=ids.add(sample_id, where, value),
        image=image.source,
        question=str(value["question"]).strip(),
        answer=answer_letter(value["answer"], choices.texts, where, choices.labels),
        options=choices.texts,
        gt_boxes=_instances(value.get("target_instances"), box_format, where, size, fitter),
        category=str(value.get("category") or "").strip(),
        image_size=size,
        metadata={"line": record.line, "image_key": image.key},
    )


def _instances(
    value: Any, box_format: str, where: str, size: tuple[int, int] | None, fitter: BoxFitter
) -> tuple[Box, ...]:
    value = json_field(value, where, "target_instances")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise format_error(
            where, f"field 'target_instances' must be a list of boxes, got {value!r}"
        )
    boxes = []
    for i, entry in enumerate(value):
        at = f"{where}, target_instances[{i}]"
        if isinstance(entry, dict):
            key = next((k for k in _BOX_KEYS if k in entry), None)
            if key is None:
                raise format_error(at, f"an instance dict needs a 'bbox' key, has {sorted(entry)}")
            entry = entry[key]
        boxes.append(fitter.fit(parse_box(entry, box_format, at, size), size, at))
    return tuple(boxes)


def box_miou(pred: Sequence[Box], gt: Sequence[Box]) -> float:
    """Mean IoU of the ground-truth boxes, each against its best-matching predicted box.

    One sample's localisation score: for every target box, the highest IoU with any predicted
    box (the same predicted box may serve several targets), averaged over the targets. No
    prediction scores 0. Extra predicted boxes are not penalised. All boxes in one frame
    (original px).

    Args:
        pred: predicted boxes (may be empty).
        gt: target boxes (non-empty).

    Raises:
        ValueError: `gt` is empty (the score is undefined; skip such samples).

    >>> box_miou([Box(0, 0, 10, 10)], [Box(0, 0, 10, 10), Box(0, 0, 10, 20)])
    0.75
    >>> box_miou([], [Box(0, 0, 1, 1)])
    0.0
    """
    if not gt:
        raise ValueError("box_miou needs at least one ground-truth box")
    if not pred:
        return 0.0
    return sum(max(iou(p, g) for p in pred) for g in gt) / len(gt)
