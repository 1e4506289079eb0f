"""V* Bench (Wu & Xie, 2023) in the benchmark's own folder layout.

```
data_dir/
  direct_attributes/   sa_4690.jpg  sa_4690.json  ...   (4 options: attribute of one object)
  relative_position/   sa_6183.jpg  sa_6183.json  ...   (2 options: left/right of two objects)
```
Each JSON: `{"target_object": ["dog", "motorcycle"], "bbox": [[x, y, w, h], ...],
"question": "...", "options": [<correct>, <wrong>, ...]}`. The folder name is the category.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from grounding_gym.data.formats.boxes import BoxFitter, parse_box
from grounding_gym.data.formats.choices import LETTERS, parse_options, shuffled_order
from grounding_gym.data.formats.images import ImageFields, ResolvedImage
from grounding_gym.data.formats.records import (
    DatasetFormatError,
    check_limit,
    format_error,
    json_field,
    load_json,
    require,
)
from grounding_gym.data.sample import Sample
from grounding_gym.geometry import Box

VSTAR_CATEGORIES: tuple[str, ...] = ("direct_attributes", "relative_position")
IMAGE_SUFFIXES: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".webp", ".JPG", ".JPEG", ".PNG")


def load_vstar(
    data_dir: str | os.PathLike,
    *,
    option_seed: int | None = 0,
    categories: Sequence[str] = VSTAR_CATEGORIES,
    read_sizes: bool = True,
    limit: int | None = None,
) -> list[Sample]:
    """V* Bench: one `Sample` per JSON file, in category then file-name order.

    Args:
        data_dir: the benchmark root, holding one folder per category.
        option_seed: options are shuffled by a permutation fixed by `(option_seed, sample id)`
            (the files list the correct option first); None keeps the file order (answer "A").
        categories: category folders to read; each must exist.
        read_sizes: read each image's header (no pixel decode) to fill `Sample.image_size` and
            clip boxes to the image (191 headers: milliseconds).
        limit: keep the first `limit` samples.

    Returns:
        Samples with `id` "<category>/<stem>", `answer` the correct letter, `gt_boxes` the boxes
        that exist (some relative-position files box only one of their two objects), and
        `metadata`: `target_object` (names), `option_order` (original index of each shown option;
        index 0 is the correct one), `missing_boxes` (objects without a box).

    Raises:
        DatasetFormatError: a missing folder, image or field, or a bad box.
    """
    check_limit(limit)
    if isinstance(categories, str):
        categories = (categories,)
    root = os.path.abspath(os.fspath(data_dir))
    if not os.path.isdir(root):
        raise DatasetFormatError(f"vstar: data_dir {root!r} is not a folder")
    images, fitter = ImageFields(root), BoxFitter("vstar")
    samples: list[Sample] = []
    for category in categories:
        folder = os.path.join(root, category)
        if not os.path.isdir(folder):
            raise DatasetFormatError(
                f"vstar: {folder!r} is missing; data_dir must be the V* root holding "
                f"{list(VSTAR_CATEGORIES)} (pass categories= to load a subset)"
            )
        for name in sorted(n for n in os.listdir(folder) if n.endswith(".json")):
            if limit is not None and len(samples) >= limit:
                break
            samples.append(
                _vstar_sample(
                    os.path.join(folder, name), category, option_seed, images, fitter, read_sizes
                )
            )
    fitter.warn()
    return samples


def _vstar_sample(
    file: str,
    category: str,
    option_seed: int | None,
    images: ImageFields,
    fitter: BoxFitter,
    read_sizes: bool,
) -> Sample:
    record = load_json(file)
    if not isinstance(record, dict):
        raise format_error(file, f"expected a JSON object, got {type(record).__name__}")
    require(record, ("question", "options"), file)
    stem = os.path.splitext(os.path.basename(file))[0]
    image = _find_image(file, stem, images)
    sample_id = f"{category}/{stem}"
    originals = parse_options(record["options"], file)
    order = (
        shuffled_order(len(originals), option_seed, sample_id)
        if option_seed is not None
        else list(range(len(originals)))
    )
    size = images.size(image, file) if read_sizes else None
    boxes = _vstar_boxes(record.get("bbox"), file, size, fitter)
    names = record.get("target_object") or []
    if isinstance(names, str):
        names = [names]
    return Sample(
        id=sample_id,
        image=image.source,
        question=str(record["question"]).strip(),
        answer=LETTERS[order.index(0)],
        options=tuple(originals[i] for i in order),
        gt_boxes=boxes,
        category=category,
        image_size=size,
        metadata={
            "target_object": [str(n) for n in names],
            "option_order": order,
            "missing_boxes": max(len(names) - len(boxes), 0),
            "source_file": file,
        },
    )


def _find_image(file: str, stem: str, images: ImageFields) -> ResolvedImage:
    folder = os.path.dirname(file)
    for suffix in IMAGE_SUFFIXES:
        candidate = os.path.join(folder, stem + suffix)
        if os.path.isfile(candidate):
            return images.path(candidate, file)
    raise format_error(
        file, f"no image {stem}.jpg (or .png/.webp) next to it", "keep each image beside its JSON."
    )


def _vstar_boxes(
    value: Any, file: str, size: tuple[int, int] | None, fitter: BoxFitter
) -> tuple[Box, ...]:
    """V* `bbox`: a list of [x, y, w, h] (one per target; null/[] for an unboxed one), or that
    list as a JSON string."""
    value = json_field(value, file, "bbox")
    if value is None:
        return ()
    if not isinstance(value, list):
        raise format_error(file, f"bbox must be a list of [x, y, w, h] boxes, got {value!r}")
    if len(value) == 4 and all(isinstance(v, (int, float)) for v in value):
        value = [value]  # a single flat box
    boxes = []
    for i, entry in enumerate(value):
        if entry is None or entry == []:
            continue
        where = f"{file}, bbox[{i}]"
        boxes.append(fitter.fit(parse_box(entry, "xywh", where), size, where))
    return tuple(boxes)
