"""RefCOCO / RefCOCO+ / RefCOCOg referring expressions: one box per expression, scored by IoU.

A JSON list (or JSONL, or `{"refs" | "annotations" | "data": [...]}`) of records:
`{"image": "COCO_train2014_000000581857.jpg" (or "file_name"), "bbox": [x, y, w, h],
"expression": "..." (or "sentences": ["...", {"sent": "..."}]), "id" (or "ann_id"), "split"}`.
Image paths resolve against `data_dir/images/`, then `data_dir/`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from grounding_gym.data.formats.boxes import BoxFitter, check_box_format, parse_box
from grounding_gym.data.formats.images import ImageFields
from grounding_gym.data.formats.records import (
    IdRegistry,
    at_line,
    check_limit,
    format_error,
    iter_jsonl,
    load_json,
    require,
    resolve_file,
)
from grounding_gym.data.sample import Sample

_LIST_KEYS = ("refs", "annotations", "data")
_ID_KEYS = ("id", "ann_id", "ref_id")


def load_refcoco(
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    split: str | None = None,
    box_format: str = "xywh",
    read_sizes: bool = False,
    limit: int | None = None,
) -> list[Sample]:
    """One `Sample` per (annotation, expression), in file order.

    Args:
        path: the `.json` / `.jsonl` file of records.
        data_dir: the folder holding the images (or `images/`); alone, the file or a folder
            holding exactly one `.json`/`.jsonl`.
        split: keep only records whose `split` field equals this ("val", "testA", ...).
        box_format: format of `bbox` (COCO: "xywh", original px).
        read_sizes: read each image's header (no pixel decode) to fill `Sample.image_size` and
            clip boxes to the image. Off by default: RefCOCO has ~20k images.
        limit: keep the first `limit` samples (expressions).

    Returns:
        Samples with `question` the expression, `answer` "" (the env rewards IoU), `options`
        None, `gt_boxes` the one box, `category` "refcoco", and `metadata`:
        `referring_expression`, `ann_id`, `sentence_index`, `split`, `image_key`.

    Raises:
        DatasetFormatError: a missing field, a missing image file or a bad box.
    """
    check_limit(limit)
    file, root = resolve_file("refcoco", path, data_dir, (".json", ".jsonl"))
    check_box_format(box_format, f"refcoco {file}")
    images, ids, fitter = ImageFields(root), IdRegistry(), BoxFitter("refcoco")
    samples: list[Sample] = []
    for position, (where, record) in enumerate(_records(file)):
        if limit is not None and len(samples) >= limit:
            break
        if split is not None and str(record.get("split")) != split:
            continue
        for sample in _ref_samples(
            record, where, position, box_format, read_sizes, images, ids, fitter
        ):
            if limit is not None and len(samples) >= limit:
                break
            samples.append(sample)
    fitter.warn()
    return samples


def _records(file: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if file.lower().endswith(".jsonl"):
        for rec in iter_jsonl(file):
            yield at_line(file, rec.line), rec.value
        return
    data = load_json(file)
    if isinstance(data, dict):
        key = next((k for k in _LIST_KEYS if isinstance(data.get(k), list)), None)
        if key is None:
            raise format_error(file, f"expected a JSON list, or a dict with one of {_LIST_KEYS}")
        data = data[key]
    if not isinstance(data, list):
        raise format_error(file, f"expected a JSON list of records, got {type(data).__name__}")
    for i, record in enumerate(data):
        where = f"{file}, record {i}"
        if not isinstance(record, dict):
            raise format_error(where, f"expected a JSON object, got {type(record).__name__}")
        yield where, record


def _expressions(record: dict[str, Any], where: str) -> list[str]:
    value = record.get("expression")
    if value is None:
        value = record.get("sentences")
    if value is None:
        raise format_error(
            where, f"missing field 'expression' (or 'sentences'); the record has {sorted(record)}"
        )
    items = value if isinstance(value, list) else [value]
    texts = []
    for item in items:
        text = item.get("sent", item.get("raw")) if isinstance(item, dict) else item
        if not isinstance(text, str) or not text.strip():
            raise format_error(where, f"expression {item!r} is not a non-empty string")
        texts.append(text.strip())
    if not texts:
        raise format_error(where, "no expressions")
    return texts


def _ref_samples(
    record: dict[str, Any],
    where: str,
    position: int,
    box_format: str,
    read_sizes: bool,
    images: ImageFields,
    ids: IdRegistry,
    fitter: BoxFitter,
) -> list[Sample]:
    require(record, ("bbox",), where)
    name = record.get("image", record.get("file_name"))
    if name is None:
        raise format_error(
            where, f"missing field 'image' (or 'file_name'); the record has {sorted(record)}"
        )
    image = images.path(name, where, candidates=("images",))
    size = images.size(image, where) if read_sizes or box_format.startswith("norm") else None
    box = fitter.fit(parse_box(record["bbox"], box_format, where, size), size, where)
    ann_id = next((str(record[k]) for k in _ID_KEYS if record.get(k) is not None), str(position))
    return [
        Sample(
            id=ids.add(f"{ann_id}-{k}", where),
            image=image.source,
            question=text,
            answer="",
            options=None,
            gt_boxes=(box,),
            category="refcoco",
            image_size=size,
            metadata={
                "referring_expression": text,
                "ann_id": ann_id,
                "sentence_index": k,
                "split": record.get("split"),
                "image_key": image.key,
            },
        )
        for k, text in enumerate(_expressions(record, where))
    ]
