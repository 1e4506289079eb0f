"""Loaders for real benchmark formats, registered by name at import.

`make_dataset(name, data_dir=..., **kwargs)` after `import grounding_gym.data.loaders`:

| name | format | boxes (-> original px xyxy) | module |
|------|--------|-----------------------------|--------|
| `vstar` | V* Bench folders (`direct_attributes/`, `relative_position/`, JSON per image) | `bbox` [x, y, w, h] | `formats.vstar` |
| `hrbench` | HR-Bench 4K/8K TSV, base64 images, rotated options | none | `formats.hrbench` |
| `mme-realworld` | official JSON/JSONL (`Answer choices`) or VLMEvalKit TSV, options A-E | none | `formats.mme_realworld` |
| `mme-realworld-lite` | the same formats, the Lite subset (a separate benchmark: refused as `mme-realworld`) | none | `formats.mme_realworld` |
| `treebench` | JSONL with `target_instances` | [x1, y1, x2, y2] | `formats.treebench` |
| `visualprobe` | Mini-o3's `VisualProbe_{Easy,Medium,Hard}/val.json` (free-form answers) | none | `formats.visualprobe` |
| `refcoco` | JSON/JSONL records, one sample per expression | `bbox` [x, y, w, h] | `formats.refcoco` |
| `jsonl` | the generic grounding-gym JSONL (documented in `formats.jsonl`) | declared `box_format` | `formats.jsonl` |

Every loader takes `limit=None`, and `data_dir` (a folder; single-file formats also take `path`),
returns a `list[Sample]`, converts each box exactly once (`formats.boxes.parse_box`), and
never decodes an image: files are checked with `os.path.isfile`, base64 fields are validated and
left in their file (`EncodedImageRef`, read on demand). Any problem with a file raises one
`DatasetFormatError` naming the file, the row/line and the fix.

Files are read as published, not only in a clean schema (`formats.records`, `formats.choices`):
options may be a
list, a letter->text dict, or one string labelled `"A. x\nB. y"`, `"(A) x (B) y"`, `"A x\nB y"` or
`"A. x B. y C. z"` (mixed; 2-6 options, A-F); boxes may be lists or JSON strings; a record that
repeats an earlier one exactly (same id, same content) is kept once, with one warning counting
the repeats (a repeated id with other content is an error); labels printed in the choice texts
("(D) five") are authoritative for the ground-truth letter when they disagree with positions.

Metrics that belong to a format live beside it: `cycle_accuracy` (HR-Bench rotations) and
`box_miou` (TreeBench localisation).
"""  # noqa: E501 (table rows)

from __future__ import annotations

from grounding_gym.data.formats.boxes import BOX_FORMATS, parse_box
from grounding_gym.data.formats.hrbench import cycle_accuracy, load_hrbench
from grounding_gym.data.formats.images import EncodedImageRef
from grounding_gym.data.formats.jsonl import load_jsonl
from grounding_gym.data.formats.mme_realworld import load_mme_realworld, load_mme_realworld_lite
from grounding_gym.data.formats.records import DatasetFormatError
from grounding_gym.data.formats.refcoco import load_refcoco
from grounding_gym.data.formats.treebench import box_miou, load_treebench
from grounding_gym.data.formats.visualprobe import VISUALPROBE_LEVELS, load_visualprobe
from grounding_gym.data.formats.vstar import VSTAR_CATEGORIES, load_vstar
from grounding_gym.data.registry import DatasetLoader, declare_bin_edges, register_dataset
from grounding_gym.scale import DEFAULT_BIN_EDGES, HR_BIN_EDGES

LOADERS: dict[str, DatasetLoader] = {
    "vstar": load_vstar,
    "hrbench": load_hrbench,
    "mme-realworld": load_mme_realworld,
    "mme-realworld-lite": load_mme_realworld_lite,
    "treebench": load_treebench,
    "refcoco": load_refcoco,
    "visualprobe": load_visualprobe,
    "jsonl": load_jsonl,
}
"""Dataset name -> loader, as registered."""


_BIN_EDGES = {
    "vstar": (HR_BIN_EDGES, "V* targets cover ~1e-5..1e-1 of the image: log-decade edges"),
    "hrbench": (HR_BIN_EDGES, "HR-Bench targets cover ~1e-5..1e-1 of the image: log-decade edges"),
    "mme-realworld": (
        HR_BIN_EDGES,
        "high-resolution targets (~1e-5..1e-1 of the image): log-decade edges",
    ),
    "mme-realworld-lite": (
        HR_BIN_EDGES,
        "high-resolution targets (~1e-5..1e-1 of the image): log-decade edges",
    ),
    "treebench": (
        HR_BIN_EDGES,
        "TreeBench targets cover ~1e-5..1e-1 of the image: log-decade edges",
    ),
    "refcoco": (DEFAULT_BIN_EDGES, "RefCOCO objects are large (often > 0.1 of the image)"),
    "visualprobe": (HR_BIN_EDGES, "high-resolution visual search (no boxes published)"),
}
"""Dataset name -> (default scale-bin edges, why); `jsonl` declares none (the env's default)."""

for _name, _loader in LOADERS.items():
    register_dataset(_name, _loader)
    if _name in _BIN_EDGES:
        declare_bin_edges(_name, *_BIN_EDGES[_name])

__all__ = [
    "BOX_FORMATS",
    "HR_BIN_EDGES",
    "LOADERS",
    "VISUALPROBE_LEVELS",
    "VSTAR_CATEGORIES",
    "DatasetFormatError",
    "EncodedImageRef",
    "box_miou",
    "cycle_accuracy",
    "load_hrbench",
    "load_jsonl",
    "load_mme_realworld",
    "load_mme_realworld_lite",
    "load_refcoco",
    "load_treebench",
    "load_visualprobe",
    "load_vstar",
    "parse_box",
]
