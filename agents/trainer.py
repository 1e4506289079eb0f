"""GRPO-family trainer for any `Policy` on GroundedVQA-style envs: `grounding-gym train`.

Usage::

    grounding-gym train --config examples/train_tiny_srpo.yaml --lr 1e-3 --algo grpo
    grounding-gym train --config examples/train_tiny_srpo.yaml env_kwargs.max_turns=3 seed=1

One step = collect rollouts (G1 x G2 per question; G2 = 1 is plain GRPO groups) -> rewards ->
advantages from the estimator registry (`agents.algos`, chosen by NAME: `algo: srpo`) ->
`update_epochs` passes of `compute_loss` (clipped surrogate, k3 KL to a frozen reference when
`beta > 0`) -> log. The trainer never branches on the algorithm's name: extra per-rollout inputs
(SRPO's `rel_areas`) are passed exactly when `estimator_inputs(algo)` lists them.

Outputs in `output_dir`: `metrics.jsonl` (one line per step, namespaced keys such as
`train/loss`, `rollout/acc_small`, `eval/miou`; deterministic given the config, so a resumed
run reproduces it byte for byte), `checkpoint.pt` (policy, optimizer, RNG states, step and the
metrics file's length; written atomically), `config.yaml`, and TensorBoard events in `tb/`
(if tensorboard is installed; wall-clock timings go there and to the progress bar only).
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from agents.algos import (
    compute_loss,
    dynamic_sampling_mask,
    estimator_inputs,
    get_advantage_estimator,
    overlong_penalty,
)
from agents.algos.diagnostics import crop_bin_names, crop_choice, scale_bias_metrics, shares
from agents.algos.exploration import forced_scales, scale_curiosity
from agents.checkpoint import atomic_torch_save, get_rng_state, load_checkpoint_file, set_rng_state
from agents.config import TrainerConfig, merge_kwargs, parse_args
from agents.policies import check_policy_env, make_policy
from agents.policies.base import ScaleBehaviour, Trajectory
from agents.probe import FirstViews, first_crop_rel_areas
from agents.rollout import (
    SharedImageDataset,
    collect_groups,
    collect_srpo_groups,
    rollout_arrays,
    rollout_metrics,
)
from grounding_gym.atomic import atomic_write_text
from grounding_gym.renderer import FirstViewCache
from grounding_gym.scale import scale_bins

__all__ = ["Trainer", "batch_importance_weights", "batch_old_logprobs", "build_envs", "main"]


def build_envs(cfg: TrainerConfig, overrides: dict[str, Any] | None = None) -> list[Any]:
    """The rollout pool: `num_envs` envs of `env_id` with `env_kwargs` (sharing images), with
    `overrides` merged in (`merge_kwargs`; the evaluation pool passes `eval_env_kwargs`)."""
    import gymnasium as gym

    import grounding_gym  # noqa: F401  (registers the ids)

    kwargs = merge_kwargs(cfg.env_kwargs, overrides or {})
    spec_kwargs = gym.spec(cfg.env_id).kwargs or {}
    dataset = kwargs.get("dataset", spec_kwargs.get("dataset"))
    if cfg.share_images and isinstance(dataset, str):
        from grounding_gym.data import make_dataset

        built = make_dataset(dataset, **kwargs.pop("dataset_kwargs", {}))
        kwargs["dataset"] = SharedImageDataset(
            built, max_samples=max(32, 8 * cfg.questions_per_step)
        )
    envs = [gym.make(cfg.env_id, **kwargs).unwrapped for _ in range(cfg.num_envs)]
    if cfg.cache_first_views:
        cache = FirstViewCache()
        for env in envs:
            env.renderer.first_view_cache = cache
    return envs


def _module(policy: Any) -> torch.nn.Module:
    """The torch module holding the policy's weights (the policy itself, or `.model`)."""
    if isinstance(policy, torch.nn.Module):
        return policy
    model = getattr(policy, "model", None)
    if isinstance(model, torch.nn.Module):
        return model
    raise TypeError(f"{type(policy).__name__} is neither a torch.nn.Module nor has a .model module")


def batch_old_logprobs(trajectories: Sequence[Trajectory], mask: torch.Tensor) -> torch.Tensor:
    """Sampling-time log-probs laid out like `mask` (B, T): row b holds trajectory b's
    `Trajectory.old_logprobs()` (T_b,) in order."""
    return _token_layout([t.old_logprobs() for t in trajectories], mask, 0.0, "sampling log-probs")


def batch_importance_weights(
    trajectories: Sequence[Trajectory], mask: torch.Tensor
) -> torch.Tensor:
    """pi / mu per token laid out like `mask` (B, T) (`Trajectory.importance_weights()`; 1 on
    tokens drawn from pi and on padding)."""
    weights = [t.importance_weights() for t in trajectories]
    return _token_layout(weights, mask, 1.0, "importance weights")


def _token_layout(
    values: Sequence[np.ndarray], mask: torch.Tensor, fill: float, what: str
) -> torch.Tensor:
    """(B, T) float32: `fill`, with row b's masked positions holding `values[b]` in order."""
    out = torch.full(mask.shape, fill, dtype=torch.float32, device=mask.device)
    flat = torch.cat([torch.from_numpy(v) for v in values]) if values else torch.zeros(0)
    picked = mask.bool()
    if int(picked.sum()) != flat.numel():
        raise ValueError(
            f"the policy's mask has {int(picked.sum())} tokens but the trajectories hold "
            f"{flat.numel()} {what}"
        )
    out[picked] = flat.to(mask.device)
    return out


class Trainer:
    """Runs `TrainerConfig`: rollouts, advantages by name, clipped-surrogate updates, logs.

    Args:
        cfg: the run's configuration.
        policy: a built policy (default: `make_policy(cfg.policy, **cfg.policy_kwargs)`, built
            after seeding so initial weights depend on `cfg.seed`, and after the factory's
            pre-build check on the envs, `check_policy_env`).
        envs: the rollout pool (default: `build_envs(cfg)`).
    """

    def __init__(self, cfg: TrainerConfig, policy: Any = None, envs: Sequence[Any] | None = None):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        _seed_everything(cfg.seed)
        self.envs = list(envs) if envs is not None else build_envs(cfg)
        self.eval_envs = build_envs(cfg, cfg.eval_env_kwargs) if cfg.eval_env_kwargs else self.envs
        if policy is None:  # the factory's pre-build check first (vLLM: max_turns vs image limit)
            for env in (self.envs[0], self.eval_envs[0]):
                check_policy_env(cfg.policy, env, **cfg.policy_kwargs)
            policy = make_policy(cfg.policy, **cfg.policy_kwargs)
        self.policy = policy
        if cfg.init_checkpoint:
            state = load_checkpoint_file(cfg.init_checkpoint)
            _module(self.policy).load_state_dict(state)
        self.crop_names = crop_bin_names(len(cfg.crop_edges), cfg.bin_names)
        if cfg.scale_exploration != "off" and not getattr(self.policy, "scales", None):
            raise ValueError(
                f"scale_exploration={cfg.scale_exploration} needs a policy with discrete crop "
                f"scales (`scales`, e.g. tiny); {type(self.policy).__name__} has none"
            )
        self.executor = ThreadPoolExecutor(cfg.env_threads) if cfg.env_threads else None
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ref = self._frozen_copy() if cfg.loss.needs_ref else None
        self.sampler = np.random.default_rng([cfg.seed, 1])
        self.step = 0
        self.episodes = 0
        self.env_steps = 0
        self.metrics_path = self.out / "metrics.jsonl"
        self.checkpoint_path = self.out / "checkpoint.pt"
        self.history: list[dict[str, Any]] = []
        self._probe_views: FirstViews | None = None  # built on the first probe
        self._check_dataset()

    # ---------------------------------------------------------------- setup helpers
    def _frozen_copy(self) -> Any:
        ref = copy.deepcopy(self.policy)
        for p in _module(ref).parameters():
            p.requires_grad_(False)
        ref.eval()
        return ref

    def _check_dataset(self) -> None:
        dataset = getattr(self.envs[0], "dataset", None)
        need = self.cfg.train_samples + self.cfg.eval_samples
        if dataset is not None and len(dataset) < need:
            raise ValueError(
                f"the env dataset has {len(dataset)} samples but train_samples + eval_samples = "
                f"{self.cfg.train_samples} + {self.cfg.eval_samples} = {need}; raise "
                "env_kwargs.dataset_kwargs.num_samples or lower them"
            )

    # ---------------------------------------------------------------- rollouts
    def collect(self, sample_ids: Sequence[Any], seed: int) -> list[Trajectory]:
        """G1 x G2 rollouts per question (plain groups of G1 when G2 = 1 and the first crop's
        scale is on-policy); `scale_exploration` draws the first crop's scale."""
        cfg = self.cfg
        self.policy.eval()
        behaviour = None
        if cfg.scale_exploration == "floor":
            behaviour = ScaleBehaviour(floor=cfg.scale_floor)
        elif cfg.scale_exploration == "forced":  # the design's randomness: from the step's seed
            rng = np.random.default_rng([seed, 2])
            scales = forced_scales(len(sample_ids), cfg.g1, len(self.policy.scales), rng)
            behaviour = ScaleBehaviour(forced=tuple(scales.tolist()))
        if cfg.g2 == 1 and behaviour is None:
            return collect_groups(
                self.envs, self.policy, sample_ids, cfg.g1, seed=seed, executor=self.executor
            )
        return collect_srpo_groups(
            self.envs,
            self.policy,
            sample_ids,
            cfg.g1,
            cfg.g2,
            seed=seed,
            executor=self.executor,
            scale_behaviour=behaviour,
        )

    def evaluate(
        self, sample_ids: Sequence[Any] | None = None, prefix: str = "eval/"
    ) -> dict[str, float]:
        """Greedy rollouts (one per question) on the held-out questions: accuracy and IoU per
        bin."""
        ids = self.cfg.eval_ids if sample_ids is None else list(sample_ids)
        if not ids:
            return {}
        self.policy.eval()
        trajs = collect_groups(
            self.eval_envs,
            self.policy,
            ids,
            1,
            seed=10**9,
            greedy=True,
            executor=self.executor,
            keep_views=False,
        )
        return self._metrics(trajs, prefix)

    def probe(self) -> dict[str, float]:
        """`heldout/p_crop_<crop bin>_<target bin>` and `heldout/conditioning_index` of the
        greedy first crop on the held-out questions' first views (`agents.probe`)."""
        cfg = self.cfg
        if self._probe_views is None:
            self._probe_views = FirstViews(self.eval_envs[0], cfg.eval_ids, cfg.bin_edges)
        self.policy.eval()
        choice = crop_choice(
            first_crop_rel_areas(self.policy, self._probe_views),
            self._probe_views.target_rel_areas,
            bin_edges=cfg.bin_edges,
            bin_names=cfg.bin_names,
            crop_bin_edges=cfg.crop_edges,
            crop_names=self.crop_names,
        )
        return {f"heldout/{k}": v for k, v in choice.items()}

    def _metrics(self, trajectories: Sequence[Trajectory], prefix: str) -> dict[str, float]:
        cfg = self.cfg
        return rollout_metrics(
            trajectories,
            cfg.bin_edges,
            cfg.bin_names,
            prefix=prefix,
            crop_bin_edges=cfg.crop_edges,
            crop_bin_names=self.crop_names,
        )

    # ---------------------------------------------------------------- ALGO LOGIC
    def advantages(
        self, trajectories: Sequence[Trajectory], arrays: dict[str, np.ndarray] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(B,) advantages from the registry estimator named `cfg.algo`, and their statistics
        with the scale-bias diagnostics (`agents.algos.diagnostics`, all but `grad_share`).
        `arrays`: the step's `rollout_arrays(trajectories)`, if already built."""
        cfg = self.cfg
        arrays = rollout_arrays(trajectories) if arrays is None else arrays
        rewards = torch.from_numpy(arrays["rewards"])  # (B,)
        if cfg.overlong_max_len:
            rewards = rewards + overlong_penalty(
                arrays["lengths"], cfg.overlong_max_len, cfg.overlong_cache_len
            )
        if cfg.scale_curiosity is not None:
            target_share, coef = cfg.scale_curiosity
            bonus = scale_curiosity(
                arrays["rel_areas"],
                arrays["group_ids"],
                cfg.crop_edges,
                target_share=target_share,
                coef=coef,
            )
            rewards = rewards + torch.from_numpy(bonus).to(rewards.dtype)
        inputs = estimator_inputs(cfg.algo)
        missing = sorted(inputs - set(arrays))
        if missing:
            raise ValueError(
                f"estimator {cfg.algo!r} needs {missing}; rollouts provide {sorted(arrays)}"
            )
        extras = {name: arrays[name] for name in inputs}  # e.g. SRPO's rel_areas (B,)
        adv = get_advantage_estimator(cfg.algo)(
            rewards, arrays["group_ids"], **extras, **cfg.adv_kwargs
        )
        stats = {"train/adv_abs_mean": float(adv.abs().mean()), "train/adv_std": float(adv.std())}
        stats.update(
            scale_bias_metrics(
                advantages=adv.numpy(),
                lengths=arrays["lengths"],
                rewards=rewards.numpy(),
                group_ids=arrays["group_ids"],
                target_rel_areas=arrays["target_rel_areas"],
                crop_rel_areas=arrays["rel_areas"],
                bin_edges=cfg.bin_edges,
                bin_names=cfg.bin_names,
                crop_bin_edges=cfg.crop_edges,
                crop_names=self.crop_names,
            )
        )
        return adv, stats

    def gradient_shares(
        self,
        logp: torch.Tensor,
        old: torch.Tensor,
        adv: torch.Tensor,
        mask: torch.Tensor,
        target_bins: np.ndarray,
    ) -> dict[str, float]:
        """`grad_share/<bin>`: each target bin's share of the squared gradient norm of the step's
        policy-gradient loss, from the update's first forward (`logp`, before any weight change):
        one backward per bin whose rollouts carry advantage, with every other bin's advantages
        zeroed (a bin without any has gradient 0: no backward). Falls back to the rollout shares
        when the whole gradient is zero."""
        names = self.cfg.bin_names
        params = [p for g in self.optimizer.param_groups for p in g["params"]]
        loss_cfg = dataclasses.replace(self.cfg.loss, beta=0.0)
        adv = adv.to(logp.device)
        norms = np.zeros(len(names))
        for b in range(len(names)):
            in_bin = torch.from_numpy(target_bins == b).to(logp.device, logp.dtype)
            bin_adv = adv * (in_bin[:, None] if adv.dim() == 2 else in_bin)
            if not bool(bin_adv.any()):  # no rollout in the bin, or all with A = 0
                continue
            loss, _ = compute_loss(logp, old, None, bin_adv, mask, loss_cfg)
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            norms[b] = float(sum(float(g.pow(2).sum()) for g in grads if g is not None))
        fallback = shares(np.ones(len(target_bins)), target_bins, len(names))
        share = shares(norms, np.arange(len(names)), len(names), fallback=fallback)
        return {f"grad_share/{name}": float(share[b]) for b, name in enumerate(names)}

    def update(
        self,
        trajectories: Sequence[Trajectory],
        adv: torch.Tensor,
        arrays: dict[str, np.ndarray] | None = None,
    ) -> dict[str, float]:
        """`update_epochs` gradient steps of `compute_loss` on one rollout batch (and, with
        `grad_diagnostics`, the `gradient_shares` of its first forward). `arrays`: the step's
        `rollout_arrays(trajectories)`, if already built."""
        cfg = self.cfg
        arrays = rollout_arrays(trajectories) if arrays is None else arrays
        keep = torch.ones(len(trajectories), dtype=torch.bool)
        if cfg.dynamic_sampling:
            keep = dynamic_sampling_mask(arrays["rewards"], arrays["group_ids"]).cpu()
        ref_logp = None
        if self.ref is not None:
            with torch.no_grad():
                ref_logp, _ = self.ref.trajectory_logprobs(trajectories)
        self.policy.train()
        sums: dict[str, float] = {}
        old = None
        for epoch in range(cfg.update_epochs):
            logp, mask = self.policy.trajectory_logprobs(trajectories)  # (B, T) each
            if old is None:
                old = batch_old_logprobs(trajectories, mask)
                if cfg.scale_exploration != "off":  # (B, T): A x pi / mu on the scale token
                    adv = adv[:, None].to(mask.device) * batch_importance_weights(
                        trajectories, mask
                    )
            mask = mask * keep.to(mask.device, mask.dtype)[:, None]  # dynamic sampling: drop rows
            if epoch == 0 and self._grad_diagnostics_due():
                bins = scale_bins(arrays["target_rel_areas"], cfg.bin_edges)
                sums.update(self.gradient_shares(logp, old, adv, mask, bins))
            loss, metrics = compute_loss(logp, old, ref_logp, adv.to(logp.device), mask, cfg.loss)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            params = [p for g in self.optimizer.param_groups for p in g["params"]]
            norm = torch.nn.utils.clip_grad_norm_(
                params, cfg.max_grad_norm if cfg.max_grad_norm > 0 else math.inf
            )
            self.optimizer.step()
            metrics["grad_norm"] = norm
            for key, value in metrics.items():
                sums[key] = sums.get(key, 0.0) + float(value) / cfg.update_epochs
        out = {k if k.startswith("grad_share/") else f"train/{k}": v for k, v in sums.items()}
        out["train/kept_frac"] = float(keep.float().mean())
        return out

    def _grad_diagnostics_due(self) -> bool:
        """Whether this step (counted from 0, before it ends) logs grad_share."""
        cfg = self.cfg
        return cfg.grad_diagnostics and self.step % cfg.grad_diagnostics_every == 0

    def train_step(self) -> dict[str, Any]:
        """One step: collect, advantages, update; returns the step's metrics."""
        cfg = self.cfg
        ids = self.sampler.integers(0, cfg.train_samples, cfg.questions_per_step).tolist()
        trajectories = self.collect(
            ids, seed=cfg.seed * 1_000_003 + self.step * cfg.rollouts_per_step
        )
        arrays = rollout_arrays(trajectories)  # (B,) per-rollout arrays, built once per step
        adv, adv_stats = self.advantages(trajectories, arrays)
        metrics = self.update(trajectories, adv, arrays)
        self.step += 1
        self.episodes += len(trajectories)
        self.env_steps += sum(len(t.turns) for t in trajectories)
        row: dict[str, Any] = {
            "step": self.step,
            "episodes": self.episodes,
            "env_steps": self.env_steps,
        }
        row.update(self._metrics(trajectories, "rollout/"))
        row.update(adv_stats)
        row.update(metrics)
        return row

    # ---------------------------------------------------------------- loop
    def train(self) -> list[dict[str, Any]]:
        """Run to `total_steps` (or `max_minutes`), resuming if a checkpoint exists.

        Returns:
            The metric rows of the whole run (including rows before a resume).
        """
        cfg = self.cfg
        if cfg.resume and self.checkpoint_path.exists():
            self.load_checkpoint()
            if self._finished():
                warnings.warn(
                    f"{self.out} already holds a finished run (step {self.step} of "
                    f"total_steps={cfg.total_steps}, {self.env_steps} env steps): nothing to "
                    "train. Use another output_dir, resume: false to start over, or raise "
                    "total_steps to continue it.",
                    stacklevel=2,
                )
        else:
            self.metrics_path.write_text("", encoding="utf-8")
        atomic_write_text(self.out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        writer = _tensorboard(self.out / "tb", self.step) if cfg.tensorboard else None
        bar = _progress(cfg.total_steps, self.step, cfg.progress, cfg.exp_name)
        start = time.perf_counter()
        try:
            while not self._finished():
                t0 = time.perf_counter()
                row = self.train_step()
                done = self._finished()
                out_of_time = (
                    cfg.max_minutes > 0 and time.perf_counter() - start > 60 * cfg.max_minutes
                )
                if (cfg.eval_every and self.step % cfg.eval_every == 0) or (
                    cfg.final_eval and (done or out_of_time)
                ):
                    row.update(self.evaluate())
                if cfg.probe_every and self.step % cfg.probe_every == 0:
                    row.update(self.probe())
                self._log(row, writer, time.perf_counter() - t0)
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(
                        reward=f"{row.get('rollout/reward', 0):.2f}",
                        acc=f"{row.get('rollout/acc', 0):.2f}",
                    )
                if (
                    done
                    or out_of_time
                    or (cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0)
                ):
                    self.save_checkpoint()
                if out_of_time:
                    break
        finally:
            if bar is not None:
                bar.close()
            if writer is not None:
                writer.close()
        self.wall_time = time.perf_counter() - start
        return self.history

    def _finished(self) -> bool:
        cfg = self.cfg
        return self.step >= cfg.total_steps or (0 < cfg.total_env_steps <= self.env_steps)

    def _log(self, row: dict[str, Any], writer: Any, seconds: float) -> None:
        self.history.append(row)
        with open(self.metrics_path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(row) + "\n")
        if writer is not None:
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "step":
                    writer.add_scalar(key, value, self.step)
            writer.add_scalar("time/step_s", seconds, self.step)

    # ---------------------------------------------------------------- checkpoints
    def save_checkpoint(self) -> None:
        """Atomically write everything needed to continue identically."""
        state = {
            "step": self.step,
            "episodes": self.episodes,
            "env_steps": self.env_steps,
            "policy": _module(self.policy).state_dict(),
            "ref": _module(self.ref).state_dict() if self.ref is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "rng": get_rng_state(),
            "sampler": self.sampler.bit_generator.state,
            "metrics_bytes": self.metrics_path.stat().st_size if self.metrics_path.exists() else 0,
            "config": self.cfg.to_dict(),
        }
        atomic_torch_save(state, self.checkpoint_path)

    def load_checkpoint(self, path: str | os.PathLike | None = None) -> None:
        """Restore a checkpoint and cut `metrics.jsonl` back to what it had then.

        Raises:
            agents.checkpoint.UnsafeCheckpointError: the file needs unpickling (refused, nothing
                from it runs) or is truncated.
        """
        state = load_checkpoint_file(path or self.checkpoint_path)
        _module(self.policy).load_state_dict(state["policy"])
        if self.ref is not None and state.get("ref") is not None:
            _module(self.ref).load_state_dict(state["ref"])
        self.optimizer.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.sampler.bit_generator.state = state["sampler"]
        self.step, self.episodes = int(state["step"]), int(state["episodes"])
        self.env_steps = int(state.get("env_steps", 0))
        size = int(state["metrics_bytes"])
        if self.metrics_path.exists():
            with open(self.metrics_path, "r+b") as handle:
                handle.truncate(size)
            self.history = [
                json.loads(line)
                for line in self.metrics_path.read_text(encoding="utf-8").splitlines()
            ]


def _seed_everything(seed: int) -> None:
    import random

    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _tensorboard(path: Path, step: int) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard is optional
        return None
    return SummaryWriter(str(path), purge_step=step or None)


def _progress(total: int, initial: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=total, initial=initial, desc=desc, unit="step", dynamic_ncols=True)


def main(argv: Sequence[str] | None = None) -> int:
    """`grounding-gym train --config file.yaml [--key value ...] [key=value ...]`."""
    cfg = parse_args(sys.argv[1:] if argv is None else argv)
    trainer = Trainer(cfg)
    history = trainer.train()
    last = history[-1] if history else {}
    summary = {k: v for k, v in last.items() if k.startswith("eval/")}
    print(json.dumps({"step": trainer.step, "output_dir": str(trainer.out), **summary}, indent=2))
    if history:
        print(scale_bias_summary(history, cfg.bin_names))
    return 0


SUMMARY_FAMILIES = (
    "rollout_share",
    "adv_share",
    "grad_share",
    "crop_bin_occupancy",
    "dead_group_frac",
)


def scale_bias_summary(history: Sequence[dict[str, Any]], bin_names: Sequence[str]) -> str:
    """One line: the scale-bias diagnostics averaged over the steps that logged them, e.g.
    `scale bias (mean of 150 steps): rollout_share small 0.20 large 0.80 | adv_share ... |
    multi_bin_group_frac 0.41 | dead_group_frac 0.62`, and the last held-out probe's
    conditioning index."""
    parts = []
    for family in SUMMARY_FAMILIES:
        keys = sorted(
            {k for row in history for k in row if k.startswith(family + "/")},
            key=lambda k: _bin_order(k.split("/", 1)[1], bin_names),
        )
        means = [  # over the steps that logged the key (grad_share: every k steps)
            (k.split("/", 1)[1], float(np.mean([row[k] for row in history if k in row])))
            for k in keys
        ]
        means = [(name, m) for name, m in means if m > 0.0005 or family != "crop_bin_occupancy"]
        if means:
            parts.append(family + " " + " ".join(f"{name} {m:.2f}" for name, m in means))
    for key in ("multi_bin_group_frac", "dead_group_frac"):
        fracs = [row[key] for row in history if key in row]
        if fracs:
            parts.append(f"{key} {np.mean(fracs):.2f}")
    probes = [row for row in history if "heldout/conditioning_index" in row]
    if probes:
        parts.append(
            f"heldout/conditioning_index (last) {probes[-1]['heldout/conditioning_index']:+.2f}"
        )
    return f"scale bias (mean of {len(history)} steps): " + " | ".join(parts)


def _bin_order(name: str, bin_names: Sequence[str]) -> int:
    return list(bin_names).index(name) if name in bin_names else len(bin_names)


if __name__ == "__main__":
    sys.exit(main())
