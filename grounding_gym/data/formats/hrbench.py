"""HR-Bench 4K / 8K (Wang et al., AAAI 2025): a VLMEvalKit-style TSV with base64 images.

Columns: `index, image, question, A, B, C, D, answer, category, cycle_category`. Every question
appears several times with its options rotated (`cycle_category` names the rotation, e.g.
"cycle1"); the benchmark reports the mean over rotations (`cycle_accuracy`).

Rotations of one question are identified by content, since the file has no question-id column:
same question text + same image (sha256 of its base64) + same set of option texts + same
correct option text. `metadata["cycle_id"]` is the `index` of the group's first row.

Images: a full base64 field, or VLMEvalKit's short form (an `index` of another row whose image
it shares). Each distinct base64 text is validated once at load; pixels are decoded only when
the env asks (`EncodedImageRef`).

HR-Bench 4K and 8K are different benchmarks with the same columns: the version is read from the
file name (`hr_bench_4k.tsv`, `hr_bench_8k.tsv`) or given as `split="4k"` / `"8k"`, and recorded
in every sample's `metadata["split"]` (None when neither says), so a run is ranked only beside
published numbers of its version.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from grounding_gym.data.formats.choices import LETTERS, answer_letter
from grounding_gym.data.formats.images import EncodedImageRef, ImageFields, ResolvedImage
from grounding_gym.data.formats.records import (
    IdRegistry,
    TsvRecord,
    at_row,
    check_limit,
    format_error,
    iter_tsv,
    resolve_file,
)
from grounding_gym.data.sample import Sample

HRBENCH_REQUIRED: tuple[str, ...] = ("index", "image", "question", "answer", "A", "B")
"""Required TSV columns; C.. (more options), `category` and `cycle_category` are optional."""

_MAX_REF_CHARS = 64  # VLMEvalKit: an image field this short is the index of another row
HRBENCH_SPLITS: tuple[str, ...] = ("4k", "8k")
"""HR-Bench versions (`split`): images of about 4K and 8K pixels a side."""
_SPLIT_IN_NAME = re.compile(r"(?<![a-z0-9])([48]k)(?![a-z0-9])")


def hrbench_split(file: str, split: str | None = None) -> str | None:
    """The HR-Bench version of `file`: `split` ("4k" / "8k", any case) or, without it, the one
    its file name names; None when neither says.

    Raises:
        DatasetFormatError: an unknown `split`, or one the file name contradicts.

    >>> hrbench_split("data/hr_bench_8k.tsv"), hrbench_split("hr.tsv", "4K")
    ('8k', '4k')
    >>> hrbench_split("hr.tsv") is None
    True
    """
    named = set(_SPLIT_IN_NAME.findall(os.path.basename(file).casefold()))
    from_name = named.pop() if len(named) == 1 else None
    if split is None:
        return from_name
    wanted = str(split).strip().casefold()
    if wanted not in HRBENCH_SPLITS:
        raise format_error(
            f"hrbench {file}", f"split={split!r} is not one of {HRBENCH_SPLITS}", "pass 4k or 8k."
        )
    if from_name is not None and from_name != wanted:
        raise format_error(
            file,
            f"the file name says HR-Bench {from_name.upper()} but split={split!r}",
            "drop the split (the name decides) or rename the file.",
        )
    return wanted


@dataclass
class _Row:
    id: str
    where: str
    question: str
    options: tuple[str, ...]
    answer: str
    category: str
    rotation: str | None
    image: ResolvedImage | None
    image_ref: str | None


def load_hrbench(
    path: str | os.PathLike | None = None,
    *,
    data_dir: str | os.PathLike | None = None,
    limit: int | None = None,
    split: str | None = None,
) -> list[Sample]:
    """HR-Bench rows as `Sample`s (one per row, i.e. per rotation), in file order.

    Args:
        path: the TSV file (e.g. `hr_bench_8k.tsv`).
        data_dir: alternatively, the file or a folder holding exactly one `.tsv`.
        limit: keep the first `limit` rows.
        split: "4k" or "8k" when the file name does not say (`hrbench_split`).

    Returns:
        Samples with `id` = `index`, `image` an `EncodedImageRef` (nothing decoded), no
        `gt_boxes`, `image_size` None, and `metadata`: `cycle_id` (rows with equal ids are
        rotations of one question), `rotation` (`cycle_category`), `index`, `image_key`,
        `split` ("4k", "8k" or None).

    Raises:
        DatasetFormatError: a missing column, corrupt base64, a bad answer letter, a dangling
            image reference, a duplicate index (message: file, row and line), or a `split` the
            file name contradicts.
    """
    check_limit(limit)
    file, _ = resolve_file("hrbench", path, data_dir, (".tsv",))
    version = hrbench_split(file, split)
    images, ids = ImageFields(os.path.dirname(file)), IdRegistry()
    rows: list[_Row] = []
    by_index: dict[str, ResolvedImage] = {}
    wanted: set[str] | None = None  # refs still unresolved once `limit` rows are read
    image_column: int | None = None
    for record in iter_tsv(file, HRBENCH_REQUIRED):
        if image_column is None:
            image_column = list(record.values).index("image")
        index = _norm_index(record.values["index"])
        if limit is not None and len(rows) >= limit:
            if wanted is None:
                wanted = {r.image_ref for r in rows if r.image_ref is not None} - by_index.keys()
            if not wanted:
                break
            if index not in wanted:
                continue
            wanted.discard(index)
        where = at_row(file, record.row, record.line)
        image, ref = _row_image(record, file, where, image_column, images)
        if image is not None:
            by_index.setdefault(index, image)
        if limit is None or len(rows) < limit:
            rows.append(_parse_row(record, index, where, image, ref, ids))
    return _build_samples(rows, by_index, version)


def _norm_index(text: str) -> str:
    text = text.strip()
    return str(int(text)) if text.isascii() and text.isdigit() else text


def _row_image(
    record: TsvRecord, file: str, where: str, column: int, images: ImageFields
) -> tuple[ResolvedImage | None, str | None]:
    text = record.values["image"]
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit() and len(stripped) <= _MAX_REF_CHARS:
        return None, _norm_index(stripped)
    ref = EncodedImageRef(file, record.offset, record.length, "tsv", column, where)
    return images.base64_in_record(text, where, ref), None


def tsv_options(record: TsvRecord, where: str) -> tuple[str, ...]:
    """Option texts from the letter columns A, B, ...: non-empty, consecutive from A."""
    texts = []
    for letter in LETTERS:
        value = record.values.get(letter)
        if value is None or not value.strip():
            break
        texts.append(value.strip())
    later = [c for c in LETTERS[len(texts) + 1 :] if (record.values.get(c) or "").strip()]
    if later:
        raise format_error(where, f"option {LETTERS[len(texts)]} is empty but {later[0]} is not")
    if len(texts) < 2:
        raise format_error(where, f"needs at least options A and B, got {len(texts)}")
    return tuple(texts)


def _parse_row(
    record: TsvRecord,
    index: str,
    where: str,
    image: ResolvedImage | None,
    ref: str | None,
    ids: IdRegistry,
) -> _Row:
    if not index:
        raise format_error(where, "empty index", "every row needs a unique index.")
    ids.add(index, where)
    question = record.values["question"].strip()
    if not question:
        raise format_error(where, "empty question")
    options = tsv_options(record, where)
    rotation = (record.values.get("cycle_category") or "").strip() or None
    return _Row(
        id=index,
        where=where,
        question=question,
        options=options,
        answer=answer_letter(record.values["answer"], options, where),
        category=(record.values.get("category") or "").strip(),
        rotation=rotation,
        image=image,
        image_ref=ref,
    )


def _build_samples(
    rows: list[_Row], by_index: dict[str, ResolvedImage], split: str | None
) -> list[Sample]:
    cycle_ids: dict[tuple, str] = {}
    samples = []
    for row in rows:
        image = row.image
        if image is None:
            image = by_index.get(row.image_ref or "")
            if image is None:
                raise format_error(
                    row.where,
                    f"the image field refers to the row with index {row.image_ref}, which is "
                    "missing or itself a reference",
                    "store the base64 image in that row, or in this one.",
                )
        correct = row.options[LETTERS.index(row.answer)]
        key = (row.question, image.key, tuple(sorted(row.options)), correct)
        cycle_id = cycle_ids.setdefault(key, row.id)
        samples.append(
            Sample(
                id=row.id,
                image=image.source,
                question=row.question,
                answer=row.answer,
                options=row.options,
                category=row.category,
                metadata={
                    "index": row.id,
                    "cycle_id": cycle_id,
                    "rotation": row.rotation,
                    "image_key": image.key,
                    "split": split,
                },
            )
        )
    return samples


def cycle_accuracy(
    results: Iterable[tuple[Sample, bool | float]], mode: Literal["mean", "all"] = "mean"
) -> float:
    """Accuracy over questions whose rotations share `metadata["cycle_id"]`.

    Each question scores the mean of its rotations (`mode="mean"`, what HR-Bench reports: the
    mean of per-rotation accuracies equals this when every question has every rotation), or 1
    only when all its rotations are correct (`mode="all"`, MMBench-style CircularEval).
    Questions are then averaged with equal weight. Samples without `cycle_id` are their own
    question.

    Args:
        results: `(sample, correct)` pairs; `correct` a bool or a score in [0, 1].
        mode: "mean" or "all".

    Raises:
        ValueError: no results, or an unknown mode.

    >>> make = lambda i, q: Sample(str(i), b"", "q", "A", metadata={"cycle_id": q})
    >>> pairs = [(make(i, "q1"), i != 0) for i in range(4)] + [(make(9, "q2"), True)]
    >>> cycle_accuracy(pairs)
    0.875
    >>> cycle_accuracy(pairs, mode="all")
    0.5
    """
    if mode not in ("mean", "all"):
        raise ValueError(f"mode={mode!r} is not one of ('mean', 'all')")
    groups: dict[str, list[float]] = defaultdict(list)
    for sample, correct in results:
        groups[str(sample.metadata.get("cycle_id", sample.id))].append(float(correct))
    if not groups:
        raise ValueError("cycle_accuracy needs at least one result")
    if mode == "all":
        scores = [float(all(s >= 1.0 for s in group)) for group in groups.values()]
    else:
        scores = [sum(group) / len(group) for group in groups.values()]
    return sum(scores) / len(scores)
