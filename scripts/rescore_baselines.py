"""Rescore shipped baselines after a reward change: replay every recorded episode through the
current env and rebuild the folder's records, summaries and plots.

Each episode's recorded `actions` are stepped again, with the same sample and reset seed, through
the env its `config.json` names (so the agents themselves are not needed: the `synthetic-hr-demo`
and SB3 checkpoints are not shipped). What an agent did cannot change; what the env makes of it
may. The script refuses to write a folder where anything but the rewards (and the `action_kind`
of a refused crop, now "invalid") differs: sample, actions, crops, answers, `correct`.

    python scripts/rescore_baselines.py baselines/*/*/       # every shipped folder
    python scripts/rescore_baselines.py --check baselines/synthetic-hr/no-crop   # compare only
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from grounding_gym.atomic import atomic_write_text
from grounding_gym.eval.harness import CONFIG_FILE, EPISODES_FILE, evaluate
from grounding_gym.eval.records import jsonable, read_records
from grounding_gym.eval.report import load_summary

UNCHANGED = ("sample_id", "seed", "actions", "crop_boxes", "answer", "correct", "turns")
"""Record keys a reward change must leave alone."""


class RecordedActions:
    """An eval agent that replays each episode's recorded actions (None once they run out)."""

    def __init__(self, records: list[dict[str, Any]]):
        self.actions = {int(r["episode"]): list(r["actions"]) for r in records}

    def act(self, observations: Any, infos: list[dict[str, Any]]) -> list[str | None]:
        out: list[str | None] = []
        for info in infos:
            actions = self.actions[int(info["episode"])]
            out.append(actions[info["turn"]] if info["turn"] < len(actions) else None)
        return out


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between two records of one episode beyond the rewards."""
    diffs = [k for k in UNCHANGED if old.get(k) != new.get(k)]
    old_kinds = [
        "invalid" if kind == "crop" and err is not None and kind_new == "invalid" else kind
        for kind, err, kind_new in zip(
            old.get("action_kinds", []),
            old.get("action_errors", []),
            new.get("action_kinds", []),
            strict=False,
        )
    ]
    if old_kinds != new.get("action_kinds"):
        diffs.append("action_kinds")
    return diffs


def rescore(folder: Path, write: bool) -> dict[str, Any]:
    config = json.loads((folder / CONFIG_FILE).read_text(encoding="utf-8"))
    meta = load_summary(folder)["meta"]
    old = sorted(read_records(folder / EPISODES_FILE, repair=False), key=lambda r: r["episode"])
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        evaluate(
            RecordedActions(old),
            config["env_id"],
            env_kwargs=config["env_kwargs"],
            n=config["n"],
            seed=config["seed"],
            samples=tuple(config["samples"]) if config.get("samples") else None,
            counterfactual=config.get("counterfactual"),  # the wrapper the run was made under
            out_dir=tmp,
            progress=False,
            plots=False,
            on_error="raise",
        )
        new = sorted(read_records(Path(tmp) / EPISODES_FILE), key=lambda r: r["episode"])
    bad = {o["episode"]: differences(o, r) for o, r in zip(old, new, strict=True)}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        raise SystemExit(f"{folder}: episodes differ beyond rewards: {dict(list(bad.items())[:5])}")
    old_return = sum(r["return"] for r in old) / len(old)
    new_return = sum(r["return"] for r in new) / len(new)
    if write:
        for o, r in zip(old, new, strict=True):
            r["elapsed_s"] = o.get("elapsed_s")  # the agent's time, not the replay's
        lines = "".join(json.dumps(jsonable(r), separators=(",", ":")) + "\n" for r in new)
        atomic_write_text(folder / EPISODES_FILE, lines)
        evaluate(  # every episode is in the file: the summary is rebuilt, the agent not built
            config["agent"],
            config["env_id"],
            env_kwargs=config["env_kwargs"],
            agent_kwargs=config.get("agent_kwargs") or None,
            n=config["n"],
            seed=config["seed"],
            samples=tuple(config["samples"]) if config.get("samples") else None,
            counterfactual=config.get("counterfactual"),
            out_dir=folder,
            progress=False,
            plots=(folder / "acc_vs_area.png").exists(),  # as shipped (plots show no rewards)
            benchmark=config.get("benchmark"),
            label=meta.get("label"),
            bin_edges=meta.get("bin_edges"),
            bin_edges_source=meta.get("bin_edges_source") or "the baseline's recorded edges",
        )
    return {
        "folder": str(folder),
        "n": len(new),
        "accuracy": sum(bool(r["correct"]) for r in new) / len(new),
        "mean_return_old": round(old_return, 4),
        "mean_return_new": round(new_return, 4),
        "wall_s": round(time.perf_counter() - started, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("folders", nargs="+", type=Path, help="baseline folders")
    parser.add_argument("--check", action="store_true", help="compare only, write nothing")
    args = parser.parse_args(argv)
    for folder in args.folders:
        print(json.dumps(rescore(folder, write=not args.check)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
