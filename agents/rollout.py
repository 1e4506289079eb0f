"""Multi-turn group rollouts: any env with the GroundedVQA API, any `Policy`.

A rollout is one episode: `reset(options={"sample_id": ...})`, then policy actions until the
env terminates (an answer) or truncates (`max_turns`). Rollouts are *jobs* run on a pool of
envs; every live env of the pool is stepped together, with ONE batched `policy.act` call per
step, so the batch a policy sees is as wide as the pool.

* `collect_groups`: GRPO groups, G rollouts of each question (one group id per question).
* `collect_srpo_groups`: SRPO's tree, G1 first-turn (grounding) generations per question,
  each continued G2 times. Branching is done by REPLAY: a continuation resets the env to the
  same sample and re-steps the stored first action (the env is deterministic given the sample
  and the action text), so no env is ever deep-copied. All G1 x G2 rollouts of a question
  share its group id; the first turn of the G2 continuations of a branch is the same
  `Generation` object (same tokens and sampling log-probs).

Recorded per turn (`Turn`): the observation the action answered, the generation (text, token
ids, log-probs), reward, `reward_terms`, and the step's `info` without `messages` (crop box,
IoU, scale bins, ...). The final conversation is kept once, on `Trajectory.messages`.
Loss masks are the policy's business (MGPO): `policy.trajectory_logprobs` returns a (B, T)
mask that is 1 exactly on tokens the policy generated; env-inserted text never counts.

Order of the returned trajectories (tests and trainers rely on it):
`collect_groups` -> question-major, `index = q * G + g`;
`collect_srpo_groups` -> `index = q * G1 * G2 + branch * G2 + continuation`.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.policies.base import Generation, Policy, ScaleBehaviour, Trajectory, Turn
from grounding_gym.lru import LRU
from grounding_gym.rewards import sum_reward_terms
from grounding_gym.scale import scale_bin

__all__ = [
    "RolloutJob",
    "SharedImageDataset",
    "collect_groups",
    "collect_srpo_groups",
    "drop_views",
    "rollout_arrays",
    "rollout_metrics",
    "run_jobs",
    "strip_info",
]

MAX_EPISODE_STEPS = 1000
"""Safety net for envs without truncation: an episode longer than this raises."""


@dataclass(frozen=True)
class RolloutJob:
    """One episode to run.

    Attributes:
        sample_id: passed to `env.reset(options={"sample_id": ...})`.
        group_id: copied to `Trajectory.group_id`.
        reset_seed: passed to `env.reset(seed=...)`.
        prefix: generations replayed before the policy takes over (SRPO branching).
    """

    sample_id: Any
    group_id: int
    reset_seed: int | None = None
    prefix: tuple[Generation, ...] = ()


@dataclass
class _Live:
    """An env of the pool and the job it is running."""

    env: Any
    job: RolloutJob | None = None
    traj: Trajectory | None = None
    obs: dict[str, Any] | None = None
    info: dict[str, Any] = field(default_factory=dict)
    replayed: int = 0


def strip_info(info: dict[str, Any]) -> dict[str, Any]:
    """A step's info without `messages` (the conversation is kept once per trajectory)."""
    return {k: v for k, v in info.items() if k != "messages"}


def drop_views(traj: Trajectory) -> Trajectory:
    """`traj` without its images (each turn's observation `image`, the conversation's
    messages), in place; returns it. Rewards, infos and generations stay."""
    for turn in traj.turns:
        turn.observation = {k: v for k, v in turn.observation.items() if k != "image"}
    traj.messages = []
    return traj


def _as_pool(env_or_envs: Any) -> list[Any]:
    if isinstance(env_or_envs, (list, tuple)):
        if not env_or_envs:
            raise ValueError("env_or_envs is an empty sequence; pass an env or a list of envs")
        return list(env_or_envs)
    return [env_or_envs]


def _step(slot: _Live, generation: Generation) -> bool:
    """Step `slot.env` with `generation`, record the turn; return whether the episode ended."""
    obs, reward, terminated, truncated, info = slot.env.step(generation.text)
    slot.traj.turns.append(
        Turn(
            observation=slot.obs,
            generation=generation,
            reward=float(reward),
            reward_terms=dict(info.get("reward_terms", {})),
            info=strip_info(info),
        )
    )
    slot.obs, slot.info = obs, info
    done = bool(terminated or truncated)
    if done:
        slot.traj.messages = list(info.get("messages", []))
    elif len(slot.traj.turns) >= MAX_EPISODE_STEPS:
        raise RuntimeError(
            f"episode of sample {slot.job.sample_id!r} ran {MAX_EPISODE_STEPS} steps without "
            "terminating or truncating; give the env a max_turns"
        )
    return done


def _start(slot: _Live, job: RolloutJob) -> bool:
    """Reset `slot.env` for `job` and replay its prefix; return whether it already ended."""
    obs, info = slot.env.reset(seed=job.reset_seed, options={"sample_id": job.sample_id})
    slot.job, slot.obs, slot.info = job, obs, info
    slot.traj = Trajectory(
        sample_id=str(info.get("sample_id", job.sample_id)),
        group_id=job.group_id,
        messages=list(info.get("messages", [])),
        reset_info=strip_info(info),
    )
    return any(_step(slot, generation) for generation in job.prefix)


def run_jobs(
    env_or_envs: Any,
    policy: Policy,
    jobs: Sequence[RolloutJob],
    *,
    greedy: bool = False,
    executor: Executor | None = None,
    keep_views: bool = True,
) -> list[Trajectory]:
    """Run every job to the end of its episode on a pool of envs, stepping live envs together.

    Args:
        env_or_envs: one env, or a list of envs (the pool; its size is the act batch width).
        policy: anything implementing `Policy`.
        jobs: episodes to run; a free env takes the next job in order.
        greedy: passed to `policy.act`.
        executor: if given (e.g. a `ThreadPoolExecutor`), the live envs are stepped in it
            concurrently (PIL resizes release the GIL); results do not depend on it.
        keep_views: False drops a trajectory's images as soon as its episode ends
            (`drop_views`): for evaluations, whose metrics need none (100 held-out questions on
            4096 px images otherwise hold ~0.4 GB of 448 x 448 views until the last one ends).

    Returns:
        One `Trajectory` per job, in job order.
    """
    pool = [_Live(env) for env in _as_pool(env_or_envs)]
    finish = (lambda t: t) if keep_views else drop_views
    results: list[Trajectory | None] = [None] * len(jobs)
    index_of: dict[int, int] = {}  # id(slot) -> job index
    next_job = 0

    def fill(slot: _Live) -> None:
        nonlocal next_job
        while next_job < len(jobs):
            index, next_job = next_job, next_job + 1
            if not _start(slot, jobs[index]):
                index_of[id(slot)] = index
                return
            results[index] = finish(slot.traj)  # the replayed prefix already ended the episode
        slot.job = None

    for slot in pool:
        fill(slot)
    while True:
        live = [slot for slot in pool if slot.job is not None]
        if not live:
            break
        generations = policy.act([s.obs for s in live], [s.info for s in live], greedy=greedy)
        if len(generations) != len(live):
            raise ValueError(
                f"policy.act returned {len(generations)} generations for {len(live)} envs"
            )
        if executor is None:
            done = [_step(slot, gen) for slot, gen in zip(live, generations, strict=True)]
        else:
            done = list(executor.map(_step, live, generations))
        for slot, finished in zip(live, done, strict=True):
            if finished:
                results[index_of.pop(id(slot))] = finish(slot.traj)
                fill(slot)
    return [t for t in results if t is not None]


def collect_groups(
    env_or_envs: Any,
    policy: Policy,
    sample_ids: Sequence[Any],
    group_size: int,
    *,
    seed: int,
    greedy: bool = False,
    executor: Executor | None = None,
    keep_views: bool = True,
) -> list[Trajectory]:
    """GRPO groups: `group_size` rollouts of each sample.

    Args:
        env_or_envs: one env or a pool (list) of envs with the GroundedVQA API.
        policy: anything implementing `Policy`.
        sample_ids: questions; the i-th gets `group_id = i`.
        group_size: G >= 1 rollouts per question.
        seed: rollout j resets its env with `seed + j` (policy sampling uses the policy's RNG).
        greedy: passed to `policy.act`.
        executor: steps envs concurrently (see `run_jobs`).
        keep_views: False drops each finished trajectory's images (see `run_jobs`).

    Returns:
        `len(sample_ids) * G` trajectories, question-major (`index = q * G + g`).
    """
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    jobs = [
        RolloutJob(sid, q, seed + q * group_size + g)
        for q, sid in enumerate(sample_ids)
        for g in range(group_size)
    ]
    return run_jobs(
        env_or_envs, policy, jobs, greedy=greedy, executor=executor, keep_views=keep_views
    )


def collect_srpo_groups(
    env_or_envs: Any,
    policy: Policy,
    sample_ids: Sequence[Any],
    g1: int,
    g2: int,
    *,
    seed: int,
    greedy: bool = False,
    executor: Executor | None = None,
    scale_behaviour: ScaleBehaviour | None = None,
) -> list[Trajectory]:
    """SRPO groups: G1 first-turn generations per question, each continued G2 times.

    Phase 1 resets one env per (question, branch) and samples the first action (batched).
    Phase 2 runs G1 * G2 jobs per question, each replaying its branch's first action on a
    fresh reset of the same sample, then letting the policy continue.

    Args:
        env_or_envs: one env or a pool (list) of envs with the GroundedVQA API (deterministic
            given the sample and the action text, as `GroundedVQAEnv` is).
        policy: anything implementing `Policy`.
        sample_ids: questions; the i-th gets `group_id = i`.
        g1: branches (grounding rollouts) per question, >= 1.
        g2: continuations (answer rollouts) per branch, >= 1.
        seed: reset seeds are derived from it.
        greedy: passed to `policy.act`.
        executor: steps envs concurrently (see `run_jobs`).
        scale_behaviour: exploration of the first turn's crop scale, passed to `policy.act`
            for the G1 first-turn generations (`forced`: one index per (question, branch),
            question-major); later turns act on-policy.

    Returns:
        `len(sample_ids) * g1 * g2` trajectories, `index = q * g1 * g2 + branch * g2 + c`.
    """
    if g1 < 1 or g2 < 1:
        raise ValueError(f"g1 and g2 must be >= 1, got g1={g1}, g2={g2}")
    pool = _as_pool(env_or_envs)
    firsts: list[Generation] = []
    roots = [(q, sid) for q, sid in enumerate(sample_ids) for _ in range(g1)]
    for start in range(0, len(roots), len(pool)):
        chunk = roots[start : start + len(pool)]

        def reset(env: Any, root: tuple[int, Any]) -> tuple[dict, dict]:
            return env.reset(seed=seed + root[0] * g1 * g2, options={"sample_id": root[1]})

        mapper = map if executor is None else executor.map
        observations, infos = zip(*mapper(reset, pool[: len(chunk)], chunk), strict=True)
        explore = (
            {}
            if scale_behaviour is None
            else {"scale_behaviour": scale_behaviour.rows(start, start + len(chunk))}
        )
        firsts += policy.act(list(observations), list(infos), greedy=greedy, **explore)
    jobs = [
        RolloutJob(sid, q, seed + (q * g1 + b) * g2 + c, prefix=(firsts[q * g1 + b],))
        for q, sid in enumerate(sample_ids)
        for b in range(g1)
        for c in range(g2)
    ]
    return run_jobs(pool, policy, jobs, greedy=greedy, executor=executor)


# ------------------------------------------------------------------------------ shared images


class SharedImageDataset(Sequence):
    """A dataset wrapper that builds each sample once for a whole pool of envs.

    Pass it as `dataset=` to every env of a pool: a sample (for `synthetic-hr`, its layout) is
    made once and handed to every env that resets on it. Decoded images need no wrapper: every
    env of the process shares them through the byte-bounded store of
    `grounding_gym.image_store` (`image_cache_bytes`). Thread-safe.

    Args:
        dataset: a sequence of `grounding_gym.data.Sample`.
        max_samples: samples kept (LRU).
    """

    def __init__(self, dataset: Sequence[Any], max_samples: int = 128):
        self.dataset, self.max_samples = dataset, max_samples
        self._samples = LRU(max_samples, name="max_samples")  # index -> sample
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, index: int) -> Any:  # type: ignore[override]
        index = int(index) + (len(self) if index < 0 else 0)
        with self._lock:
            sample = self._samples.peek(index)
        if sample is not None:
            return sample
        sample = self.dataset[index]
        with self._lock:
            self._samples.put(index, sample)
        return sample


# ------------------------------------------------------------------------------ batch views


def rollout_arrays(trajectories: Sequence[Trajectory]) -> dict[str, np.ndarray]:
    """Per-rollout arrays for advantage estimators, each `(B,)`.

    Keys: `rewards` (float64, episode return), `group_ids` (int64), `rel_areas` (float64,
    first accepted crop's area / image area, NaN without a crop: SRPO's scale),
    `target_rel_areas` (float64, the question's target area / image area, NaN without one),
    `lengths` (int64, policy tokens), `correct` (float64 in {0, 1}; 0 without an answer).
    """
    return {
        "rewards": np.array([t.total_reward for t in trajectories], dtype=np.float64),
        "group_ids": np.array([t.group_id for t in trajectories], dtype=np.int64),
        "rel_areas": np.array([t.first_crop_rel_area for t in trajectories], dtype=np.float64),
        "target_rel_areas": np.array([_target_area(t) for t in trajectories], dtype=np.float64),
        "lengths": np.array([t.num_policy_tokens for t in trajectories], dtype=np.int64),
        "correct": np.array([1.0 if t.correct else 0.0 for t in trajectories], dtype=np.float64),
    }


def _target_area(traj: Trajectory) -> float:
    value = traj.reset_info.get("target_rel_area")
    return math.nan if value is None else float(value)


def _bin_name(value: float | None, edges: Sequence[float], names: Sequence[str]) -> str | None:
    """`names[scale_bin(value, edges)]`; None for a missing or NaN area."""
    index = -1 if value is None else scale_bin(value, edges)
    return None if index < 0 else names[index]


def rollout_metrics(
    trajectories: Sequence[Trajectory],
    bin_edges: Sequence[float],
    bin_names: Sequence[str] = ("small", "medium", "large"),
    prefix: str = "rollout/",
    crop_bin_edges: Sequence[float] | None = None,
    crop_bin_names: Sequence[str] | None = None,
) -> dict[str, float]:
    """Summary statistics of a batch of rollouts, namespaced for logging.

    Args:
        trajectories: finished rollouts.
        bin_edges: edges on the TARGET's relative area (`reset_info["target_rel_area"]`);
            `len(bin_names) == len(bin_edges) + 1`.
        bin_names: names of the bins, smallest first.
        prefix: key prefix.
        crop_bin_edges, crop_bin_names: bins on the FIRST CROP's relative area; when given, also
            `p_crop_<crop bin>_<target bin>` = P(first crop in the crop bin | target in the target
            bin), over the bin's rollouts (no crop counts as a crop in no bin), and
            `conditioning_index` = P(smallest crop bin | smallest target bin) - P(smallest crop
            bin | largest target bin) when both target bins have rollouts.

    Returns:
        `reward` (mean return), `reward_<term>` (mean per-episode sum of each reward term),
        `acc` and `acc_<bin>` (answer accuracy; bins without rollouts are left out),
        `miou` and `miou_<bin>` (mean over rollouts of the best crop IoU with the target, 0
        without crops: the eval summary's `miou`), `n_<bin>` (rollouts in the bin), `crop_rate`
        (fraction that cropped), `crop_rel_area` (mean relative area of the first crop, over
        rollouts that cropped: which crop scale the policy uses), `turns` (mean episode
        length), `answered`.
    """
    if len(bin_names) != len(bin_edges) + 1:
        raise ValueError(f"{len(bin_names)} bin names for {len(bin_edges)} edges; need edges + 1")
    if not trajectories:
        return {}
    out: dict[str, float] = {}
    terms: dict[str, list[float]] = {}
    for t in trajectories:
        for key, value in sum_reward_terms(
            (turn.reward_terms for turn in t.turns), always=()
        ).items():
            terms.setdefault(key, []).append(value)
    out["reward"] = float(np.mean([t.total_reward for t in trajectories]))
    for key, values in sorted(terms.items()):
        out[f"reward_{key}"] = float(np.sum(values) / len(trajectories))
    correct = np.array([1.0 if t.correct else 0.0 for t in trajectories])
    out["acc"] = float(correct.mean())
    ious = np.array([_best_iou(t) for t in trajectories])
    bins = np.array(
        [_bin_name(t.reset_info.get("target_rel_area"), bin_edges, bin_names) for t in trajectories]
    )
    by_crop = crop_bin_edges is not None and crop_bin_names is not None
    if by_crop:
        crops = np.array(
            [_bin_name(t.first_crop_rel_area, crop_bin_edges, crop_bin_names) for t in trajectories]
        )
    for name in bin_names:
        chosen = bins == name
        if chosen.any():
            out[f"acc_{name}"] = float(correct[chosen].mean())
            out[f"miou_{name}"] = float(ious[chosen].mean())
            out[f"n_{name}"] = float(chosen.sum())
            for crop_name in crop_bin_names if by_crop else ():
                out[f"p_crop_{crop_name}_{name}"] = float(np.mean(crops[chosen] == crop_name))
    low = f"p_crop_{crop_bin_names[0]}_{bin_names[0]}" if by_crop else ""
    high = f"p_crop_{crop_bin_names[0]}_{bin_names[-1]}" if by_crop else ""
    if low in out and high in out:
        out["conditioning_index"] = out[low] - out[high]
    out["miou"] = float(ious.mean())
    out["crop_rate"] = float(np.mean([1.0 if t.crop_boxes else 0.0 for t in trajectories]))
    areas = [t.first_crop_rel_area for t in trajectories if t.crop_boxes]
    if areas:
        out["crop_rel_area"] = float(np.mean(areas))
    out["turns"] = float(np.mean([len(t.turns) for t in trajectories]))
    out["answered"] = float(np.mean([t.correct is not None for t in trajectories]))
    return {prefix + k: v for k, v in out.items()}


def _best_iou(traj: Trajectory) -> float:
    values = [t.info.get("crop_iou") for t in traj.turns]
    values = [float(v) for v in values if v is not None]
    return max(values, default=0.0)
