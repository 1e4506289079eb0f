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
`train/loss`, `rollout/acc_small`, `eval/crop_iou`; deterministic given the config, so a resumed
run reproduces it byte for byte), `checkpoint.pt` (policy, optimizer, RNG states, step and the
metrics file's length; written atomically), `config.yaml`, and TensorBoard events in `tb/`
(if tensorboard is installed; wall-clock timings go there and to the progress bar only).
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import inspect
import json
import math
import os
import sys
import textwrap
import time
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from agents.algos import (
    LossConfig,
    compute_loss,
    dynamic_sampling_mask,
    estimator_inputs,
    estimator_options,
    get_advantage_estimator,
    overlong_penalty,
)
from agents.algos.diagnostics import (
    bin_indices,
    crop_bin_names,
    crop_choice,
    scale_bias_metrics,
    shares,
)
from agents.algos.exploration import scale_curiosity
from agents.checkpoint import (
    atomic_torch_save,
    atomic_write_text,
    get_rng_state,
    load_checkpoint_file,
    set_rng_state,
)
from agents.policies import list_policies, make_policy
from agents.policies.base import Trajectory
from agents.probe import FirstViews, first_crop_rel_areas
from agents.rollout import (
    FirstViewCache,
    SharedImageDataset,
    collect_groups,
    collect_srpo_groups,
    rollout_arrays,
    rollout_metrics,
)

__all__ = ["Trainer", "TrainerConfig", "build_envs", "load_config", "main"]


@dataclass
class TrainerConfig:
    """Everything a training run depends on. Fields are grouped:

    > experiment: `exp_name`, `output_dir`, `seed`, `torch_threads`
    > environment: `env_id`, `env_kwargs`, `eval_env_kwargs`, `num_envs`, `env_threads`,
      `share_images`, `cache_first_views`, `train_samples`, `eval_samples`, `bin_edges`,
      `bin_names`, `crop_bin_edges`
    > policy: `policy`, `policy_kwargs`, `init_checkpoint`
    > algorithm: `algo`, `adv_kwargs`, `questions_per_step`, `g1`, `g2`, `clip_low`,
      `clip_high`, `beta`, `loss_agg`, `norm_len`, `dynamic_sampling`, `overlong_max_len`,
      `overlong_cache_len`, `scale_curiosity`
    > optimisation: `total_steps`, `lr`, `update_epochs`, `max_grad_norm`, `weight_decay`
    > logging: `eval_every`, `final_eval`, `grad_diagnostics`, `grad_diagnostics_every`,
      `probe_every`, `checkpoint_every`, `resume`, `tensorboard`, `progress`, `max_minutes`
    """

    # > experiment
    exp_name: str = "tiny-srpo"
    """name of the run (TensorBoard and logs)"""
    output_dir: str = "runs/train"
    """folder for metrics.jsonl, checkpoint.pt, config.yaml and tb/"""
    seed: int = 0
    """seeds torch, numpy, Python, the question sampler and the env resets"""
    torch_threads: int = 0
    """torch intra-op threads; 0 keeps torch's default. On small CPUs shared with env stepping,
    1 is often fastest for a tiny policy"""

    # > environment
    env_id: str = "GroundedVQA-HR-v0"
    """a Gymnasium id with the GroundedVQA API (reset(options={"sample_id"}), text actions)"""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """kwargs of gym.make(env_id, ...), e.g. max_pixels, max_turns, dataset_kwargs"""
    eval_env_kwargs: dict[str, Any] = field(default_factory=dict)
    """overrides of env_kwargs for the held-out evaluation, merged key by key (nested dicts too),
    e.g. {dataset_kwargs: {target_mix: [0.5, 0.5]}}: a balanced held-out set for a skewed
    training mix; {} evaluates on the training envs"""
    num_envs: int = 16
    """env instances in the rollout pool = width of each batched policy.act call"""
    env_threads: int = 2
    """threads stepping the pool's envs (image resizing releases the GIL); 0 = no threads"""
    share_images: bool = True
    """build the env dataset once for the pool (`agents.rollout.SharedImageDataset`); needs
    env_kwargs `dataset` to be a registered name. Decoded images are shared by every env of
    the process either way, within env_kwargs `image_cache_bytes` (`grounding_gym.image_store`)"""
    cache_first_views: bool = True
    """render each sample's first view once for the whole pool (`agents.rollout.FirstViewCache`):
    all rollouts of a question start from the same view"""
    train_samples: int = 4096
    """questions [0, train_samples) of the dataset are drawn for training"""
    eval_samples: int = 64
    """questions [train_samples, train_samples + eval_samples) are held out for evaluation"""
    bin_edges: tuple[float, ...] = (0.001, 0.01)
    """edges on the TARGET's relative area for the per-scale metrics (acc_small, ...)"""
    bin_names: tuple[str, ...] = ("small", "medium", "large")
    """names of the scale bins, smallest first: len(bin_edges) + 1 names"""
    crop_bin_edges: tuple[float, ...] | None = None
    """edges on the first CROP's relative area for the crop-bin diagnostics
    (crop_bin_occupancy/<bin>, multi_bin_group_frac, p_crop_<crop bin>_<target bin>); None: the
    estimator's own crop bins (srpo's adv_kwargs bin_edges) if it takes crop areas, else bin_edges"""

    # > policy
    policy: str = "tiny"
    """policy name in `agents.policies` (tiny | hf | anything registered)"""
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    """kwargs of the policy's constructor"""
    init_checkpoint: str | None = None
    """a policy state_dict (.pt) loaded before training, e.g. a warm-started reader
    (`agents.reader_sft`); a resumed run's own checkpoint.pt takes precedence"""

    # > algorithm
    algo: str = "srpo"
    """advantage estimator name in the `agents.algos` registry (grpo | dr_grpo | rloo | srpo)"""
    adv_kwargs: dict[str, Any] = field(default_factory=dict)
    """tuning options of the estimator (see `estimator_options(algo)`), e.g. srpo bin_edges"""
    questions_per_step: int = 4
    """questions per step; each gets g1 * g2 rollouts (one group)"""
    g1: int = 4
    """first-turn (grounding) generations per question"""
    g2: int = 2
    """continuations of each first turn (SRPO's answer rollouts, by replay); 1 = plain groups"""
    clip_low: float = 0.2
    """PPO ratio lower bound 1 - clip_low"""
    clip_high: float = 0.2
    """PPO ratio upper bound 1 + clip_high (DAPO clip-higher: 0.28)"""
    beta: float = 0.0
    """k3 KL weight to a frozen copy of the initial policy; 0 = no reference model (cheaper)"""
    loss_agg: str = "token-mean"
    """token-mean (DAPO) | seq-mean-token-mean (GRPO) | seq-mean-token-sum-norm (Dr.GRPO)"""
    norm_len: float | None = None
    """constant divisor of seq-mean-token-sum-norm (Dr.GRPO: the generation budget in tokens)"""
    dynamic_sampling: bool = False
    """DAPO: drop zero-reward-variance groups from the loss (they carry no gradient)"""
    overlong_max_len: int = 0
    """DAPO soft overlong penalty on the policy tokens of a rollout; 0 disables it"""
    overlong_cache_len: int = 0
    """width of the soft overlong window, in tokens"""
    scale_curiosity: tuple[float, float] | None = None
    """(H, coef): add `agents.algos.exploration.scale_curiosity` to the rewards before the
    estimator (a Pixel-Reasoner-style bonus for crop scales a group rarely tries, on the crop
    bins); None = off"""

    # > optimisation
    total_steps: int = 100
    """optimisation steps (rollout batch + update_epochs gradient steps each)"""
    total_env_steps: int = 0
    """also stop once this many env steps were taken (equal-budget comparisons); 0 = no limit"""
    lr: float = 3e-3
    """Adam learning rate"""
    update_epochs: int = 2
    """gradient steps per rollout batch (PPO-style reuse; the ratio clip keeps them close)"""
    max_grad_norm: float = 1.0
    """gradient clipping norm; 0 disables clipping"""
    weight_decay: float = 0.0
    """AdamW weight decay"""

    # > logging
    eval_every: int = 0
    """evaluate greedily on the held-out questions every N steps (0: only at the end)"""
    final_eval: bool = True
    """evaluate at the last step (set False when the caller evaluates itself)"""
    grad_diagnostics: bool = True
    """log grad_share/<bin> (every `grad_diagnostics_every` steps): one extra backward per target
    bin on the step's batch (the other scale-bias diagnostics are free); False for speed"""
    grad_diagnostics_every: int = 10
    """steps between grad_share measurements (steps 1, 1 + k, 1 + 2k, ...; each costs ~15 percent
    of a demo step, so 10 costs ~1.5 percent); 1 for experiments that report grad_share
    (examples/scale_bias.yaml)"""
    probe_every: int = 0
    """every N steps, log the greedy first crop's scale on the held-out
    questions' first views (`agents.probe`: one batched act, no env step): heldout/p_crop_<crop
    bin>_<target bin> and heldout/conditioning_index; 0 = off (rendering the first views once
    costs one env reset per held-out question)"""
    checkpoint_every: int = 10
    """write checkpoint.pt every N steps (and always at the end); 0: only at the end"""
    resume: bool = True
    """continue from output_dir/checkpoint.pt when it exists"""
    tensorboard: bool = True
    """write TensorBoard events to output_dir/tb (skipped if tensorboard is not installed)"""
    progress: bool = True
    """show a tqdm progress bar"""
    max_minutes: float = 0.0
    """stop early (with a checkpoint) when training has run this long; 0 = no time limit"""

    def __post_init__(self) -> None:
        self.bin_edges = tuple(float(e) for e in self.bin_edges)
        self.bin_names = tuple(str(n) for n in self.bin_names)
        if self.crop_bin_edges is not None:
            self.crop_bin_edges = tuple(float(e) for e in self.crop_bin_edges)
        _check(self.g1 >= 1 and self.g2 >= 1, f"g1 ({self.g1}) and g2 ({self.g2}) must be >= 1.")
        _check(
            self.rollouts_per_question >= 2,
            f"g1 * g2 ({self.g1} * {self.g2} = {self.rollouts_per_question}) must be >= 2: "
            "group advantages compare a question's rollouts with each other.",
        )
        _check(
            self.questions_per_step >= 1,
            f"questions_per_step ({self.questions_per_step}) must be >= 1.",
        )
        _check(
            self.train_samples >= 1 and self.eval_samples >= 0,
            f"train_samples ({self.train_samples}) must be >= 1 and eval_samples ({self.eval_samples}) >= 0.",
        )
        _check(self.num_envs >= 1, f"num_envs ({self.num_envs}) must be >= 1.")
        _check(self.env_threads >= 0, f"env_threads ({self.env_threads}) must be >= 0.")
        _check(
            self.total_steps >= 0 and self.total_env_steps >= 0,
            f"total_steps ({self.total_steps}) and total_env_steps ({self.total_env_steps}) must be >= 0.",
        )
        _check(self.update_epochs >= 1, f"update_epochs ({self.update_epochs}) must be >= 1.")
        _check(self.probe_every >= 0, f"probe_every ({self.probe_every}) must be >= 0.")
        _check(self.lr > 0, f"lr ({self.lr}) must be > 0.")
        _check(self.max_minutes >= 0, f"max_minutes ({self.max_minutes}) must be >= 0.")
        _check(
            self.grad_diagnostics_every >= 1,
            f"grad_diagnostics_every ({self.grad_diagnostics_every}) must be >= 1 (switch the "
            "diagnostics off with grad_diagnostics=false).",
        )
        _check(
            len(self.bin_names) == len(self.bin_edges) + 1,
            f"bin_names ({len(self.bin_names)} names) must have len(bin_edges) + 1 = "
            f"{len(self.bin_edges) + 1} entries.",
        )
        _check(
            self.overlong_max_len >= 0
            and 0 <= self.overlong_cache_len <= max(self.overlong_max_len, 0),
            f"need overlong_max_len ({self.overlong_max_len}) >= 0 and 0 <= overlong_cache_len "
            f"({self.overlong_cache_len}) <= overlong_max_len.",
        )
        options = estimator_options(self.algo)  # raises ValueError with the registered names
        unknown = sorted(set(self.adv_kwargs) - set(options))
        _check(
            not unknown,
            f"adv_kwargs {unknown} are not options of {self.algo!r}; its options: {sorted(options)}.",
        )
        _check(
            self.policy in list_policies(),
            f"policy {self.policy!r} is not registered; registered: {list_policies()}.",
        )
        self.loss_config  # noqa: B018 (validates clip/beta/agg)

    # ---------------------------------------------------------------- derived values
    @property
    def rollouts_per_question(self) -> int:
        """G = g1 * g2 rollouts in each question's group."""
        return self.g1 * self.g2

    @property
    def rollouts_per_step(self) -> int:
        """Episodes collected per step."""
        return self.questions_per_step * self.rollouts_per_question

    @property
    def loss_config(self) -> LossConfig:
        return LossConfig(
            clip_low=self.clip_low,
            clip_high=self.clip_high,
            beta=self.beta,
            agg=self.loss_agg,
            norm_len=self.norm_len,
        )

    @property
    def crop_edges(self) -> tuple[float, ...]:
        """Crop-bin edges of the diagnostics (see `crop_bin_edges`)."""
        if self.crop_bin_edges is not None:
            return self.crop_bin_edges
        if "rel_areas" in estimator_inputs(self.algo):
            edges = self.adv_kwargs.get(
                "bin_edges", estimator_options(self.algo).get("bin_edges", ())
            )
            return tuple(float(e) for e in edges)
        return self.bin_edges

    @property
    def eval_ids(self) -> list[int]:
        """Dataset indices of the held-out questions."""
        return list(range(self.train_samples, self.train_samples + self.eval_samples))

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["bin_edges"], out["bin_names"] = list(self.bin_edges), list(self.bin_names)
        return out


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


# ------------------------------------------------------------------------------ config I/O


def _field_docs(cls: type) -> dict[str, str]:
    """The docstring under each dataclass field (cleanrl/tyro style), for --help."""
    tree = ast.parse(textwrap.dedent(inspect.getsource(cls)))
    body = tree.body[0].body  # type: ignore[attr-defined]
    docs = {}
    for node, nxt in zip(body, body[1:], strict=False):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            if isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant):
                docs[node.target.id] = " ".join(str(nxt.value.value).split())
    return docs


def _set_dotted(target: dict[str, Any], key: str, value: Any) -> None:
    parts = key.split(".")
    for part in parts[:-1]:
        node = target.setdefault(part, {})
        if not isinstance(node, dict):
            raise ValueError(f"override {key!r}: {part!r} is not a mapping")
        target = node
    target[parts[-1]] = value


def _parse_value(text: str) -> Any:
    """YAML scalar/collection parsing: `1e-3` -> 0.001, `[1, 2]`, `{a: 1}`, `true`, `null`."""
    value = yaml.safe_load(text)
    if isinstance(value, str):  # yaml reads "1e-3" as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def load_config(
    path: str | os.PathLike | None = None, overrides: Sequence[str] = (), **kwargs: Any
) -> TrainerConfig:
    """A `TrainerConfig` from a YAML file, then `key=value` overrides, then keyword arguments.

    Overrides use dots for nested keys (`env_kwargs.max_pixels=200704`) and YAML for values.

    Raises:
        ValueError: an unknown key (with a close match), a malformed override, or a failed check.
    """
    data: dict[str, Any] = {}
    if path is not None:
        loaded = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        if not isinstance(loaded, dict):
            raise ValueError(
                f"{path}: the YAML must be a mapping of config keys, got {type(loaded).__name__}"
            )
        data.update(loaded)
    for item in overrides:
        if "=" not in item:
            raise ValueError(f"override {item!r} must look like key=value (e.g. lr=1e-3)")
        key, text = item.split("=", 1)
        _set_dotted(data, key.strip().lstrip("-").replace("-", "_"), _parse_value(text))
    for key, value in kwargs.items():
        _set_dotted(data, key, value)
    names = {f.name for f in dataclasses.fields(TrainerConfig)}
    unknown = [k for k in data if k not in names]
    if unknown:
        import difflib

        hints = {k: difflib.get_close_matches(k, sorted(names), n=1) for k in unknown}
        text = ", ".join(
            f"{k!r}" + (f" (did you mean {h[0]!r}?)" if h else "") for k, h in hints.items()
        )
        raise ValueError(f"unknown config keys: {text}. Valid keys: {sorted(names)}")
    return TrainerConfig(**data)


def _build_parser() -> argparse.ArgumentParser:
    docs = _field_docs(TrainerConfig)
    parser = argparse.ArgumentParser(
        prog="grounding-gym train",
        description="Train a policy with a GRPO-family algorithm (see agents/trainer.py).",
        epilog=(
            "Values are read as YAML (e.g. --env_kwargs '{max_turns: 3}'). Positional key=value "
            "overrides also work and may be dotted: env_kwargs.max_pixels=200704. Precedence: "
            "defaults < --config file < key=value < --flags."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", help="YAML file with TrainerConfig keys")
    parser.add_argument("overrides", nargs="*", help="key=value overrides (dotted keys allowed)")
    for f in dataclasses.fields(TrainerConfig):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()  # type: ignore[misc]
        flag = f"--{f.name}"
        alias = f"--{f.name.replace('_', '-')}"
        names = [flag] if alias == flag else [flag, alias]
        parser.add_argument(
            *names,
            dest=f.name,
            type=_parse_value,
            default=None,
            metavar="VALUE",
            help=f"{docs.get(f.name, '')} (default: {default!r})",
        )
    return parser


def parse_args(argv: Sequence[str]) -> TrainerConfig:
    """Parse `grounding-gym train` arguments into a `TrainerConfig`."""
    args = _build_parser().parse_args(list(argv))
    flags = {
        f.name: getattr(args, f.name)
        for f in dataclasses.fields(TrainerConfig)
        if getattr(args, f.name) is not None
    }
    return load_config(args.config, args.overrides, **flags)


# ------------------------------------------------------------------------------ building


def merge_kwargs(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with `overrides` merged in, key by key (nested dicts recursively)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_kwargs(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


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
            cache.install(env)
    return envs


def _module(policy: Any) -> torch.nn.Module:
    """The torch module holding the policy's weights (the policy itself, or `.model`)."""
    if isinstance(policy, torch.nn.Module):
        return policy
    model = getattr(policy, "model", None)
    if isinstance(model, torch.nn.Module):
        return model
    raise TypeError(f"{type(policy).__name__} is neither a torch.nn.Module nor has a .model module")


def old_logprobs(trajectories: Sequence[Trajectory], mask: torch.Tensor) -> torch.Tensor:
    """Sampling-time log-probs laid out like `mask` (B, T): row b's policy tokens in order."""
    old = torch.zeros(mask.shape, dtype=torch.float32, device=mask.device)
    values = [torch.from_numpy(t.old_logprobs()) for t in trajectories]
    flat = torch.cat(values) if values else torch.zeros(0)
    picked = mask.bool()
    if int(picked.sum()) != flat.numel():
        raise ValueError(
            f"the policy's mask has {int(picked.sum())} tokens but the trajectories hold "
            f"{flat.numel()} sampling log-probs"
        )
    old[picked] = flat.to(mask.device)
    return old


# ------------------------------------------------------------------------------ trainer


class Trainer:
    """Runs `TrainerConfig`: rollouts, advantages by name, clipped-surrogate updates, logs.

    Args:
        cfg: the run's configuration.
        policy: a built policy (default: `make_policy(cfg.policy, **cfg.policy_kwargs)`, built
            after seeding so initial weights depend on `cfg.seed`).
        envs: the rollout pool (default: `build_envs(cfg)`).
    """

    def __init__(self, cfg: TrainerConfig, policy: Any = None, envs: Sequence[Any] | None = None):
        self.cfg = cfg
        self.out = Path(cfg.output_dir)
        self.out.mkdir(parents=True, exist_ok=True)
        if cfg.torch_threads:
            torch.set_num_threads(cfg.torch_threads)
        _seed_everything(cfg.seed)
        self.policy = policy if policy is not None else make_policy(cfg.policy, **cfg.policy_kwargs)
        if cfg.init_checkpoint:
            state = load_checkpoint_file(cfg.init_checkpoint)
            _module(self.policy).load_state_dict(state)
        self.envs = list(envs) if envs is not None else build_envs(cfg)
        self.eval_envs = build_envs(cfg, cfg.eval_env_kwargs) if cfg.eval_env_kwargs else self.envs
        self.crop_names = crop_bin_names(len(cfg.crop_edges), cfg.bin_names)
        self.executor = ThreadPoolExecutor(cfg.env_threads) if cfg.env_threads else None
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.ref = self._frozen_copy() if cfg.beta > 0 else None
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
        """G1 x G2 rollouts per question (plain groups of G1 when G2 = 1)."""
        cfg = self.cfg
        self.policy.eval()
        if cfg.g2 == 1:
            return collect_groups(
                self.envs, self.policy, sample_ids, cfg.g1, seed=seed, executor=self.executor
            )
        return collect_srpo_groups(
            self.envs, self.policy, sample_ids, cfg.g1, cfg.g2, seed=seed, executor=self.executor
        )

    def evaluate(
        self, sample_ids: Sequence[Any] | None = None, prefix: str = "eval/"
    ) -> dict[str, float]:
        """Greedy rollouts (one per question) on the held-out questions: accuracy and IoU per bin."""
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
        self, trajectories: Sequence[Trajectory]
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """(B,) advantages from the registry estimator named `cfg.algo`, and their statistics
        with the scale-bias diagnostics (`agents.algos.diagnostics`, all but `grad_share`)."""
        cfg = self.cfg
        arrays = rollout_arrays(trajectories)
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
        loss_cfg = dataclasses.replace(self.cfg.loss_config, beta=0.0)
        adv = adv.to(logp.device)
        norms = np.zeros(len(names))
        for b in range(len(names)):
            bin_adv = adv * torch.from_numpy(target_bins == b).to(logp.device, logp.dtype)
            if not bool(bin_adv.any()):  # no rollout in the bin, or all with A = 0
                continue
            loss, _ = compute_loss(logp, old, None, bin_adv, mask, loss_cfg)
            grads = torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
            norms[b] = float(sum(float(g.pow(2).sum()) for g in grads if g is not None))
        fallback = shares(np.ones(len(target_bins)), target_bins, len(names))
        share = shares(norms, np.arange(len(names)), len(names), fallback=fallback)
        return {f"grad_share/{name}": float(share[b]) for b, name in enumerate(names)}

    def update(self, trajectories: Sequence[Trajectory], adv: torch.Tensor) -> dict[str, float]:
        """`update_epochs` gradient steps of `compute_loss` on one rollout batch (and, with
        `grad_diagnostics`, the `gradient_shares` of its first forward)."""
        cfg = self.cfg
        arrays = rollout_arrays(trajectories)
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
                old = old_logprobs(trajectories, mask)
            mask = mask * keep.to(mask.device, mask.dtype)[:, None]  # dynamic sampling: drop rows
            if epoch == 0 and self._grad_diagnostics_due():
                bins = bin_indices(arrays["target_rel_areas"], cfg.bin_edges)
                sums.update(self.gradient_shares(logp, old, adv, mask, bins))
            loss, metrics = compute_loss(
                logp, old, ref_logp, adv.to(logp.device), mask, cfg.loss_config
            )
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
        adv, adv_stats = self.advantages(trajectories)
        metrics = self.update(trajectories, adv)
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


# ------------------------------------------------------------------------------ CLI


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
