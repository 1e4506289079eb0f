"""Summary metrics of a set of episode records: overall, per scale bin, per category.

Definitions (all over episodes; an episode that ran out of turns counts as wrong):

* `accuracy`: fraction correct; `accuracy_se`: its binomial standard error `sqrt(p (1 - p) / n)`.
* `mean_turns`, `mean_crops`, `crop_rate` (episodes with >= 1 accepted crop), `answer_rate`.
* `invalid_action_rate`: invalid or refused actions / all actions.
* Grounding, over episodes whose sample has ground-truth boxes (`n_with_boxes`):
  `miou` = mean of the episode's best crop IoU, an episode without a crop scoring 0 (the
  RefCOCO-style mIoU of a box predictor that may abstain); `acc_at_0.5` = fraction whose best crop
  has IoU >= 0.5; `crop_iou` / `crop_coverage` = mean best IoU / coverage over the episodes that
  did crop (how good the crops are, not how often); `full_coverage_rate` = fraction of cropped
  episodes whose best coverage is 1 (to 1e-9).
* `cycle_accuracy` (HR-Bench): questions whose rotations share `cycle_id` score the mean of their
  rotations, then questions are averaged; `cycle_accuracy_all` scores a question 1 only when every
  rotation is right (CircularEval). Reported only when some record has a `cycle_id`.
* `acc_vs_area`: accuracy in log-spaced bins of the target's relative area (two per decade).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from grounding_gym.scale import DEFAULT_BIN_EDGES, bin_names, scale_bin_name

__all__ = ["acc_vs_area", "cycle_accuracy", "group_metrics", "summarize"]

FULL_COVERAGE = 1.0 - 1e-9
NO_BOX_BIN = "no-box"


def _mean(values: Iterable[float]) -> float | None:
    values = list(values)
    return sum(values) / len(values) if values else None


def group_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Metrics of one group of records (see the module docstring); `n` = 0 gives Nones."""
    n = len(records)
    correct = [1.0 if r.get("correct") else 0.0 for r in records]
    accuracy = sum(correct) / n if n else None
    actions = sum(int(r.get("turns", 0)) for r in records)
    invalid = sum(int(r.get("invalid_actions", 0)) for r in records)
    with_boxes = [r for r in records if r.get("gt_boxes")]
    best_iou = [float(r["iou"]) if r.get("iou") is not None else 0.0 for r in with_boxes]
    cropped = [r for r in with_boxes if r.get("iou") is not None]
    out: dict[str, Any] = {
        "n": n,
        "accuracy": accuracy,
        "accuracy_se": math.sqrt(accuracy * (1 - accuracy) / n) if accuracy is not None else None,
        "answer_rate": _mean(1.0 if r.get("answered") else 0.0 for r in records),
        "mean_turns": _mean(float(r.get("turns", 0)) for r in records),
        "mean_crops": _mean(float(r.get("num_crops", 0)) for r in records),
        "crop_rate": _mean(1.0 if r.get("num_crops") else 0.0 for r in records),
        "invalid_action_rate": invalid / actions if actions else None,
        "mean_return": _mean(float(r.get("return", 0.0)) for r in records),
        "n_with_boxes": len(with_boxes),
        "miou": _mean(best_iou),
        "acc_at_0.5": _mean(1.0 if v >= 0.5 else 0.0 for v in best_iou),
        "crop_iou": _mean(float(r["iou"]) for r in cropped),
        "crop_coverage": _mean(
            float(r["coverage"]) for r in cropped if r.get("coverage") is not None
        ),
        "full_coverage_rate": _mean(
            1.0 if (r.get("coverage") or 0.0) >= FULL_COVERAGE else 0.0 for r in cropped
        ),
    }
    terms: dict[str, list[float]] = defaultdict(list)
    for r in records:
        for key, value in (r.get("reward_terms") or {}).items():
            terms[key].append(float(value))
    out["reward_terms"] = {k: _mean(v) for k, v in sorted(terms.items())}
    return out


def cycle_accuracy(records: Sequence[Mapping[str, Any]], mode: str = "mean") -> float | None:
    """HR-Bench cycle accuracy over records with a `cycle_id` (None when there are none).

    `mode="mean"`: each question scores the mean over its rotations; `"all"`: 1 only when every
    rotation is correct. Questions are averaged with equal weight.

    >>> recs = [{"cycle_id": "q1", "correct": c} for c in (True, True, False, True)]
    >>> recs += [{"cycle_id": "q2", "correct": True}]
    >>> cycle_accuracy(recs), cycle_accuracy(recs, mode="all")
    (0.875, 0.5)
    """
    if mode not in ("mean", "all"):
        raise ValueError(f"mode={mode!r} is not one of ('mean', 'all')")
    groups: dict[str, list[float]] = defaultdict(list)
    for r in records:
        if r.get("cycle_id") is not None:
            groups[str(r["cycle_id"])].append(1.0 if r.get("correct") else 0.0)
    if not groups:
        return None
    if mode == "all":
        scores = [float(all(v >= 1.0 for v in g)) for g in groups.values()]
    else:
        scores = [sum(g) / len(g) for g in groups.values()]
    return sum(scores) / len(scores)


def acc_vs_area(records: Sequence[Mapping[str, Any]], per_decade: int = 2) -> list[dict[str, Any]]:
    """Accuracy in log-spaced bins of `target_rel_area` (records without a target are skipped).

    Returns:
        One dict per non-empty bin, in increasing area: `lo`, `hi` (bin edges), `center`
        (geometric), `n`, `accuracy`, `accuracy_se`, `miou`.
    """
    areas = [(float(r["target_rel_area"]), r) for r in records if r.get("target_rel_area")]
    areas = [(a, r) for a, r in areas if a > 0]
    if not areas:
        return []
    lo_exp = math.floor(math.log10(min(a for a, _ in areas)) * per_decade) / per_decade
    hi_exp = math.ceil(math.log10(max(a for a, _ in areas)) * per_decade) / per_decade
    count = max(1, round((hi_exp - lo_exp) * per_decade))
    edges = [10 ** (lo_exp + k / per_decade) for k in range(count + 1)]
    out = []
    for k in range(count):
        lo, hi = edges[k], edges[k + 1]
        last = k == count - 1
        group = [r for a, r in areas if lo <= a < hi or (last and a == hi)]
        if not group:
            continue
        stats = group_metrics(group)
        out.append(
            {
                "lo": lo,
                "hi": hi,
                "center": math.sqrt(lo * hi),
                "n": stats["n"],
                "accuracy": stats["accuracy"],
                "accuracy_se": stats["accuracy_se"],
                "miou": stats["miou"],
            }
        )
    return out


def summarize(
    records: Sequence[Mapping[str, Any]],
    bin_edges: Sequence[float] = DEFAULT_BIN_EDGES,
    meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The summary of an evaluation.

    Args:
        records: episode records (`grounding_gym.eval.records`).
        bin_edges: scale-bin edges on the target's relative area (default: the env's
            `scale_bin_edges`, 0.1 / 0.3); records are binned by their `target_rel_area`, so any
            edges can be applied after the fact.
        meta: run metadata copied into the summary (agent, env, dataset, seed, ...).

    Returns:
        `{"meta", "overall", "per_bin", "per_category", "cycle", "acc_vs_area"}`; `per_bin` keys
        follow `bin_names(bin_edges)` (every bin listed, `n` = 0 when empty) plus "no-box" for
        samples without ground truth; `cycle` is None without HR-Bench-style `cycle_id`s.
    """
    records = sorted(records, key=lambda r: r.get("episode", 0))
    binned: dict[str | None, list[Mapping[str, Any]]] = defaultdict(list)
    for r in records:
        area = r.get("target_rel_area")
        binned[scale_bin_name(float(area), bin_edges) if area is not None else None].append(r)
    per_bin: dict[str, Any] = {name: group_metrics(binned[name]) for name in bin_names(bin_edges)}
    no_box = binned[None]
    if no_box:
        per_bin[NO_BOX_BIN] = group_metrics(no_box)
    categories = sorted({str(r.get("category") or "") for r in records})
    per_category = {
        (c or "(none)"): group_metrics([r for r in records if str(r.get("category") or "") == c])
        for c in categories
    }
    cycle = None
    mean_cycle = cycle_accuracy(records)
    if mean_cycle is not None:
        cycle = {
            "cycle_accuracy": mean_cycle,
            "cycle_accuracy_all": cycle_accuracy(records, mode="all"),
            "n_questions": len({r["cycle_id"] for r in records if r.get("cycle_id") is not None}),
        }
    return {
        "meta": dict(meta or {}),
        "overall": group_metrics(records),
        "per_bin": per_bin,
        "per_category": per_category,
        "cycle": cycle,
        "acc_vs_area": acc_vs_area(records),
    }
