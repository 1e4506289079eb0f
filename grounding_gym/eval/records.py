"""Episode records: built from env infos, stored one JSON line per episode, read back on resume.

The results file (`episodes.jsonl`) is append-only. Each finished episode is written as one line,
flushed and fsynced before the next episode is started, so a killed evaluation loses at most the
episodes that were still running. On resume `read_records` keeps every complete line, drops a torn
last line (a crash mid-write leaves a line without its newline) and truncates it away, so the file
again ends at a line boundary before anything is appended.

Record keys (one episode; boxes in original px, areas relative to the image):

| key | meaning |
|-----|---------|
| `episode` | index in the evaluation's deterministic plan |
| `sample_index`, `sample_id`, `category`, `cycle_id` | the sample (`cycle_id`: HR-Bench rotations, else None) |
| `split` | the dataset version the sample belongs to (HR-Bench "4k" / "8k", MME-RealWorld "full" / "lite"), else None |
| `seed` | the `reset` seed |
| `image_size`, `gt_boxes`, `target_rel_area`, `target_scale_bin` | the target (`target_scale_bin` and `crop_scale_bins` use the env's `scale_bin_edges`; the summary bins `target_rel_area` by its own `bin_edges`) |
| `first_view_sha1` | 16 hex digits of the SHA-1 of the first view's pixels (detects a changed generator or decoder) |
| `num_options` | options of a multiple-choice question (0 = free form) |
| `turns`, `actions`, `action_kinds`, `action_errors` | what the agent did, per step |
| `crop_boxes`, `crop_iou`, `crop_coverage`, `crop_rel_area`, `crop_scale_bins`, `crop_adjusted` | accepted crops, in order |
| `num_crops`, `iou`, `coverage`, `first_crop_rel_area` | best (max) crop IoU / coverage; None without crops or boxes |
| `invalid_actions` | steps whose action was invalid or whose crop was refused |
| `answered`, `answer`, `gt_answer`, `correct` | `correct` is False when the episode ran out of turns |
| `terminated`, `truncated` | how the episode ended |
| `return`, `reward_terms`, `final_reward_terms` | summed reward, summed terms, terms of the last step |
| `elapsed_s` | wall time of the episode |
| `agent_log` | only for agents with `episode_log` (`openai`: every request and response) |
| `error`, `error_stage` | only for a failed episode (`on_error="record"`): "ExcType: message", "reset" / "step" / "agent" |
"""  # noqa: E501 (table rows)

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EPISODES_FILE",
    "EpisodeRecorder",
    "append_record",
    "jsonable",
    "read_records",
    "view_sha1",
]

EPISODES_FILE = "episodes.jsonl"
"""The episode records of a run folder, one JSON line per episode."""


def jsonable(value: Any) -> Any:
    """`value` with numpy scalars/arrays, tuples and non-finite floats made JSON-safe
    (NaN and inf become None)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, (np.floating, float)):
        value = float(value)
        return value if math.isfinite(value) else None
    return value


class EpisodeRecorder:
    """Accumulates one episode's steps into a record.

    Args:
        episode: the plan index.
        sample_index: index of the sample in `env.dataset`.
        seed: the reset seed.
        reset_info: the info `reset` returned.
        sample: the env's `Sample` (for the correct answer, options and `cycle_id`), or None.
        first_view: the first observation's image, uint8 (h, w, 3), for `first_view_sha1`.
    """

    def __init__(
        self,
        episode: int,
        sample_index: int,
        seed: int,
        reset_info: Mapping[str, Any],
        sample: Any = None,
        first_view: np.ndarray | None = None,
    ):
        metadata = getattr(sample, "metadata", None) or {}
        options = getattr(sample, "options", None)
        self.record: dict[str, Any] = {
            "episode": episode,
            "sample_index": sample_index,
            "sample_id": reset_info.get("sample_id"),
            "category": reset_info.get("category", ""),
            "cycle_id": metadata.get("cycle_id"),
            "split": metadata.get("split"),
            "seed": seed,
            "image_size": reset_info.get("image_size"),
            "gt_boxes": reset_info.get("gt_boxes", []),
            "target_rel_area": reset_info.get("target_rel_area"),
            "target_scale_bin": reset_info.get("target_scale_bin"),
            "first_view_sha1": view_sha1(first_view) if first_view is not None else None,
            "num_options": len(options) if options else 0,
            "turns": 0,
            "actions": [],
            "action_kinds": [],
            "action_errors": [],
            "crop_boxes": [],
            "crop_iou": [],
            "crop_coverage": [],
            "crop_rel_area": [],
            "crop_scale_bins": [],
            "crop_adjusted": [],
            "invalid_actions": 0,
            "answered": False,
            "answer": None,
            "gt_answer": getattr(sample, "answer", None),
            "correct": False,
            "terminated": False,
            "truncated": False,
            "return": 0.0,
            "reward_terms": {},
            "final_reward_terms": {},
        }

    def step(
        self, action: str, reward: float, terminated: bool, truncated: bool, info: Mapping[str, Any]
    ) -> None:
        """Add one env step (the action sent and what `step` returned)."""
        rec = self.record
        kind = info.get("action_kind")
        rec["turns"] += 1
        rec["actions"].append(action)
        rec["action_kinds"].append(kind)
        rec["action_errors"].append(info.get("action_error"))
        if info.get("crop_box") is not None:
            rec["crop_boxes"].append(list(info["crop_box"]))
            rec["crop_iou"].append(info.get("crop_iou"))
            rec["crop_coverage"].append(info.get("crop_coverage"))
            rec["crop_rel_area"].append(info.get("crop_rel_area"))
            rec["crop_scale_bins"].append(info.get("crop_scale_bin"))
            rec["crop_adjusted"].append(bool(info.get("crop_adjusted", False)))
        elif kind != "answer":
            rec["invalid_actions"] += 1  # invalid text, or a crop the env refused
        terms = dict(info.get("reward_terms") or {})
        for key, value in terms.items():
            rec["reward_terms"][key] = rec["reward_terms"].get(key, 0.0) + float(value)
        rec["final_reward_terms"] = terms
        rec["return"] += float(reward)
        if kind == "answer":
            rec["answered"] = True
            rec["answer"] = info.get("answer")
            rec["correct"] = bool(info.get("correct", False))
            if info.get("judge") is not None:  # the answer judge's verdict (free-form answers)
                rec["judge"] = info["judge"]
        rec["terminated"], rec["truncated"] = bool(terminated), bool(truncated)

    def stop(self) -> None:
        """End the episode without another step (the agent gave up): unanswered, `truncated`."""
        self.record["terminated"], self.record["truncated"] = False, True

    def finish(self, elapsed_s: float) -> dict[str, Any]:
        """The finished, JSON-safe record."""
        rec = self.record
        ious = [v for v in rec["crop_iou"] if v is not None]
        covs = [v for v in rec["crop_coverage"] if v is not None]
        rec["num_crops"] = len(rec["crop_boxes"])
        rec["iou"] = max(ious) if ious else None
        rec["coverage"] = max(covs) if covs else None
        rec["first_crop_rel_area"] = rec["crop_rel_area"][0] if rec["crop_rel_area"] else None
        rec["elapsed_s"] = round(float(elapsed_s), 4)
        return jsonable(rec)


def view_sha1(image: np.ndarray) -> str:
    """16 hex digits of the SHA-1 of an image's shape and bytes."""
    array = np.ascontiguousarray(image)
    digest = hashlib.sha1(str(array.shape).encode("ascii"))
    digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def append_record(path: str | os.PathLike, record: Mapping[str, Any]) -> None:
    """Append `record` as one JSON line, then flush and fsync (durable before returning)."""
    line = json.dumps(jsonable(record), ensure_ascii=False, separators=(",", ":"))
    with open(path, "a", encoding="utf-8") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def read_records(path: str | os.PathLike, repair: bool = True) -> list[dict[str, Any]]:
    """Every complete record of a results file, in file order; [] when it does not exist.

    A last line without its newline, or one that is not valid JSON, is a torn write from a
    killed run: it is dropped and, with `repair=True`, cut off the file. Duplicate `episode`
    indices (never written by `evaluate`, possible in hand-merged files) keep the first.

    Raises:
        ValueError: a line other than the last is not a JSON object (the file was edited or
            corrupted: the message names the line).
    """
    path = Path(path)
    if not path.exists():
        return []
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    records: list[dict[str, Any]] = []
    good_bytes = 0
    torn = bool(tail)
    for number, raw in enumerate(lines, start=1):
        try:
            record = json.loads(raw.decode("utf-8")) if raw.strip() else None
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            if number == len(lines) and not tail:  # last full line garbled: a torn write too
                torn = True
                break
            reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
            raise ValueError(
                f"{path}: line {number} is not valid JSON ({reason}); fix or remove it"
            ) from exc
        episode = record.get("episode") if isinstance(record, dict) else None
        if episode is not None and (isinstance(episode, bool) or not isinstance(episode, int)):
            raise ValueError(
                f"{path}: line {number}: 'episode' must be an integer index, got "
                f"{str(episode)[:40]!r}; fix or remove the line"
            )
        if record is not None and not isinstance(record, dict):
            raise ValueError(f"{path}: line {number} is not a JSON object")
        if record is not None:
            records.append(record)
        good_bytes += len(raw) + 1
    if torn and repair:
        with open(path, "r+b") as handle:
            handle.truncate(good_bytes)
            handle.flush()
            os.fsync(handle.fileno())
    return dedupe(records)


def dedupe(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Records with a unique `episode`, first occurrence kept, in their order."""
    seen: set[Any] = set()
    out = []
    for record in records:
        key = record.get("episode")
        if key in seen:
            continue
        seen.add(key)
        out.append(record)
    return out
