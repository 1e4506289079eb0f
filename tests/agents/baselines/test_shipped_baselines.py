"""The shipped scripted baselines still describe what the current code does.

Every `baselines/<benchmark>/<agent>/` folder of a scripted agent (`agents.baselines.heuristic`:
no-crop, oracle-crop, random-crop, sliding-window, fixed-answer; counterfactual runs included) is
re-evaluated in its recorded setting (seed, samples, counterfactual) and each record must equal
the shipped one: the question, the actions, the crops, the answer, its correctness, the reward
terms and the return. A renderer, reader, reward or agent change that moves the shipped numbers
fails here, naming the folder and the command that re-ships it (baselines/README.md).

Cost: the fast loop re-evaluates the first `FIRST` episodes of the folders of images up to
`CHEAP_MAX_SIDE` px (~3 CPU-s); the slow tests re-evaluate every episode of those folders (the
drifts found so far moved 1 or 2 episodes in 120-200) and the first `FIRST` of the 2K-8K ones.

Views depend on the resize backend (`resize_backend`, docs/benchmarks.md): each folder is
re-evaluated with the backend its summary records, and skipped when that backend cannot run here.
"""

from __future__ import annotations

import json
import math
import shlex
from pathlib import Path

import pytest

from grounding_gym.eval import evaluate, read_records
from grounding_gym.eval.agents import get_agent_spec
from grounding_gym.views import resolve_resize_backend

ROOT = Path(__file__).resolve().parents[3]
BASELINES = ROOT / "baselines"

FIRST = 5
"""Episodes of a partial re-evaluation (a shorter run's episodes are a prefix of the longer's)."""

CHEAP_MAX_SIDE = 2048
"""Folders of synthetic images at most this many px a side are cheap (~0.1 CPU-s an episode);
the default 2K-8K images take ~1 s an episode to draw and render."""

COMPARED = ("sample_id", "actions", "crop_boxes", "answer", "correct", "reward_terms", "return")
"""Record fields that must equal the shipped ones (floats to 1e-9 relative)."""


def _scripted(agent: str) -> bool:
    target = get_agent_spec(agent).target
    return isinstance(target, str) and target.startswith("agents.baselines.heuristic:")


def scripted_folders() -> list[Path]:
    """Shipped folders whose agent is a scripted baseline, sorted."""
    return [
        config.parent
        for config in sorted(BASELINES.glob("*/*/config.json"))
        if _scripted(json.loads(config.read_text())["agent"])
    ]


def _cheap(folder: Path) -> bool:
    size = json.loads((folder / "config.json").read_text())["env_kwargs"]
    size = size.get("dataset_kwargs", {}).get("image_size")
    return size is not None and max(size if isinstance(size, list) else [size]) <= CHEAP_MAX_SIDE


def cases(folders: list[Path]) -> list[object]:
    """(folder, episodes) test cases: the first `FIRST` of every cheap folder in the fast loop;
    all of them (None), or the first `FIRST` of an expensive folder, in the slow tests."""
    out = []
    for folder in folders:
        name = f"{folder.parent.name}/{folder.name}"
        if _cheap(folder):
            out.append(pytest.param(folder, FIRST, id=f"{name}-first{FIRST}"))
        out.append(
            pytest.param(
                folder,
                None if _cheap(folder) else FIRST,
                id=f"{name}-all" if _cheap(folder) else f"{name}-first{FIRST}",
                marks=pytest.mark.slow,
            )
        )
    return out


def reship_command(folder: Path, config: dict, label: str) -> str:
    """The shell command that regenerates `folder` with the current code."""
    where = folder.relative_to(ROOT).as_posix()
    parts = ["grounding-gym", "eval", "--agent", config["agent"]]
    if config.get("agent_kwargs"):
        parts += ["--agent-kwargs", json.dumps(config["agent_kwargs"])]
    if config.get("counterfactual"):
        parts += ["--counterfactual", config["counterfactual"]]
    parts += ["--label", label, "--like", where, "--out", where]
    if not (folder / "acc_vs_area.png").exists():
        parts.append("--no-plots")  # shipped without its plots
    return f"rm {where}/episodes.jsonl && " + shlex.join(parts)


def same(a: object, b: object) -> bool:
    """Equal, floats to 1e-9 relative, through nested lists and dicts."""
    if isinstance(a, float) or isinstance(b, float):
        return isinstance(a, (int, float)) and isinstance(b, (int, float)) and math.isclose(a, b)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return a == b


FOLDERS = scripted_folders() if BASELINES.is_dir() else []


def test_every_scripted_agent_has_a_shipped_folder():
    if not FOLDERS:
        pytest.skip("no shipped baselines in this checkout")
    agents = {json.loads((f / "config.json").read_text())["agent"] for f in FOLDERS}
    assert {"no-crop", "oracle-crop", "random-crop", "sliding-window"} <= agents


@pytest.mark.parametrize(("folder", "episodes"), cases(FOLDERS))
def test_shipped_scripted_baseline_reevaluates_identically(folder, episodes, tmp_path):
    config = json.loads((folder / "config.json").read_text())
    meta = json.loads((folder / "summary.json").read_text())["meta"]
    backend = meta.get("resize_backend") or "pil"
    try:
        resolve_resize_backend(backend)
    except ImportError as exc:
        pytest.skip(f"{folder.name} was rendered with resize_backend={backend!r}: {exc}")
    shipped = read_records(folder / "episodes.jsonl", repair=False)[:episodes]
    samples = config.get("samples")
    evaluate(
        config["agent"],
        config["env_id"],
        env_kwargs={**config["env_kwargs"], "resize_backend": backend},
        agent_kwargs=config.get("agent_kwargs") or None,
        n=len(shipped),
        seed=config["seed"],
        samples=tuple(samples) if samples else None,
        counterfactual=config.get("counterfactual"),
        out_dir=tmp_path / "run",
        progress=False,
        plots=False,
    )
    current = read_records(tmp_path / "run" / "episodes.jsonl", repair=False)
    assert [r["episode"] for r in current] == [r["episode"] for r in shipped]
    fix = reship_command(folder, config, meta.get("label") or config["agent"])
    moved = {}
    for old, new in zip(shipped, current, strict=True):
        differ = [
            f"{field}: shipped {old.get(field)!r}, now {new.get(field)!r}"
            for field in COMPARED
            if not same(old.get(field), new.get(field))
        ]
        if differ:
            moved[old["episode"]] = "; ".join(differ)
    assert not moved, (
        f"{folder.relative_to(ROOT)}: {len(moved)} of {len(shipped)} episodes no longer "
        f"re-evaluate to the shipped records (first: episode {next(iter(moved))}: "
        f"{next(iter(moved.values()))}). If the change is intended, re-ship the folder: {fix} "
        "(then update the tables that quote it, e.g. docs/evaluation.md)."
    )


def test_reship_command_is_a_valid_eval_command():
    from grounding_gym.eval.cli import eval_parser

    for folder in FOLDERS:
        config = json.loads((folder / "config.json").read_text())
        command = reship_command(folder, config, "a label")
        remove, run = command.split(" && ")
        assert remove == f"rm {folder.relative_to(ROOT).as_posix()}/episodes.jsonl"
        args = eval_parser().parse_args(shlex.split(run)[2:])
        assert (args.agent, args.counterfactual) == (config["agent"], config.get("counterfactual"))
        assert Path(ROOT / args.like) == Path(ROOT / args.out) == folder


def test_rescoring_a_counterfactual_run_keeps_its_wrapper(tmp_path, monkeypatch):
    """scripts/rescore_baselines.py replays a counterfactual folder under its own wrapper."""
    monkeypatch.syspath_prepend(str(ROOT / "scripts"))
    import rescore_baselines

    run = tmp_path / "oracle-crop+blank"
    evaluate(
        "oracle-crop",
        "GroundedVQA-HR-v0",
        dataset_kwargs={"num_samples": 8, "image_size": 768, "target_rel_area": [5e-4, 5e-3]},
        env_kwargs={"max_pixels": 256 * 256},
        n=3,
        counterfactual="blank",
        out_dir=run,
        progress=False,
        plots=False,
    )
    made = read_records(run / "episodes.jsonl", repair=False)
    stale = [{**r, "return": r["return"] + 0.1} for r in made]  # as under an older reward
    (run / "episodes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in stale))
    rescore_baselines.rescore(run, write=True)
    rescored = read_records(run / "episodes.jsonl", repair=False)
    assert [r["return"] for r in rescored] == [r["return"] for r in made]
    assert json.loads((run / "summary.json").read_text())["meta"]["counterfactual"] == "blank"
