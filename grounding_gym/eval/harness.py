"""`evaluate`: run an agent over a deterministic set of episodes, record each one, summarise.

Episodes are planned from the seed alone: episode `i` uses sample `plan[i]` of `env.dataset`
(a seeded permutation, repeated when `n` exceeds the dataset) and `reset(seed=...)` derived from
`(seed, i)`, so the same command always evaluates the same samples in the same order, and a
larger `n` extends a smaller one.

With `out_dir`, each finished episode is appended to `episodes.jsonl` (flushed and fsynced) as
soon as it ends. Running the same evaluation again resumes: episodes already in the file are
skipped, a torn last line is cut off, and only the missing episodes run. The summary and the
reports are rebuilt from the file at the end, so they always cover every episode exactly once.
`config.json` pins what must not change between a run and its resumption (env, dataset, agent,
seed); a mismatch raises unless `overwrite=True` starts over.

`num_envs > 1` steps that many envs together, in threads, and hands the agent one batch per step
(useful for batched model inference and for API agents with requests in flight); slots are
refilled as episodes end. An agent may return None for an
env: that episode ends there, unanswered (`truncated`), without another step.

`on_error` says what an exception in one episode does (a corrupt image at `reset`, a failing
`step`, an agent error on that episode's batch): "raise" stops the run; "record" (default)
writes the episode with `error` ("ExcType: message") and `error_stage` ("reset" | "step" |
"agent"), leaves it out of every metric, counts it in `summary["errors"]` and warns at the end
(a resumed run does not retry it); "skip" writes nothing (a resumed run retries it). An
`AgentUnavailableError` (e.g. the model server is down after the client's retries) always stops
the run: the episodes in flight are not written, so the same command resumes them.
"""

from __future__ import annotations

import contextlib
import datetime
import functools
import hashlib
import inspect
import json
import os
import time
import warnings
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np

from grounding_gym.atomic import atomic_write_text, folder_lock
from grounding_gym.eval.agents import (
    Agent,
    AgentUnavailableError,
    import_entry_point,
    make_agent,
)
from grounding_gym.eval.metrics import summarize
from grounding_gym.eval.records import (
    EPISODES_FILE,
    EpisodeRecorder,
    append_record,
    jsonable,
    read_records,
)
from grounding_gym.eval.report import load_summary, write_reports
from grounding_gym.judge import judge_summary
from grounding_gym.scale import check_bin_edges, parse_bin_spec, quantile_bin_edges
from grounding_gym.validation import check_call_kwargs, check_choice, did_you_mean

__all__ = [
    "EPISODES_FILE",
    "CONFIG_FILE",
    "RunMismatchError",
    "episode_plan",
    "episode_seed",
    "evaluate",
    "make_eval_env",
]

CONFIG_FILE = "config.json"
ON_ERROR_MODES = ("raise", "record", "skip")
_PINNED_KEYS = (
    "env_id",
    "env_kwargs",
    "agent",
    "agent_kwargs",
    "seed",
    "samples",
    "counterfactual",
)
"""config.json keys that must match for a run to be resumed (n may grow or shrink)."""
_UNPINNED_ENV_KWARGS = ("image_cache_bytes",)
"""env_kwargs that change memory, not results (views are byte-identical under any image budget):
a resumed run may differ in them."""


def _pinned(config: dict[str, Any], key: str) -> Any:
    value = jsonable(config.get(key))
    if key == "env_kwargs" and isinstance(value, dict):
        value = {k: v for k, v in value.items() if k not in _UNPINNED_ENV_KWARGS}
    return value


def episode_plan(
    seed: int, n: int, dataset_len: int, samples: tuple[int, int] | None = None
) -> list[int]:
    """Sample indices of episodes `0..n-1`: seeded permutations of the dataset (or of the index
    range `samples = (start, stop)`, e.g. a held-out split), concatenated.

    A prefix of the plan for `n` is the plan for any smaller `n` (resuming with a larger `n`
    extends a run).

    >>> episode_plan(0, 3, 10) == episode_plan(0, 5, 10)[:3]
    True
    >>> sorted(episode_plan(0, 4, 100, samples=(90, 94)))
    [90, 91, 92, 93]
    """
    start, stop = samples if samples is not None else (0, dataset_len)
    if not 0 <= start < stop <= dataset_len:
        raise ValueError(
            f"samples range {start}:{stop} is empty or outside the dataset (0:{dataset_len})"
        )
    rng = np.random.default_rng(seed)
    plan: list[int] = []
    while len(plan) < n:
        plan.extend(start + int(i) for i in rng.permutation(stop - start))
    return plan[:n]


def data_fingerprint(records: Sequence[Mapping[str, Any]]) -> str:
    """Short hash of what was asked (sample ids, correct answers, ground truth) in episode order:
    two runs with equal n and equal fingerprints saw the same questions, whatever the agent."""
    items = sorted(
        (
            (r.get("episode", 0), r.get("sample_id"), r.get("gt_answer"), r.get("gt_boxes"))
            for r in records
        ),
        key=lambda item: item[0],
    )
    return hashlib.sha1(json.dumps(items, default=str).encode("utf-8")).hexdigest()[:16]


def dataset_split(records: Sequence[Mapping[str, Any]]) -> str | None:
    """The dataset version every record names (`split`: HR-Bench "4k" / "8k", MME-RealWorld
    "full" / "lite"), or None when none does or they disagree; `compare --published` ranks a
    run only beside numbers of its own version.

    >>> dataset_split([{"split": "4k"}, {"split": "4k"}]), dataset_split([{"split": None}])
    ('4k', None)
    """
    splits = {r.get("split") for r in records}
    return splits.pop() if len(splits) == 1 else None


def episode_seed(seed: int, episode: int) -> int:
    """The `reset` seed of episode `episode` of an evaluation seeded with `seed`."""
    return (int(seed) * 1_000_003 + int(episode)) % (2**63 - 1)


def make_eval_env(
    env: str | gym.Env,
    dataset: str | None = None,
    dataset_kwargs: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> tuple[gym.Env, str, dict[str, Any]]:
    """Build an env for evaluation; returns `(env, env_id, kwargs used)`.

    `env` may be an id (built with `gym.make(id, **env_kwargs, dataset=..., dataset_kwargs=...)`,
    env checker off) or an env instance (returned as is; `dataset`/`env_kwargs` must be None).
    """
    if isinstance(env, gym.Env):
        if dataset is not None or dataset_kwargs or env_kwargs:
            raise ValueError(
                "dataset/dataset_kwargs/env_kwargs apply only when env is an id; got an env "
                "instance"
            )
        spec = env.spec
        kwargs = dict(spec.kwargs) if spec is not None else {}
        return env, (spec.id if spec is not None else type(env.unwrapped).__name__), kwargs
    kwargs = dict(env_kwargs or {})
    if dataset is not None:
        kwargs["dataset"] = dataset
    elif "dataset" not in kwargs and env in gym.registry:
        default = gym.spec(env).kwargs.get("dataset")
        if isinstance(default, str):
            kwargs["dataset"] = default  # recorded, so the run names its data
    if dataset_kwargs:
        kwargs["dataset_kwargs"] = dict(dataset_kwargs)
    check_env_kwargs(env, kwargs)
    return gym.make(env, disable_env_checker=True, **kwargs), env, kwargs


def check_env_kwargs(env_id: str, kwargs: Mapping[str, Any]) -> None:
    """Raise a ValueError for an unknown env id or env kwarg, naming the closest valid one
    (`gym.make` itself raises a bare TypeError deep in the env's constructor)."""
    if env_id not in gym.registry:
        raise ValueError(
            f"Unknown env id {env_id!r}.{did_you_mean(env_id, gym.registry)} "
            "`grounding-gym list envs` lists them."
        )
    entry = gym.spec(env_id).entry_point
    cls = import_entry_point(entry, what=f"env {env_id!r}") if isinstance(entry, str) else entry
    if callable(cls):
        given = {**gym.spec(env_id).kwargs, **kwargs}
        check_call_kwargs(f"env {env_id!r} (env kwargs)", cls, given)


@dataclass
class _Slot:
    """An episode in progress in one env."""

    episode: int
    sample_index: int
    obs: dict[str, Any]
    info: dict[str, Any]
    recorder: EpisodeRecorder
    started: float


class _NoBar:
    def update(self, k: int = 1) -> None: ...

    def close(self) -> None: ...


def _progress(total: int, initial: int, desc: str, enabled: bool) -> Any:
    if not enabled:
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, initial=initial, desc=desc, unit="ep", dynamic_ncols=True)


class RunMismatchError(ValueError):
    """`out_dir` holds an evaluation with another env, agent, seed or sample range."""


def _check_config(path: Path, config: dict[str, Any]) -> None:
    """Raise when `path` holds a different evaluation (`_PINNED_KEYS` differ)."""
    if not path.exists():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    diffs = [k for k in _PINNED_KEYS if _pinned(old, k) != _pinned(config, k)]
    if diffs:
        detail = "; ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in diffs)
        raise RunMismatchError(
            f"{path.parent} holds a different evaluation ({detail}). Use another --out folder, "
            "or --overwrite to discard it."
        )


def _clear_run(out: Path) -> None:
    for name in (
        EPISODES_FILE,
        CONFIG_FILE,
        "summary.json",
        "summary.csv",
        "summary.md",
        "acc_vs_area.png",
        "iou_hist.png",
    ):
        with contextlib.suppress(FileNotFoundError):
            (out / name).unlink()


def _one_writer_per_out_dir(run: Any) -> Any:
    """`evaluate` holding `folder_lock(out_dir)` while it runs: a second evaluation into the
    same folder fails at once (`FolderLockedError`) instead of running every episode again."""
    signature = inspect.signature(run)

    @functools.wraps(run)
    def locked(*args: Any, **kwargs: Any) -> Any:
        out_dir = signature.bind(*args, **kwargs).arguments.get("out_dir")
        if out_dir is None:
            return run(*args, **kwargs)
        with folder_lock(out_dir, "an evaluation"):
            return run(*args, **kwargs)

    return locked


@_one_writer_per_out_dir
def evaluate(
    agent: Agent | str,
    env: str | gym.Env = "GroundedVQA-HR-v0",
    *,
    dataset: str | None = None,
    dataset_kwargs: Mapping[str, Any] | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
    agent_kwargs: Mapping[str, Any] | None = None,
    n: int | None = None,
    num_envs: int = 1,
    out_dir: str | os.PathLike | None = None,
    seed: int = 0,
    progress: bool = True,
    plots: bool = True,
    overwrite: bool = False,
    benchmark: str | None = None,
    label: str | None = None,
    bin_edges: Sequence[float] | str | None = None,
    bin_edges_source: str | None = None,
    samples: tuple[int, int] | None = None,
    counterfactual: str | None = None,
    on_error: str = "record",
) -> dict[str, Any]:
    """Evaluate `agent` on `n` episodes and return the summary (see `grounding_gym.eval.metrics`).

    Args:
        agent: an `Agent`, or a registered name / `"module:attr"` built with `make_agent(name,
            env, **agent_kwargs)`.
        env: an env id (default "GroundedVQA-HR-v0") or an env instance (then `num_envs` = 1).
        dataset, dataset_kwargs, env_kwargs: passed to `gym.make` (ids only), e.g.
            `dataset_kwargs={"image_size": 1024}` for small synthetic images.
        agent_kwargs: options of a named agent (`seed`, `path`, ...).
        n: number of episodes; default the number of samples (every sample once).
        num_envs: envs stepped together; the agent gets batches of up to this many.
        out_dir: where `episodes.jsonl`, `config.json`, `summary.{json,csv,md}` and the PNG
            plots go; None keeps everything in memory (no resume).
        seed: fixes which samples run and in which order.
        progress: show a tqdm bar (when tqdm is installed).
        plots: write `acc_vs_area.png` and `iou_hist.png` (needs matplotlib).
        overwrite: discard an existing, different evaluation in `out_dir` instead of raising.
        benchmark: name under which `compare --baselines` looks for baselines; default the
            dataset name.
        label: the run's name in comparisons; default the agent's name.
        bin_edges: scale-bin edges of the summary on the target's relative area, or
            `"quantiles:K"` (K equal-count bins of this run's targets); default the env's
            `scale_bin_edges` (the dataset's declared edges). Only the summary depends on them;
            `meta["bin_edges"]` and `meta["bin_edges_source"]` record which were used and why.
        bin_edges_source: why the given `bin_edges` (default "given (--bin-edges)"), e.g.
            taken from another run.
        samples: `(start, stop)`: evaluate only dataset indices in `[start, stop)` (e.g. the
            questions a trainer held out); default the whole dataset.
        counterfactual: run under `grounding_gym.wrappers.make_counterfactual(env, name, seed)`
            ("blank", "shuffle", "no-tool": what a crop returns is replaced); recorded as
            `meta["counterfactual"]`, for `compare`'s gain / harm table.
        on_error: "record" (default), "skip" or "raise": what an exception in one episode does
            (module docstring). Recorded failures are in `summary["errors"]`.

    Returns:
        The summary dict (also written to `out_dir/summary.json`), with `meta["out_dir"]`.

    Raises:
        ValueError: bad `n`/`num_envs`, `out_dir` holds a different evaluation, or the agent
            returned the wrong number of actions.
        grounding_gym.atomic.FolderLockedError: another evaluation is writing to `out_dir`.
    """
    check_choice("on_error", on_error, ON_ERROR_MODES)
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    if isinstance(env, gym.Env) and num_envs != 1:
        raise ValueError("num_envs > 1 needs an env id (the harness builds the copies)")
    envs, env_id, used_kwargs = _eval_envs(
        env, num_envs, dataset, dataset_kwargs, env_kwargs, counterfactual, seed
    )
    first_env = envs[0]
    base: Any = first_env.unwrapped  # a GroundedVQA-style env: `dataset`, `scale_bin_edges`
    data = base.dataset
    if samples is not None:
        samples = (int(samples[0]), int(samples[1]))
    n = (len(data) if samples is None else samples[1] - samples[0]) if n is None else int(n)
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    agent_name = agent if isinstance(agent, str) else type(agent).__name__
    label = label or "+".join(filter(None, (agent_name, counterfactual)))
    dataset_name = used_kwargs.get("dataset", "custom")
    dataset_name = dataset_name if isinstance(dataset_name, str) else "custom"
    config = jsonable(
        {
            "env_id": env_id,
            "env_kwargs": {
                k: v
                for k, v in used_kwargs.items()
                if isinstance(v, (str, int, float, bool, list, tuple, dict, type(None)))
            },
            "agent": agent_name,
            "agent_kwargs": dict(agent_kwargs or {}),
            "seed": seed,
            "n": n,
            "benchmark": benchmark or dataset_name,
            "samples": list(samples) if samples is not None else None,
            "counterfactual": counterfactual,
        }
    )

    out = Path(out_dir) if out_dir is not None else None
    records: list[dict[str, Any]] = []
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        if overwrite:
            try:
                _check_config(out / CONFIG_FILE, config)
            except RunMismatchError:
                _clear_run(out)
        _check_config(out / CONFIG_FILE, config)
        atomic_write_text(out / CONFIG_FILE, json.dumps(config, indent=2) + "\n")
        records = read_records(out / EPISODES_FILE)

    plan = episode_plan(seed, n, len(data), samples)
    done = {int(r["episode"]) for r in records if "episode" in r}
    pending = deque(i for i in range(n) if i not in done)
    runs: Iterator[dict[str, Any]] = iter(())  # a finished run rebuilds its reports, no agent
    if pending:
        agent = _as_agent(agent, first_env, agent_kwargs)
        runs = _run_episodes(agent, envs, plan, pending, seed, on_error)
    bar = _progress(n, n - len(pending), label or agent_name, progress)
    try:
        for record in runs:
            if out is not None:
                append_record(out / EPISODES_FILE, record)
            records.append(record)
            bar.update(1)
    finally:
        bar.close()
        for e in envs if not isinstance(env, gym.Env) else envs[1:]:
            e.close()  # an env instance passed in stays open: it is the caller's

    if out is not None:
        records = read_records(out / EPISODES_FILE)
    records = [r for r in records if 0 <= int(r.get("episode", -1)) < n]
    failed = [r for r in records if r.get("error")]
    records = [r for r in records if not r.get("error")]
    with_options = [r["num_options"] for r in records if r.get("num_options")]
    edges, edges_source = summary_bin_edges(bin_edges, base, records, bin_edges_source)
    meta = {
        **config,
        "label": label or agent_name,
        "dataset": dataset_name,
        "dataset_kwargs": config["env_kwargs"].get("dataset_kwargs", {}),
        "num_envs": num_envs,
        "resize_backend": getattr(
            base, "resize_backend", None
        ),  # views differ slightly (docs/benchmarks.md)
        "bin_edges": list(edges),
        "bin_edges_source": edges_source,
        "chance": float(np.mean([1.0 / k for k in with_options])) if with_options else None,
        "n_episodes": len(records),
        "dataset_split": dataset_split(records),
        "data_fingerprint": data_fingerprint(records),
        "answer_judge": judge_summary(records),  # verdict sources, errors, agreement; or None
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "out_dir": str(out) if out is not None else None,
    }
    report = _agent_report(agent, out)
    if report is not None:  # e.g. the replay agent's matching counts
        meta["agent_report"] = report
    summary = summarize(records, edges, meta)
    summary["errors"] = _errors(failed, len(records), out)
    if out is not None:
        write_reports(out, summary, records, plots=plots)
    return summary


def _eval_envs(
    env: str | gym.Env,
    num_envs: int,
    dataset: str | None,
    dataset_kwargs: Mapping[str, Any] | None,
    env_kwargs: Mapping[str, Any] | None,
    counterfactual: str | None,
    seed: int,
) -> tuple[list[gym.Env], str, dict[str, Any]]:
    """`num_envs` evaluation envs (`make_eval_env`), each wrapped in `counterfactual` if set."""
    first_env, env_id, used_kwargs = make_eval_env(env, dataset, dataset_kwargs, env_kwargs)
    envs = [first_env] + [
        make_eval_env(env_id, dataset, dataset_kwargs, env_kwargs)[0] for _ in range(num_envs - 1)
    ]
    if counterfactual is not None:
        from grounding_gym.wrappers.counterfactual import make_counterfactual

        envs = [make_counterfactual(e, counterfactual, seed) for e in envs]
    return envs, env_id, used_kwargs


def _errors(failed: list[dict[str, Any]], n_ok: int, out: Path | None) -> dict[str, Any]:
    """`summary["errors"]`: how many episodes failed and which (warns when any did)."""
    if failed:
        where = f" (records in {out / EPISODES_FILE})" if out is not None else ""
        warnings.warn(
            f"{len(failed)} of {len(failed) + n_ok} episodes failed and are left out of the "
            f"metrics{where}; first: episode {failed[0]['episode']}: {failed[0]['error']}",
            stacklevel=3,
        )
    keys = ("episode", "sample_id", "error_stage", "error")
    return {"n": len(failed), "episodes": [{k: r.get(k) for k in keys} for r in failed]}


def _agent_report(agent: Agent | str, out: Path | None) -> Any:
    """The agent's `report` (JSON-ready), or None. Re-summarising a finished run does not
    rebuild its agent (`agent` is still a name), so the report of the summary already in
    `out` is carried over instead of lost."""
    if getattr(agent, "report", None) is not None:
        return jsonable(agent.report)  # type: ignore[union-attr]
    if not isinstance(agent, str) or out is None:
        return None
    try:
        return load_summary(out)["meta"].get("agent_report")
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def summary_bin_edges(
    spec: Sequence[float] | str | None,
    env: Any,
    records: Sequence[Mapping[str, Any]],
    source: str | None = None,
) -> tuple[tuple[float, ...], str]:
    """`(edges, why)` of a summary: edges given (why: `source`, default "given
    (--bin-edges)"), `"quantiles:K"` of the records' target areas, or the env's
    `scale_bin_edges` (with its `scale_bin_edges_source`)."""
    if spec is None:
        return tuple(env.scale_bin_edges), str(
            getattr(env, "scale_bin_edges_source", "the env's scale_bin_edges")
        )
    parsed = parse_bin_spec(spec) if isinstance(spec, str) else check_bin_edges(spec)
    if isinstance(parsed, int):
        edges = quantile_bin_edges([r.get("target_rel_area") for r in records], parsed)
        return (
            edges,
            f"quantiles:{parsed}: {len(edges) + 1} equal-count bins of this run's target areas",
        )
    return parsed, source or "given (--bin-edges)"


def _as_agent(agent: Agent | str, env: gym.Env, kwargs: Mapping[str, Any] | None) -> Agent:
    """`agent` itself, or the agent registered under that name built for `env`."""
    return make_agent(agent, env, **dict(kwargs or {})) if isinstance(agent, str) else agent


def _run_episodes(
    agent: Agent,
    envs: list[gym.Env],
    plan: list[int],
    pending: deque[int],
    seed: int,
    on_error: str = "raise",
) -> Iterator[dict[str, Any]]:
    """Step `envs` together until `pending` is empty; yield each record as its episode ends
    (with `on_error="record"`, also the record of each failed episode)."""
    runner = _Runner(agent, envs, plan, pending, seed, on_error)
    try:
        yield from _loop(agent, runner)
    finally:
        runner.close()


def _loop(agent: Agent, runner: _Runner) -> Iterator[dict[str, Any]]:
    """Fill every slot, then ask the agent for a batch and step it until no slot is busy."""
    for k in range(len(runner.envs)):
        yield from runner.start(k)
    while True:
        active = [k for k, slot in enumerate(runner.slots) if slot is not None]
        if not active:
            return
        slots = [runner.slots[k] for k in active]
        observations = [slot.obs for slot in slots]  # type: ignore[union-attr]
        infos = [
            {**slot.info, "episode": slot.episode, "sample_index": slot.sample_index}  # type: ignore[union-attr]
            for slot in slots
        ]
        try:
            actions = agent.act(observations, infos)
        except Exception as exc:  # every episode of the batch fails with it
            for k in active:
                yield from runner.end(k, runner.failure(k, "agent", exc))
            continue
        if len(actions) != len(active):  # a bug in the agent, not in an episode
            raise ValueError(
                f"agent returned {len(actions)} actions for {len(active)} observations"
            )
        texts = [None if a is None else a if isinstance(a, str) else str(a) for a in actions]
        outcomes = runner.step_envs(active, texts)
        for k, text, outcome in zip(active, texts, outcomes, strict=True):
            yield from runner.step(k, text, outcome)


class _Runner:
    """The env slots of `_run_episodes` and what happens to an episode: start, step, end, fail."""

    def __init__(
        self,
        agent: Agent,
        envs: list[gym.Env],
        plan: list[int],
        pending: deque[int],
        seed: int,
        on_error: str,
    ):
        self.envs, self.plan, self.pending, self.seed = envs, plan, pending, seed
        self.episode_log = getattr(agent, "episode_log", None)
        self._pool: ThreadPoolExecutor | None = None
        self.on_error = on_error
        self.slots: list[_Slot | None] = [None] * len(envs)

    def start(self, k: int) -> Iterator[dict[str, Any]]:
        """Fill slot `k` with the next pending episode that resets cleanly."""
        while self.pending and self.slots[k] is None:
            started = time.perf_counter()
            episode = self.pending.popleft()
            index = self.plan[episode]
            reset_seed = episode_seed(self.seed, episode)
            try:
                obs, info = self.envs[k].reset(seed=reset_seed, options={"sample_id": index})
            except Exception as exc:
                record = self.failure(k, "reset", exc, episode=episode)
                if record is not None:
                    yield record
                continue
            sample = getattr(self.envs[k].unwrapped, "sample", None)
            recorder = EpisodeRecorder(
                episode, index, reset_seed, info, sample, first_view=obs["image"]
            )
            self.slots[k] = _Slot(episode, index, obs, info, recorder, started)

    def step_envs(self, ks: list[int], texts: list[str | None]) -> list[Any]:
        """`env.step(text)` of each slot in `ks`, in threads when several envs run (PIL and
        OpenCV release the GIL): the step's 5-tuple, the exception it raised, or None for no
        action. Each env is stepped by one thread, so results do not depend on the threads."""

        def one(k: int, text: str | None) -> Any:
            if text is None:
                return None
            try:
                return self.envs[k].step(text)
            except Exception as exc:
                return exc

        if len(ks) == 1:
            return [one(ks[0], texts[0])]
        if self._pool is None:
            self._pool = ThreadPoolExecutor(len(self.envs), thread_name_prefix="env-step")
        return list(self._pool.map(one, ks, texts))

    def step(self, k: int, text: str | None, outcome: Any) -> Iterator[dict[str, Any]]:
        """Record slot `k`'s step (`outcome` of `step_envs`; None: the agent gave up, the
        episode ends unanswered); end the episode when it is over."""
        slot = self.slots[k]
        assert slot is not None
        if text is None:
            slot.recorder.stop()
            terminated, truncated = False, True
        elif isinstance(outcome, Exception):
            yield from self.end(k, self.failure(k, "step", outcome))
            return
        else:
            obs, reward, terminated, truncated, info = outcome
            slot.recorder.step(text, float(reward), terminated, truncated, info)
            slot.obs, slot.info = obs, info
        if terminated or truncated:
            yield from self.end(k, slot.recorder.finish(time.perf_counter() - slot.started))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()

    def end(self, k: int, record: dict[str, Any] | None) -> Iterator[dict[str, Any]]:
        """Free slot `k`, yield its record (if any, with the agent's `episode_log(episode)` as
        `agent_log` when the agent keeps one), start the next episode there."""
        slot, self.slots[k] = self.slots[k], None
        log = self.episode_log(slot.episode) if callable(self.episode_log) and slot else None
        if record is not None:
            yield record if log is None else {**record, "agent_log": jsonable(log)}
        yield from self.start(k)

    def failure(
        self, k: int, stage: str, exc: Exception, episode: int | None = None
    ) -> dict[str, Any] | None:
        """The record of a failed episode (slot `k`'s, or `episode` failing at reset), None to
        skip it; re-raises with `on_error="raise"` and for `AgentUnavailableError`."""
        if self.on_error == "raise" or isinstance(exc, AgentUnavailableError):
            raise exc
        if self.on_error == "skip":
            return None
        slot = self.slots[k]
        if episode is None and slot is not None:
            record = slot.recorder.finish(time.perf_counter() - slot.started)
        else:
            assert episode is not None
            index = self.plan[episode]
            record = {
                "episode": episode,
                "sample_index": index,
                "seed": episode_seed(self.seed, episode),
            }
            with contextlib.suppress(Exception):  # the sample itself may be what failed
                record["sample_id"] = cast(Any, self.envs[k].unwrapped).dataset[index].id
        return {**record, "error": f"{type(exc).__name__}: {exc}", "error_stage": stage}
