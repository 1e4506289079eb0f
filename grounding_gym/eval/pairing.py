"""Pairing two evaluation runs sample by sample, for paired differences and honest notes.

A run's episode records (`episodes.jsonl`) are reduced to one score per sample: the fraction of
its episodes answered correctly, per group (overall, a scale bin, a category, as `summarize`
groups them). HR-Bench rotations of one question share a `cycle_id` and count as one sample, so a
bootstrap resamples questions. `paired_differences` gives B - A per group over the samples both
runs answered (`grounding_gym.eval.stats.paired_bootstrap`); `sample_set_notes` says what such a
difference rests on (n, shared samples, missing records).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from grounding_gym.eval.metrics import NO_BOX_BIN
from grounding_gym.eval.stats import PairedDifference, paired_bootstrap
from grounding_gym.scale import scale_bin_name

__all__ = [
    "paired_differences",
    "rotation_note",
    "sample_key",
    "sample_scores",
    "sample_set_notes",
]


def sample_key(record: Mapping[str, Any]) -> str:
    """The unit a paired bootstrap resamples: the question (HR-Bench: its `cycle_id`, so the
    rotations of one question stay together), else the sample id."""
    for key in ("cycle_id", "sample_id", "sample_index"):
        if record.get(key) is not None:
            return str(record[key])
    return ""


def rotation_note(label: str, summary: Mapping[str, Any]) -> list[str]:
    """A note for runs whose episodes are rotations of fewer questions (HR-Bench)."""
    cycle = summary.get("cycle")
    if not cycle:
        return []
    return [
        f"note: {label}: n counts {summary['overall']['n']} rotations of {cycle['n_questions']} "
        "questions, which are not independent: its Wilson intervals are too narrow (a paired Δ "
        f"resamples questions); cycle accuracy {100.0 * cycle['cycle_accuracy']:.1f} %"
    ]


def _in_group(record: Mapping[str, Any], tag: str, name: str, bin_edges: Sequence[float]) -> bool:
    if tag == "overall":
        return True
    if tag == "category":
        return (str(record.get("category") or "") or "(none)") == name
    area = record.get("target_rel_area")
    if area is None:
        return name == NO_BOX_BIN
    return scale_bin_name(float(area), bin_edges) == name


def sample_scores(
    records: Sequence[Mapping[str, Any]],
    tag: str = "overall",
    name: str = "all",
    bin_edges: Sequence[float] = (),
) -> dict[str, float]:
    """`sample_key` -> the fraction of its episodes answered correctly, over the records of one
    group (`tag` "overall", "bin" with `bin_edges`, or "category"), as the summary groups them."""
    scores: dict[str, list[float]] = {}
    for r in records:
        if _in_group(r, tag, name, bin_edges):
            scores.setdefault(sample_key(r), []).append(1.0 if r.get("correct") else 0.0)
    return {k: sum(v) / len(v) for k, v in scores.items()}


def paired_differences(
    ref_records: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    groups: Sequence[tuple[str, str]],
    bin_edges: Sequence[float] = (),
) -> dict[tuple[str, str], PairedDifference]:
    """Accuracy of `records` minus `ref_records` per group, paired over the sample ids both runs
    answered in that group (`paired_bootstrap`); groups without a shared sample are left out."""
    out = {}
    for tag, name in groups:
        a = sample_scores(ref_records, tag, name, bin_edges)
        b = sample_scores(records, tag, name, bin_edges)
        if set(a) & set(b):
            out[(tag, name)] = paired_bootstrap(a, b)
    return out


def sample_set_notes(
    label: str,
    ref_label: str,
    summary: Mapping[str, Any],
    ref: Mapping[str, Any],
    records: Sequence[Mapping[str, Any]] | None,
    ref_records: Sequence[Mapping[str, Any]] | None,
) -> list[str]:
    """Notes on what a run's Δ against the reference rests on: n, shared samples, records."""
    notes = []
    n, ref_n = summary["overall"].get("n"), ref["overall"].get("n")
    if n != ref_n:
        notes.append(f"note: n differs ({ref_label}: {ref_n}, {label}: {n} episodes)")
    if not records or not ref_records:
        missing = label if not records else ref_label
        notes.append(
            f"note: {missing} has no episode records (episodes.jsonl): Δ of {label} is the "
            "difference of two estimates, unpaired, without an interval"
        )
        return notes
    ids, ref_ids = set(map(sample_key, records)), set(map(sample_key, ref_records))
    shared = len(ids & ref_ids)
    if not shared:
        notes.append(
            f"note: {label} and {ref_label} share no sample id: they answered different questions; "
            "Δ is unpaired, without an interval"
        )
    elif ids != ref_ids:
        notes.append(
            f"note: {label} and {ref_label} answered different sample sets ({ref_label}: "
            f"{len(ref_ids)}, {label}: {len(ids)}, shared: {shared}): Δ intervals are paired over "
            "the shared samples only; the accuracies are over each run's own samples"
        )
    return notes
