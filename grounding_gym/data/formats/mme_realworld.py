"""MME-RealWorld (Zhang et al., 2024): five-option (A-E) questions on high-resolution images.

Two layouts are read:

* the official JSON (`MME-RealWorld.json`, also as JSONL): a list of
  `{"Question_id", "Image", "Text", "Answer choices": ["(A) ...", ...], "Ground truth": "A",
  "Task", "Subtask", "Category"}` with `Image` a path relative to `data_dir` (or base64);
* the VLMEvalKit TSV: `index, image, question, A, B, C, D, E, answer, category`, `image`
  base64 (or the `index` of a row sharing it), or an `image_path` column of relative paths.

Choice texts lose their "(A) " prefixes. The printed labels are authoritative: the official
files have rows of six choices whose labels repeat ("(D)" twice), and the ground-truth letter
names the choice *printed* with it (the first, if repeated), whatever its position; the options
are shown as A, B, ... by position, and `answer` is that choice's position letter. Records that
repeat an earlier record exactly (same `Question_id`, same content: MME-RealWorld-Lite has some)
are kept once, with one warning that counts them; a repeated id with other content is an error.
`category` is "Task/Subtask/Category" for the JSON (the official report's breakdown; `Subtask`
names repeat across tasks) and `category` for the TSV.

MME-RealWorld and MME-RealWorld-Lite are different benchmarks (published accuracies differ by
10 points or more): `load_mme_realworld` (dataset `mme-realworld`) refuses a file whose name
says Lite, `load_mme_realworld_lite` (dataset `mme-realworld-lite`) reads it, and every sample
records `metadata["split"]` ("full" / "lite").
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Iterator
from typing import Any, cast

from grounding_gym.data.formats.choices import LETTERS, Choices, answer_letter, parse_choices
from grounding_gym.data.formats.hrbench import tsv_options
from grounding_gym.data.formats.images import EncodedImageRef, ImageFields, ResolvedImage
from grounding_gym.data.formats.records import (
    IdRegistry,
    TsvRecord,
    at_line,
    at_row,
    check_limit,
    format_error,
    iter_json_array,
    iter_jsonl,
    iter_tsv,
    require,
    resolve_file,
)
from grounding_gym.data.sample import Sample

MME_JSON_REQUIRED: tuple[str, ...] = ("Question_id", "Image", "Text", "Ground truth")
MME_TSV_REQUIRED: tuple[str, ...] = ("index", "question", "answer", "A", "B")
_CHOICE_KEYS = ("Answer choices", "Answer Choices")


def load_mme_realworld(
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    lite: bool = False,
) -> list[Sample]:
    """MME-RealWorld questions as `Sample`s, in file order.

    Args:
        path: the `.json`, `.jsonl` or `.tsv` file.
        data_dir: the folder image paths are relative to; alone, the file or a folder holding
            exactly one `.json`/`.jsonl`/`.tsv`.
        limit: keep the first `limit` questions.
        lite: the file is MME-RealWorld-Lite (`load_mme_realworld_lite`); False refuses a file
            whose name says Lite, True warns when the name does not.

    Returns:
        Samples with `id` = `Question_id` (TSV: `index`), `answer` the correct letter, no
        `gt_boxes`, and `metadata`: `task`, `subtask`, `image_key`, `split` ("full" / "lite")
        (JSON: also the raw `Category`).

    Raises:
        DatasetFormatError: a missing field/column, corrupt base64, a missing image file or a bad
            answer (message: file and line, row or record), or a Lite file read as the full set.
    """
    check_limit(limit)
    name = "mme-realworld-lite" if lite else "mme-realworld"
    file, root = resolve_file(name, path, data_dir, (".json", ".jsonl", ".tsv"))
    _check_version(file, lite)
    images, ids = ImageFields(root), IdRegistry(name)
    records: Iterator[tuple[str, Any, EncodedImageRef | None]]
    if file.lower().endswith(".tsv"):
        records, parse = _tsv_records(file), cast(Callable[..., Sample | None], _tsv_sample)
    else:
        records, parse = _json_records(file), cast(Callable[..., Sample | None], _json_sample)
    samples: list[Sample] = []
    by_index: dict[str, ResolvedImage] = {}
    for where, record, ref in records:
        if limit is not None and len(samples) >= limit:
            break
        sample = parse(record, where, ref, images, ids, by_index)
        if sample is not None:
            split = "lite" if lite else "full"
            samples.append(
                dataclasses.replace(sample, metadata={**sample.metadata, "split": split})
            )
    ids.warn()
    return samples


def load_mme_realworld_lite(
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
) -> list[Sample]:
    """MME-RealWorld-Lite (the official subset, e.g. `MME-RealWorld-Lite.json`): as
    `load_mme_realworld`, every sample's `metadata["split"]` being "lite"."""
    return load_mme_realworld(path, data_dir=data_dir, limit=limit, lite=True)


def _check_version(file: str, lite: bool) -> None:
    """A file named as the Lite subset is not read as the full benchmark (their published
    numbers are not comparable); a Lite read of a file not named so gets a warning."""
    named_lite = "lite" in os.path.basename(file).casefold()
    if named_lite and not lite:
        raise format_error(
            file,
            "the file name says MME-RealWorld-Lite, but the dataset is 'mme-realworld' (the full "
            "benchmark, whose published accuracies differ)",
            "use the dataset 'mme-realworld-lite' (--dataset mme-realworld-lite).",
        )
    if lite and not named_lite:
        warnings.warn(
            f"mme-realworld-lite: {file} is not named as the Lite subset; its runs are ranked "
            "beside MME-RealWorld-Lite numbers only, so make sure it is that subset",
            stacklevel=3,
        )


def _json_records(file: str) -> Iterator[tuple[str, dict[str, Any], EncodedImageRef | None]]:
    if file.lower().endswith(".jsonl"):
        for rec in iter_jsonl(file):
            where = at_line(file, rec.line)
            yield (
                where,
                rec.value,
                EncodedImageRef(file, rec.offset, rec.length, "jsonl", "Image", where),
            )
        return
    for i, (line, record) in enumerate(iter_json_array(file)):
        where = f"{file}, record {i} (line {line})"
        if not isinstance(record, dict):
            raise format_error(where, f"expected a JSON object, got {type(record).__name__}")
        yield where, record, None


def _json_sample(
    record: dict[str, Any],
    where: str,
    ref: EncodedImageRef | None,
    images: ImageFields,
    ids: IdRegistry,
    by_index: dict[str, ResolvedImage],
) -> Sample | None:
    require(record, MME_JSON_REQUIRED, where)
    sample_id = str(record["Question_id"]).strip()
    if ids.is_repeat(sample_id, record, where):
        return None
    key = next((k for k in _CHOICE_KEYS if record.get(k) is not None), None)
    if key is None:
        raise format_error(
            where, f"missing field 'Answer choices'; the record has {sorted(record)}"
        )
    choices = parse_choices(record[key], where, field=key)
    image = images.auto(record["Image"], where, ref)
    parts = [str(record.get(k) or "").strip() for k in ("Task", "Subtask", "Category")]
    return Sample(
        id=ids.add(sample_id, where, record),
        image=image.source,
        question=str(record["Text"]).strip(),
        answer=answer_letter(
            record["Ground truth"], choices.texts, where, choices.labels, "Ground truth"
        ),
        options=choices.texts,
        category="/".join(p for p in parts if p),
        metadata={
            "task": parts[0],
            "subtask": parts[1],
            "raw_category": parts[2],
            "image_key": image.key,
            "printed_labels": _printed(choices),
        },
    )


def _printed(choices: Choices) -> list[str | None] | None:
    """The printed labels when they differ from the positions (else None)."""
    positional = list(LETTERS[: len(choices.labels)])
    return (
        None
        if not any(choices.labels) or list(choices.labels) == positional
        else list(choices.labels)
    )


def _tsv_records(file: str) -> Iterator[tuple[str, TsvRecord, EncodedImageRef | None]]:
    column: int | None = None
    for rec in iter_tsv(file, MME_TSV_REQUIRED):
        header = list(rec.values)
        if column is None:
            if "image" not in header and "image_path" not in header:
                raise format_error(
                    at_line(file, 1),
                    f"needs an 'image' (base64) or 'image_path' column; has {header}",
                )
            column = header.index("image") if "image" in header else -1
        where = at_row(file, rec.row, rec.line)
        ref = (
            EncodedImageRef(file, rec.offset, rec.length, "tsv", column, where)
            if column >= 0
            else None
        )
        yield where, rec, ref


def _tsv_sample(
    rec: TsvRecord,
    where: str,
    ref: EncodedImageRef | None,
    images: ImageFields,
    ids: IdRegistry,
    by_index: dict[str, ResolvedImage],
) -> Sample | None:
    record = rec.values
    index = record["index"].strip()
    if ids.is_repeat(index, record, where):
        return None
    choices = parse_choices(tsv_options(rec, where), where)
    image = _tsv_image(record, where, ref, images, by_index)
    by_index.setdefault(index, image)
    return Sample(
        id=ids.add(index, where, record),
        image=image.source,
        question=str(record["question"]).strip(),
        answer=answer_letter(record["answer"], choices.texts, where, choices.labels),
        options=choices.texts,
        category=str(record.get("category") or "").strip(),
        metadata={
            "task": str(record.get("l1-category") or "").strip(),
            "subtask": str(record.get("l2-category") or "").strip(),
            "image_key": image.key,
            "printed_labels": _printed(choices),
        },
    )


def _tsv_image(
    record: dict[str, str],
    where: str,
    ref: EncodedImageRef | None,
    images: ImageFields,
    by_index: dict[str, ResolvedImage],
) -> ResolvedImage:
    text = str(record.get("image") or "").strip()
    if ref is None or not text:
        if record.get("image_path"):
            return images.path(record["image_path"], where)
        raise format_error(where, "empty image field and no image_path")
    if (
        text.isascii() and text.isdigit() and len(text) <= 64
    ):  # VLMEvalKit: the index of a row with the image
        shared = by_index.get(text)
        if shared is None:
            raise format_error(where, f"the image field refers to index {text}, not seen before")
        return shared
    return images.base64_in_record(text, where, ref)
