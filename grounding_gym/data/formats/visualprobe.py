"""VisualProbe (Mini-o3, 2025): free-form visual search questions at three levels.

Published as the Hugging Face datasets `Mini-o3/VisualProbe_Easy`, `_Medium` and `_Hard`
(141 / 268 / 106 rows); each repository holds `val.json` (a JSON list of rows) and the images
`data/visual_probe_<level>_<N>.jpg`, no parquet. Mini-o3's own training and evaluation code
(github.com/Mini-o3/Mini-o3 @ 8654dbf, `verl/utils/dataset/multimodal_dataset.py`) reads them from
one folder (its `BASE_IMAGE_DIR`):

```
data_dir/                       the folder holding the level folders
  VisualProbe_Easy/   val.json  data/visual_probe_easy_0.jpg ...
  VisualProbe_Medium/ val.json  data/...
  VisualProbe_Hard/   val.json  data/...
```
`data_dir` may also be one downloaded repository (a folder holding `val.json` and `data/`, such
as a Hugging Face snapshot): its level is the folder's name when that is `VisualProbe_<Level>`,
else each row's `data_source`. A row has exactly the fields Mini-o3's code reads:

| field | value |
|-------|-------|
| `images` | one path, relative to `data_dir`: `["VisualProbe_Easy/data/visual_probe_easy_0.jpg"]` |
| `problem` | `"<image>\\n"` then the question (the `<image>` placeholder is dropped) |
| `solution` | the free-form answer, kept exactly as published ("YE OLDE.", "6C71", "eight") |
| `doc_id` | the row's id (int or string); the sample id is `"<level>/<doc_id>"` |
| `data_source` | `visual_probe_easy`, `_medium` or `_hard` (optional; checked against the level) |

Answers are free-form (no options, no boxes): Mini-o3 scores them with a judge model; the env's
free-form match (`rewards.answer_reward`) drops case and punctuation and reads numbers and lone
number words by value; anything else needs `answer_judge`. Other field names are refused with the
row, the published names and the fix. Runs report accuracy (overall, and per level as the
category), not grounding. `metadata["split"]` is the level, so `compare --published` ranks a
one-level run beside Mini-o3's numbers for that level.
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
VISUALPROBE_SOURCES = {f"visual_probe_{level}": level for level in VISUALPROBE_LEVELS}
"""A row's `data_source` -> its level."""
VISUALPROBE_FIELDS = ("images", "problem", "solution", "doc_id")
"""The fields every published row has (`data_source` is read when present)."""
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
        data_dir: the folder holding `VisualProbe_Easy/`, `_Medium/`, `_Hard/`, or one
            downloaded level (a folder holding `val.json`).
        levels: levels to read from a root folder ("easy", "medium", "hard"); each must exist.
        read_sizes: read each image's header (no pixel decode) for `Sample.image_size`.
        limit: keep the first `limit` samples.

    Returns:
        Samples with `id` "<level>/<doc_id>", `answer` the published `solution` (no options),
        `category` and `metadata["split"]` the level, `metadata["doc_id"]`.

    Raises:
        DatasetFormatError: a missing folder, file, image or field, a level that the folder
            and `data_source` disagree on, or an image path outside the level folder.
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
        images = ImageFields(folder)
        file = os.path.join(folder, "val.json")
        if not os.path.isfile(file):
            raise DatasetFormatError(
                f"visualprobe: {file!r} is missing; each level folder holds the published val.json"
            )
        for row, (line, record) in enumerate(iter_json_array(file)):
            if limit is not None and len(samples) >= limit:
                break
            where = f"{at_line(file, line)}, row {row}"
            sample = _sample(record, level, folder, images, where, read_sizes)
            if not ids.is_repeat(sample.id, record, where):
                ids.add(sample.id, where, record)
                samples.append(sample)
    ids.warn()
    return samples


def _level_folders(root: str, levels: Sequence[str]) -> list[tuple[str | None, str]]:
    """`(level, folder)` to read: `root` itself when it holds `val.json` (level from its name,
    else None: each row's `data_source`), else each requested level's folder under `root`."""
    if os.path.isfile(os.path.join(root, "val.json")):
        named = [lv for lv, name in VISUALPROBE_FOLDERS.items() if os.path.basename(root) == name]
        return [(named[0] if named else None, root)]
    out: list[tuple[str | None, str]] = []
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
                f"{list(VISUALPROBE_FOLDERS.values())} as downloaded (pass levels= for a subset), "
                "or be one downloaded level (a folder holding val.json)"
            )
        out.append((level, folder))
    return out


def _row_level(record: dict[str, Any], level: str | None, where: str) -> str:
    """The row's level: the folder's, checked against `data_source`; else `data_source`'s."""
    source = record.get("data_source")
    if source is None and level is not None:
        return level
    if source not in VISUALPROBE_SOURCES:
        if source is None:
            raise format_error(
                where,
                "no level: the folder is not named like a level folder "
                f"({list(VISUALPROBE_FOLDERS.values())}) and the row has no 'data_source'",
                "name the folder after its level, as published (VisualProbe_Hard/val.json).",
            )
        raise format_error(
            where,
            f"'data_source' is {source!r}; published rows have one of "
            f"{list(VISUALPROBE_SOURCES)}.{suggest(str(source), list(VISUALPROBE_SOURCES))}",
        )
    if level is not None and VISUALPROBE_SOURCES[source] != level:
        raise format_error(
            where,
            f"'data_source' {source!r} is not the folder's level {level!r}",
            "keep each level's val.json in its own folder (VisualProbe_<Level>/val.json).",
        )
    return VISUALPROBE_SOURCES[source]


def _text(record: dict[str, Any], key: str, where: str) -> str:
    value = record[key]
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str) or not value.strip():
        raise format_error(where, f"{key!r} must be a non-empty string, got {value!r}")
    return value


def _sample(
    record: Any,
    level: str | None,
    folder: str,
    images: ImageFields,
    where: str,
    read_sizes: bool,
) -> Sample:
    if not isinstance(record, dict):
        raise format_error(where, f"expected a JSON object, got {type(record).__name__}")
    missing = [key for key in VISUALPROBE_FIELDS if record.get(key) is None]
    if missing:
        raise format_error(
            where,
            f"missing field(s) {missing}; the row has {sorted(map(str, record))}",
            f"published VisualProbe rows (Mini-o3's val.json) have {list(VISUALPROBE_FIELDS)}; "
            "rename a converted file's fields to these.",
        )
    level = _row_level(record, level, where)
    paths = record["images"]
    if not isinstance(paths, list) or len(paths) != 1 or not isinstance(paths[0], str):
        raise format_error(
            where,
            f"'images' must be a list with one image path, got {paths!r}",
            "VisualProbe rows hold exactly one image each.",
        )
    path = paths[0]
    if os.path.isabs(path) or ".." in re.split(r"[\\/]", path):
        raise format_error(
            where,
            f"image path {path!r} must be relative and stay inside the dataset folder",
            "keep the published relative paths (VisualProbe_<Level>/data/visual_probe_...jpg).",
        )
    image = images.path(path.removeprefix(VISUALPROBE_FOLDERS[level] + "/"), where)
    question = _IMAGE_TOKEN.sub("", _text(record, "problem", where)).strip()
    doc_id = record["doc_id"]
    if not isinstance(doc_id, (int, str)) or isinstance(doc_id, bool):
        raise format_error(where, f"'doc_id' must be an int or a string, got {doc_id!r}")
    return Sample(
        id=f"{level}/{doc_id}",
        image=image.source,
        question=question,
        answer=_text(record, "solution", where).strip(),
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
