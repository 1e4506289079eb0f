"""The generic grounding-gym JSONL format: bring any benchmark without writing a loader.

One JSON object per line (blank lines are skipped):

| field | required | meaning |
|-------|----------|---------|
| `id` | no (default: the line number) | unique sample id |
| `image` | yes | path relative to the file's folder (or `data_dir`), resolving inside it (symlinks included; `allow_outside_root=True` lifts this), or base64 |
| `image_encoding` | no | `"path"` (default) or `"base64"` (`data:image/...;base64,` accepted) |
| `image_size` | no | `[w, h]` of the original in px (saves a header read, trusted as given) |
| `question` | yes | question text, without the options |
| `options` | no | option texts in letter order (list, or `{"A": ..., "B": ...}`) |
| `answer` | yes | option letter or option text when `options` is given, else free text ("" ok) |
| `boxes` | no | list of boxes, each 4 numbers |
| `box_format` | when `boxes` | `"xyxy"` / `"xywh"` (original px), `"norm1"` (0..1 corners), `"norm1000"` (0..1000 corners, Qwen2-VL); normalised = fraction of the whole original image |
| `category` | no | benchmark category |
| `metadata` | no | a JSON object kept in `Sample.metadata` |

Normalised boxes need the image size: the loader reads the image header once per distinct image
(`ImageHandle(...).size`, no pixel decode) unless the line gives `image_size`.

Example: `{"id": "q1", "image": "imgs/a.jpg", "question": "What colour is the cup?",
"options": ["red", "blue"], "answer": "B", "boxes": [[120, 40, 180, 95]], "box_format": "xyxy"}`
"""  # noqa: E501 (table rows)

from __future__ import annotations

import os
from typing import Any

from grounding_gym.data.formats.boxes import BOX_FORMATS, BoxFitter, check_box_format, parse_box
from grounding_gym.data.formats.choices import answer_letter, parse_options
from grounding_gym.data.formats.images import EncodedImageRef, ImageFields, ResolvedImage
from grounding_gym.data.formats.records import (
    DatasetFormatError,
    IdRegistry,
    JsonlRecord,
    at_line,
    check_limit,
    format_error,
    iter_jsonl,
    require,
    resolve_file,
)
from grounding_gym.data.sample import Sample
from grounding_gym.geometry import Box

JSONL_REQUIRED: tuple[str, ...] = ("image", "question", "answer")
MAX_QUESTION_CHARS = 16_384
"""Longest question a line may hold (the first prompt adds options and instructions)."""
IMAGE_ENCODINGS: tuple[str, ...] = ("path", "base64")


def load_jsonl(
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    read_sizes: bool = False,
    limit: int | None = None,
    allow_outside_root: bool = False,
    bad_rows: list[DatasetFormatError] | None = None,
) -> list[Sample]:
    """Samples from a file in the generic JSONL format (see the module docstring).

    Args:
        path: the `.jsonl` file.
        data_dir: the folder image paths are relative to (default: the file's folder); alone,
            the file or a folder holding exactly one `.jsonl`.
        read_sizes: read every image's header (no pixel decode) to fill `Sample.image_size` and
            clip boxes to the image; always done for lines with normalised boxes.
        limit: keep the first `limit` samples.
        allow_outside_root: follow image paths that resolve outside the file's folder (or
            `data_dir`): absolute paths, `..`, symlinks leading out. Off by default: a dataset
            file from elsewhere must not pick which of your files an env shows.
        bad_rows: collect the error of each bad line here and skip the line, instead of
            raising on the first (`grounding-gym check-dataset` lists them all).

    Returns:
        Samples in file order; `metadata` is the line's `metadata` plus `line`, `image_key`.

    Raises:
        DatasetFormatError: a missing field, corrupt base64, a missing image file or one
            outside the root, a question over `MAX_QUESTION_CHARS`, a bad box or box_format
            (message: file and line).
    """
    check_limit(limit)
    file, root = resolve_file("jsonl", path, data_dir, (".jsonl",))
    images = ImageFields(root, allow_outside_root)
    ids, fitter = IdRegistry(), BoxFitter("jsonl")
    samples: list[Sample] = []
    for record in iter_jsonl(file, bad_rows):
        if limit is not None and len(samples) >= limit:
            break
        try:
            samples.append(_jsonl_sample(file, record, read_sizes, images, ids, fitter))
        except DatasetFormatError as err:
            if bad_rows is None:
                raise
            bad_rows.append(err)
    fitter.warn()
    return samples


def _jsonl_sample(
    file: str,
    record: JsonlRecord,
    read_sizes: bool,
    images: ImageFields,
    ids: IdRegistry,
    fitter: BoxFitter,
) -> Sample:
    where = at_line(file, record.line)
    value = record.value
    require(value, JSONL_REQUIRED, where)
    image = _image(file, record, where, images)
    boxes_value = value.get("boxes")
    box_format = None
    if boxes_value:
        if value.get("box_format") is None:
            raise format_error(
                where,
                "boxes given without box_format",
                f'add "box_format": one of {list(BOX_FORMATS)}.',
            )
        box_format = check_box_format(value["box_format"], where)
    size = _size(value, image, where, images, read_sizes or str(box_format).startswith("norm"))
    options = parse_options(value["options"], where) if value.get("options") is not None else None
    answer = answer_letter(value["answer"], options, where) if options else str(value["answer"])
    question = str(value["question"]).strip()
    if len(question) > MAX_QUESTION_CHARS:
        raise format_error(
            where,
            f"question of {len(question):,} chars exceeds {MAX_QUESTION_CHARS:,}",
            "shorten it: the env's dialogue observation holds at most 65,536 chars.",
        )
    metadata = value.get("metadata") or {}
    if not isinstance(metadata, dict):
        raise format_error(where, f"metadata must be a JSON object, got {metadata!r}")
    return Sample(
        id=ids.add(str(value.get("id", record.line)), where),
        image=image.source,
        question=question,
        answer=answer,
        options=options,
        gt_boxes=_boxes(boxes_value, box_format, where, size, fitter),
        category=str(value.get("category") or "").strip(),
        image_size=size,
        metadata={**metadata, "line": record.line, "image_key": image.key},
    )


def _image(file: str, record: JsonlRecord, where: str, images: ImageFields) -> ResolvedImage:
    encoding = record.value.get("image_encoding", "path")
    if encoding not in IMAGE_ENCODINGS:
        raise format_error(where, f"image_encoding {encoding!r} is not one of {IMAGE_ENCODINGS}")
    text = record.value["image"]
    if encoding == "base64":
        if not isinstance(text, str):
            raise format_error(where, f"a base64 image must be a string, got {type(text).__name__}")
        ref = EncodedImageRef(file, record.offset, record.length, "jsonl", "image", where)
        return images.base64_in_record(text, where, ref)
    return images.path(text, where)


def _size(
    value: dict[str, Any], image: ResolvedImage, where: str, images: ImageFields, needed: bool
) -> tuple[int, int] | None:
    given = value.get("image_size")
    if given is not None:
        if (
            not isinstance(given, (list, tuple))
            or len(given) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in given)
        ):
            raise format_error(
                where, f"image_size must be [w, h], two positive ints; got {given!r}"
            )
        return int(given[0]), int(given[1])
    return images.size(image, where) if needed else None


def _boxes(
    value: Any, box_format: str | None, where: str, size: tuple[int, int] | None, fitter: BoxFitter
) -> tuple[Box, ...]:
    if not value:
        return ()
    if not isinstance(value, list) or box_format is None:
        raise format_error(where, f"boxes must be a list of 4-number lists, got {value!r}")
    if len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        raise format_error(
            where, f"boxes must be a list of boxes, got one flat box {value!r}", f"write [{value}]."
        )
    out = []
    for i, entry in enumerate(value):
        at = f"{where}, boxes[{i}]"
        out.append(fitter.fit(parse_box(entry, box_format, at, size), size, at))
    return tuple(out)
