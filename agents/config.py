"""`TrainerConfig`: everything a training run depends on, its checks, and how it is read:
`load_config` (YAML file, then `key=value` overrides, then keyword arguments) and `parse_args`
(`grounding-gym train` flags, one per field, with the field's docstring as help).
"""

from __future__ import annotations

import argparse
import ast
import copy
import dataclasses
import inspect
import os
import textwrap
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from agents.algos import (
    LossConfig,
    estimator_inputs,
    estimator_options,
)
from agents.policies import list_policies
from grounding_gym.scale import HR_BIN_EDGES, check_bin_edges
from grounding_gym.validation import did_you_mean

__all__ = ["TrainerConfig", "load_config", "merge_kwargs", "parse_args"]


@dataclass
class TrainerConfig:
    """Everything a training run depends on. Fields are grouped:

    > experiment: `exp_name`, `output_dir`, `seed`, `torch_threads`
    > environment: `env_id`, `env_kwargs`, `eval_env_kwargs`, `num_envs`, `env_threads`,
      `share_images`, `cache_first_views`, `train_samples`, `eval_samples`, `bin_edges`,
      `bin_names`, `crop_bin_edges`
    > policy: `policy`, `policy_kwargs`, `init_checkpoint`
    > algorithm: `algo`, `adv_kwargs`, `questions_per_step`, `g1`, `g2`, `loss` (a
      `LossConfig`: `clip_low`, `clip_high`, `beta`, `agg`, `norm_len`), `dynamic_sampling`,
      `overlong_max_len`, `overlong_cache_len`, `scale_curiosity`, `scale_exploration`,
      `scale_floor`
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
    """render each sample's first view once for the whole pool
    (`grounding_gym.renderer.FirstViewCache`):
    all rollouts of a question start from the same view"""
    train_samples: int = 4096
    """questions [0, train_samples) of the dataset are drawn for training"""
    eval_samples: int = 64
    """questions [train_samples, train_samples + eval_samples) are held out for evaluation"""
    bin_edges: tuple[float, ...] = HR_BIN_EDGES
    """edges on the TARGET's relative area for the per-scale metrics (acc_small, ...); the
    default is synthetic-hr's declared edges (`grounding_gym.scale.HR_BIN_EDGES`)"""
    bin_names: tuple[str, ...] = ("small", "medium", "large")
    """names of the scale bins, smallest first: len(bin_edges) + 1 names"""
    crop_bin_edges: tuple[float, ...] | None = None
    """edges on the first CROP's relative area for the crop-bin diagnostics
    (crop_bin_occupancy/<bin>, multi_bin_group_frac, p_crop_<crop bin>_<target bin>); None: the
    estimator's own crop bins (srpo's adv_kwargs bin_edges) if it takes crop areas, else
    bin_edges"""

    # > policy
    policy: str = "tiny"
    """policy name in `agents.policies` (tiny | hf | vllm | anything registered)"""
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
    loss: LossConfig = field(default_factory=LossConfig)
    """the policy loss, `agents.algos.LossConfig` (its fields documented there): a mapping in
    YAML (`loss: {clip_high: 0.28, agg: token-mean}`), dotted in overrides and flags
    (`loss.beta=0.04`, `--loss.agg seq-mean-token-mean`)"""
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
    scale_exploration: str = "off"
    """behaviour distribution of each rollout's first crop scale (`agents.algos.exploration`):
    off (pi itself), forced (a question's g1 crops at distinct scales, `forced_scales`), floor
    (mix = (1 - scale_floor) pi + scale_floor / K); the scale token's advantage is weighted by
    pi / mu, not clipped. Needs a policy with discrete crop scales (tiny)"""
    scale_floor: float = 0.1
    """eps of scale_exploration=floor, in (0, 1)"""

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
        self.bin_edges = check_bin_edges(self.bin_edges)
        self.bin_names = tuple(str(n) for n in self.bin_names)
        if self.crop_bin_edges is not None:
            self.crop_bin_edges = check_bin_edges(self.crop_bin_edges, allow_empty=True)
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
            f"train_samples ({self.train_samples}) must be >= 1 and eval_samples "
            f"({self.eval_samples}) >= 0.",
        )
        _check(self.num_envs >= 1, f"num_envs ({self.num_envs}) must be >= 1.")
        _check(self.env_threads >= 0, f"env_threads ({self.env_threads}) must be >= 0.")
        _check(
            self.total_steps >= 0 and self.total_env_steps >= 0,
            f"total_steps ({self.total_steps}) and total_env_steps ({self.total_env_steps}) must "
            "be >= 0.",
        )
        _check(self.update_epochs >= 1, f"update_epochs ({self.update_epochs}) must be >= 1.")
        _check(self.lr > 0, f"lr ({self.lr}) must be > 0.")
        _check(self.max_minutes >= 0, f"max_minutes ({self.max_minutes}) must be >= 0.")
        _check(self.probe_every >= 0, f"probe_every ({self.probe_every}) must be >= 0.")
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
        _check(
            self.scale_exploration in SCALE_EXPLORATION,
            f"scale_exploration ({self.scale_exploration!r}) must be one of {SCALE_EXPLORATION}."
            + did_you_mean(self.scale_exploration, SCALE_EXPLORATION),
        )
        _check(
            0.0 < self.scale_floor < 1.0 or self.scale_exploration != "floor",
            f"scale_floor ({self.scale_floor}) must be in (0, 1) with scale_exploration=floor.",
        )
        options = estimator_options(self.algo)  # raises ValueError with the registered names
        unknown = sorted(set(self.adv_kwargs) - set(options))
        _check(
            not unknown,
            f"adv_kwargs {unknown} are not options of {self.algo!r}; its options: "
            f"{sorted(options)}.",
        )
        _check(
            self.policy in list_policies(),
            f"policy {self.policy!r} is not registered; registered: {list_policies()}.",
        )
        if isinstance(self.loss, Mapping):  # from YAML or overrides; LossConfig checks values
            names = [f.name for f in dataclasses.fields(LossConfig)]
            unknown = sorted(set(self.loss) - set(names))
            _check(not unknown, f"loss keys {unknown} are not LossConfig fields {names}.")
            self.loss = LossConfig(**self.loss)

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


SCALE_EXPLORATION = ("off", "forced", "floor")
"""Values of `TrainerConfig.scale_exploration`."""


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(message)


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
        text = ", ".join(
            f"{k!r}" + did_you_mean(k, sorted(names), " (did you mean {!r}?)") for k in unknown
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
    loss_docs = _field_docs(LossConfig)
    for f in dataclasses.fields(LossConfig):
        names = sorted({f"--loss.{f.name}", f"--loss.{f.name.replace('_', '-')}"})
        parser.add_argument(
            *names,
            dest=f"loss.{f.name}",
            type=_parse_value,
            default=None,
            metavar="VALUE",
            help=f"{loss_docs.get(f.name, '')} (default: {f.default!r})",
        )
    return parser


def parse_args(argv: Sequence[str]) -> TrainerConfig:
    """Parse `grounding-gym train` arguments into a `TrainerConfig`."""
    args = vars(_build_parser().parse_args(list(argv)))
    config, overrides = args.pop("config"), args.pop("overrides")
    flags = {key: value for key, value in args.items() if value is not None}
    return load_config(config, overrides, **flags)


def merge_kwargs(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with `overrides` merged in, key by key (nested dicts recursively)."""
    out = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge_kwargs(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out
