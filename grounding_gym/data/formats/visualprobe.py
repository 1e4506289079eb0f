"""VisualProbe (Mini-o3, 2025): free-form visual search questions at three levels.

Published as the Hugging Face datasets `Mini-o3/VisualProbe_Easy`, `_Medium` and `_Hard`; each
holds `val.json` (a JSON list of rows) and the images `data/visual_probe_<level>_<N>.jpg`:

```
data_dir/                       the folder holding the level folders (Mini-o3's BASE_IMAGE_DIR)
  VisualProbe_Easy/   val.json  data/visual_probe_easy_0.jpg ...
  VisualProbe_Medium/ val.json  data/...
  VisualProbe_Hard/   val.json  data/...
```
`data_dir` may also be one level folder (holding `val.json`). A row, as the public converters
read it (Mini-o3's `data.image_key=images`, `data.answer_key=solution`): `images` (a list with
one path, relative to the level folder or to `data_dir`), the question under `problem`,
`question` or `prompt` (`<image>` placeholders are dropped), the answer under `solution`,
`answer` or `ground_truth`, kept exactly as published ("YE OLDE.", "6C71", "eight": the env's
free-form match drops case and punctuation; number words need the answer judge), and `doc_id`
(else the row's position). No row was available to check against here: every documented
variant is accepted and anything else is refused with the row and the fix.

No boxes are published: runs report accuracy (overall, and per level as the category), not
grounding. `metadata["split"]` is the level, so `compare --published` ranks a one-level run
beside Mini-o3's numbers for that level.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from typing import Any

from grounding_gym.data.formats.images import ImageFields
from grounding_gym.data.formats.records import (
    DatasetFormatError,
    IdRegistry,
    at_line,
    check_limit,
    format_error,
    iter_json_array,
    suggest,
)
from grounding_gym.data.sample import Sample

VISUALPROBE_LEVELS: tuple[str, ...] = ("easy", "medium", "hard")
VISUALPROBE_FOLDERS = {level: f"VisualProbe_{level.capitalize()}" for level in VISUALPROBE_LEVELS}
"""Level -> the folder name of its published dataset."""
QUESTION_KEYS = ("problem", "question", "prompt")
ANSWER_KEYS = ("solution", "answer", "ground_truth")
_IMAGE_TOKEN = re.compile(r"<image>\s*")


def load_visualprobe(
    data_dir: str | os.PathLike,
    *,
    levels: Sequence[str] = VISUALPROBE_LEVELS,
    read_sizes: bool = True,
    limit: int | None = None,
) -> list[Sample]:
    """VisualProbe rows as free-form `Sample`s, level by level in file order.

    Args:
        data_dir: the folder holding `VisualProbe_Easy/`, `_Medium/`, `_Hard/`, or one of them.
        levels: levels to read from a root folder ("easy", "medium", "hard"); each must exist.
        read_sizes: read each image's header (no pixel decode) for `Sample.image_size`.
        limit: keep the first `limit` samples.

    Returns:
        Samples with `id` "<level>/<doc_id>", `answer` the published answer text (no options),
        `category` and `metadata["split"]` the level, `metadata["doc_id"]`.

    Raises:
        DatasetFormatError: a missing folder, file, image or field, or an image path outside
            the dataset folder.
    """
    check_limit(limit)
    root = os.path.abspath(os.fspath(data_dir))
    if not os.path.isdir(root):
        raise DatasetFormatError(f"visualprobe: data_dir {root!r} is not a folder")
    if isinstance(levels, str):
        levels = (levels,)
    samples: list[Sample] = []
    ids = IdRegistry("visualprobe")
    for level, folder in _level_folders(root, levels):
        images = ImageFields(os.path.dirname(folder))
        file = os.path.join(folder, "val.json")
        if not os.path.isfile(file):
            raise DatasetFormatError(
                f"visualprobe: {file!r} is missing; each level folder holds the published val.json"
            )
        for row, (line, record) in enumerate(iter_json_array(file)):
            if limit is not None and len(samples) >= limit:
                break
            where = f"{at_line(file, line)}, row {row}"
            sample = _sample(record, row, level, folder, images, where, read_sizes)
            if not ids.is_repeat(sample.id, record, where):
                ids.add(sample.id, where, record)
                samples.append(sample)
    ids.warn()
    return samples


def _level_folders(root: str, levels: Sequence[str]) -> list[tuple[str, str]]:
    """`(level, folder)` to read: `root` itself when it is a level folder, else each level's."""
    for level, name in VISUALPROBE_FOLDERS.items():
        if os.path.basename(root).lower() == name.lower():
            return [(level, root)]
    if os.path.isfile(os.path.join(root, "val.json")):
        raise DatasetFormatError(
            f"visualprobe: {root!r} holds a val.json but is not named like a level folder "
            f"({list(VISUALPROBE_FOLDERS.values())}); keep the published folder names, which "
            "name the level"
        )
    out = []
    for level in levels:
        if level not in VISUALPROBE_FOLDERS:
            raise ValueError(
                f"visualprobe: unknown level {level!r}; levels are {list(VISUALPROBE_LEVELS)}."
                + suggest(str(level), VISUALPROBE_LEVELS)
            )
        folder = os.path.join(root, VISUALPROBE_FOLDERS[level])
        if not os.path.isdir(folder):
            raise DatasetFormatError(
                f"visualprobe: {folder!r} is missing; data_dir must hold "
                f"{list(VISUALPROBE_FOLDERS.values())} as downloaded (pass levels= for a subset)"
            )
        out.append((level, folder))
    return out


def _first_of(record: dict[str, Any], keys: Sequence[str], what: str, where: str) -> str:
    for key in keys:
        value = record.get(key)
        if value is not None:
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return str(value)
            if not isinstance(value, str) or not value.strip():
                raise format_error(where, f"{key!r} must be a non-empty string, got {value!r}")
            return value
    hints = "".join(suggest(k, [str(x) for x in record]) for k in keys[:1])
    raise format_error(
        where,
        f"no {what}: expected one of {list(keys)}; the row has {sorted(map(str, record))}.{hints}",
    )


def _sample(
    record: Any,
    row: int,
    level: str,
    folder: str,
    images: ImageFields,
    where: str,
    read_sizes: bool,
) -> Sample:
    if not isinstance(record, dict):
        raise format_error(where, f"expected a JSON object, got {type(record).__name__}")
    paths = record.get("images", record.get("image"))
    if isinstance(paths, str):
        paths = [paths]
    if not isinstance(paths, list) or len(paths) != 1:
        raise format_error(
            where,
            f"'images' must be a list with one image path, got {paths!r}",
            "VisualProbe rows hold exactly one image each.",
        )
    path = paths[0]
    if not isinstance(path, str) or os.path.isabs(path) or ".." in re.split(r"[\\/]", path):
        raise format_error(
            where,
            f"image path {path!r} must be relative and stay inside the dataset folder",
            "keep the published relative paths (data/visual_probe_<level>_<N>.jpg).",
        )
    image = images.path(path, where, candidates=(os.path.basename(folder),))
    question = _IMAGE_TOKEN.sub("", _first_of(record, QUESTION_KEYS, "question", where)).strip()
    answer = _first_of(record, ANSWER_KEYS, "answer", where).strip()
    doc_id = record.get("doc_id", row)
    return Sample(
        id=f"{level}/{doc_id}",
        image=image.source,
        question=question,
        answer=answer,
        options=None,
        gt_boxes=(),
        category=level,
        image_size=images.size(image, where) if read_sizes else None,
        metadata={
            "split": level,
            "doc_id": doc_id,
            "source_file": os.path.join(folder, "val.json"),
        },
    )
