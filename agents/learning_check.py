"""The LVLM learning check on CPU: tiny Qwen2.5-VL from scratch, after cold-start SFT, after
GRPO and after SRPO from that SFT start, on held-out questions, over seeds (docs/lvlm.md).

    python -m agents.learning_check --seeds 0 1 2 --out runs/learning_check

Per seed: a tiny Qwen2.5-VL checkpoint (`build_tiny_qwen25vl(seed=seed)`: weights and
tokenizer), `oracle-crop` episodes on training questions turned into an SFT folder by
`agents.sft.write_sft_dataset`, a deliberately short SFT (`sft_rows` episodes, `sft_epochs`),
then `rl_steps` GRPO and SRPO steps from that checkpoint with equal rollouts per step. Every
stage is scored on the same held-out questions by `heldout_metrics`: `sampled` rollouts at the
policy's temperature (what RL optimises) and one greedy rollout per question.

The task (`task_config`): `GroundedVQA-HR-v0` on small synthetic images (224-448 px a side,
one "read" question: which pattern fills the ring of a named colour, 4 options), the tiny
model's pixel budget (56x56..112x112 px, <= 16 image tokens a view), 2 turns (crop, then
answer). The ring covers 1-5 % of the image, so the 112 px first view shows it at 6-20 px,
too small to resolve its pattern; a crop on it shows it at 56-112 px.

Outputs in `--out`: `results.json` (every stage's metrics per seed, wall times, the command),
`table.md` (mean and 95 % bootstrap interval over seeds), `learning_check.png` (held-out reward
per stage with intervals; RL training reward against env steps), and per-seed run folders.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from agents.analysis import bootstrap_ci, plot_curve_panels, save_figure
from agents.checkpoint import atomic_torch_save
from agents.config import TrainerConfig
from agents.policies.tiny_qwen import (
    TINY_MAX_PIXELS,
    TINY_MIN_PIXELS,
    build_tiny_qwen25vl,
    tiny_env_kwargs,
)
from agents.rollout import collect_groups, rollout_metrics
from agents.sft import sft_train, write_sft_dataset
from agents.trainer import Trainer
from grounding_gym.atomic import atomic_write_text
from grounding_gym.eval.harness import evaluate

__all__ = [
    "CheckConfig",
    "FLIP_STEPS",
    "FlippedSignTrainer",
    "REDUCED",
    "heldout_metrics",
    "main",
    "reading_accuracy",
    "reward_rise",
    "rise_main",
    "rl_trainer",
    "run_seed",
    "sft_start",
    "task_config",
]

STAGES = ("scratch", "sft", "sft+grpo", "sft+srpo")
"""The stages of the check, in order."""


@dataclasses.dataclass
class CheckConfig:
    """Sizes of the learning check (defaults: the run in docs/lvlm.md)."""

    sft_rows: int = 64
    """oracle-crop episodes in the SFT folder (few on purpose: an imperfect start)"""
    sft_epochs: float = 3.0
    """passes over them"""
    sft_lr: float = 3e-3
    """SFT AdamW learning rate"""
    rl_steps: int = 30
    """GRPO / SRPO optimisation steps from the SFT checkpoint"""
    rl_lr: float = 3e-4
    """RL AdamW learning rate (1e-3 drove seed 1 into an all-invalid mode: docs/lvlm.md)"""
    questions_per_step: int = 4
    """questions per RL step; each gets 4 rollouts (GRPO G = 4; SRPO G1 = 2 x G2 = 2)"""
    eval_questions: int = 64
    """held-out questions"""
    eval_rollouts: int = 4
    """sampled rollouts per held-out question"""
    max_new_tokens: int = 32
    """generation budget per turn, tokens (an oracle crop is ~25)"""


def task_config(model_path: str, seed: int, output_dir: str, **overrides: Any) -> TrainerConfig:
    """The learning task as a `TrainerConfig` for the tiny `hf` policy at `model_path`
    (`overrides`: any `TrainerConfig` field)."""
    dataset_kwargs = {
        "num_samples": 512,
        "seed": 7,
        "image_size": (224, 448),
        "families": ["read"],
        "content_kinds": ["pattern"],
        "target_rel_area": (0.01, 0.05),
    }
    fields: dict[str, Any] = dict(
        output_dir=output_dir,
        seed=seed,
        torch_threads=1,
        env_kwargs=tiny_env_kwargs(max_turns=2, dataset_kwargs=dataset_kwargs),
        num_envs=16,
        env_threads=0,
        train_samples=448,
        eval_samples=32,
        policy="hf",
        policy_kwargs={
            "model_name_or_path": model_path,
            "max_new_tokens": 32,
            "image_min_pixels": TINY_MIN_PIXELS,
            "image_max_pixels": TINY_MAX_PIXELS,
        },
        algo="grpo",
        questions_per_step=4,
        g1=4,
        g2=1,
        update_epochs=1,
        lr=1e-3,
        bin_edges=(0.02, 0.035),
        grad_diagnostics=False,
        checkpoint_every=0,
        final_eval=False,
        resume=False,
        tensorboard=False,
        progress=False,
    )
    fields.update(overrides)
    return TrainerConfig(**fields)


def heldout_metrics(trainer: Trainer, rollouts: int, seed: int) -> dict[str, float]:
    """`sampled/...`: `rollouts` sampled rollouts of each held-out question (torch seeded with
    `seed`); `greedy/...`: one greedy rollout each; keys of `agents.rollout.rollout_metrics`."""
    cfg = trainer.cfg
    torch.manual_seed(seed)
    trainer.policy.eval()
    sampled = collect_groups(trainer.eval_envs, trainer.policy, cfg.eval_ids, rollouts, seed=seed)
    out = rollout_metrics(sampled, cfg.bin_edges, cfg.bin_names, prefix="sampled/")
    out.update(trainer.evaluate(prefix="greedy/"))
    return out


def reading_accuracy(trainer: Trainer) -> dict[str, float]:
    """Can the policy read once the crop is right? On each held-out question the first turn is
    forced to the `oracle-crop` action and the policy answers greedily: `oracle_crop/acc`,
    `oracle_crop/answered`; `oracle_crop/best_letter_acc` is the accuracy of the best constant
    letter on these questions (what a letter prior alone reaches)."""
    from agents.baselines.heuristic import OracleCropAgent

    env = trainer.eval_envs[0]
    oracle = OracleCropAgent(env, decimals=0)
    trainer.policy.eval()
    correct, answered, truths = [], [], []
    for sample_id in trainer.cfg.eval_ids:
        obs, info = env.reset(options={"sample_id": sample_id})
        obs, _, _, _, info = env.step(oracle.act([obs], [info])[0])
        text = trainer.policy.act([obs], [info], greedy=True)[0].text
        info = env.step(text)[4]
        correct.append(bool(info.get("correct")))
        answered.append(info.get("action_kind") == "answer")
        truths.append(env.sample.answer)
    letters = {letter: truths.count(letter) for letter in set(truths)}
    return {
        "oracle_crop/acc": sum(correct) / len(correct),
        "oracle_crop/answered": sum(answered) / len(answered),
        "oracle_crop/best_letter_acc": max(letters.values()) / len(truths),
    }


def _sft_folder(cfg: TrainerConfig, check: CheckConfig, out: Path) -> Path:
    """oracle-crop episodes on training questions -> an SFT folder (`write_sft_dataset`)."""
    run = out / "oracle"
    evaluate(
        "oracle-crop",
        cfg.env_id,
        env_kwargs=cfg.env_kwargs,
        agent_kwargs={"decimals": 0},  # integer view px, as a model writes them
        n=check.sft_rows,
        out_dir=run,
        seed=cfg.seed,
        samples=(0, cfg.train_samples),
        progress=False,
        plots=False,
        overwrite=True,
    )
    write_sft_dataset(run, out / "sft_data", overwrite=True)
    return out / "sft_data"


def _sizes(check: CheckConfig, model_path: str) -> dict[str, Any]:
    """The `TrainerConfig` fields `check` sets."""
    return dict(
        questions_per_step=check.questions_per_step,
        lr=check.rl_lr,
        eval_samples=check.eval_questions,
        policy_kwargs={
            "model_name_or_path": model_path,
            "max_new_tokens": check.max_new_tokens,
            "image_min_pixels": TINY_MIN_PIXELS,
            "image_max_pixels": TINY_MAX_PIXELS,
        },
    )


def sft_start(check: CheckConfig, seed: int, out: Path) -> tuple[Trainer, Path, list[float]]:
    """The tiny checkpoint of `seed`, its `task_config` in a `Trainer` (policy from scratch),
    then SFT on `check.sft_rows` oracle-crop episodes in place. Returns `(trainer, sft state_dict
    path, SFT losses)`; the trainer's policy holds the SFT weights."""
    from datasets import load_from_disk

    out.mkdir(parents=True, exist_ok=True)
    model_path = build_tiny_qwen25vl(out / "tiny", seed=seed)
    trainer = Trainer(task_config(model_path, seed, str(out / "sft"), **_sizes(check, model_path)))
    cfg = trainer.cfg
    data = load_from_disk(str(_sft_folder(cfg, check, out)))
    losses = sft_train(trainer.policy, data, epochs=check.sft_epochs, lr=check.sft_lr, seed=seed)
    checkpoint = out / "sft.pt"
    atomic_torch_save(trainer.policy.state_dict(), checkpoint)
    return trainer, checkpoint, losses


def rl_trainer(
    cfg: TrainerConfig,
    checkpoint: Path,
    algo: str,
    steps: int,
    trainer_class: type[Trainer] = Trainer,
) -> Trainer:
    """A `trainer_class` for `steps` steps of `algo` from the SFT `checkpoint` (GRPO: G = 4;
    SRPO: G1 = 2 x G2 = 2, the same rollouts per step), writing to `cfg.output_dir`/../algo."""
    g1, g2 = (2, 2) if algo.startswith("srpo") else (4, 1)
    rl_cfg = dataclasses.replace(
        cfg,
        output_dir=str(Path(cfg.output_dir).parent / algo),
        algo=algo,
        g1=g1,
        g2=g2,
        total_steps=steps,
        init_checkpoint=str(checkpoint),
    )
    return trainer_class(rl_cfg)


def run_seed(check: CheckConfig, seed: int, out: Path) -> dict[str, Any]:
    """Every stage for one seed; returns `{stage: metrics, "seconds": {stage: s}, "history":
    {algo: metrics rows}}`."""
    result: dict[str, Any] = {"seconds": {}, "history": {}}
    eval_seed = 10**6 + seed
    start = time.perf_counter()
    model_path = build_tiny_qwen25vl(out / "tiny", seed=seed)
    scratch = Trainer(
        task_config(model_path, seed, str(out / "scratch"), **_sizes(check, model_path))
    )
    result["scratch"] = heldout_metrics(scratch, check.eval_rollouts, eval_seed)
    result["seconds"]["scratch"] = time.perf_counter() - start

    start = time.perf_counter()
    trainer, checkpoint, losses = sft_start(check, seed, out)
    result["sft"] = heldout_metrics(trainer, check.eval_rollouts, eval_seed)
    result["sft"]["sft_loss_first"], result["sft"]["sft_loss_last"] = losses[0], losses[-1]
    result["seconds"]["sft"] = time.perf_counter() - start

    for algo in ("grpo", "srpo"):
        start = time.perf_counter()
        rl = rl_trainer(trainer.cfg, checkpoint, algo, check.rl_steps)
        result["history"][algo] = rl.train()
        result[f"sft+{algo}"] = heldout_metrics(rl, check.eval_rollouts, eval_seed)
        result["seconds"][f"sft+{algo}"] = time.perf_counter() - start
    return result


class FlippedSignTrainer(Trainer):
    """A `Trainer` whose advantages have the wrong sign: the control that the learning check
    can fail (RL then pushes up the tokens of the worse rollouts)."""

    def advantages(
        self, trajectories: Sequence[Any], arrays: dict[str, Any] | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        adv, stats = super().advantages(trajectories, arrays)
        return -adv, stats


REDUCED = CheckConfig(rl_steps=15, eval_questions=32, eval_rollouts=2)
"""The reduced check of the tests (tests/agents/test_learning_check.py): the same SFT start, 15 GRPO
steps, 64 held-out rollouts."""

FLIP_STEPS = 4
"""GRPO steps with the flipped advantage sign in the fast test."""


def reward_rise(check: CheckConfig, seed: int, out: Path) -> dict[str, float]:
    """Held-out sampled reward of the SFT start (`sft`), after `check.rl_steps` GRPO steps from
    it (`grpo`), and after `FLIP_STEPS` steps with the advantage sign flipped (`flipped`)."""
    trainer, checkpoint, _ = sft_start(check, seed, out)
    eval_seed = 10**6 + seed
    row = {"sft": heldout_metrics(trainer, check.eval_rollouts, eval_seed)["sampled/reward"]}
    for name, steps, trainer_class in (
        ("grpo", check.rl_steps, Trainer),
        ("flipped", FLIP_STEPS, FlippedSignTrainer),
    ):
        rl = rl_trainer(trainer.cfg, checkpoint, "grpo", steps, trainer_class)
        rl.train()
        row[name] = heldout_metrics(rl, check.eval_rollouts, eval_seed)["sampled/reward"]
    return row


def rise_main(seeds: Sequence[int], out: Path) -> dict[str, Any]:
    """`reward_rise` of `REDUCED` per seed (the spread behind the tests' margins), written to
    `out/rise.json`."""
    rows = []
    for seed in seeds:
        start = time.perf_counter()
        row = {"seed": seed, **reward_rise(REDUCED, seed, out / f"seed{seed}")}
        row["s"] = time.perf_counter() - start
        rows.append(row)
        print(json.dumps(row), flush=True)
    record = {
        "check": dataclasses.asdict(REDUCED),
        "flip_steps": FLIP_STEPS,
        "rows": rows,
        "rise": list(bootstrap_ci([r["grpo"] - r["sft"] for r in rows])),
        "fall": list(bootstrap_ci([r["sft"] - r["flipped"] for r in rows])),
    }
    atomic_write_text(out / "rise.json", json.dumps(record, indent=2) + "\n")
    return record


def reading_main(seeds: Sequence[int], out: Path) -> dict[str, Any]:
    """`reading_accuracy` of every stage's saved weights in a finished check's `out` folder
    (`seed*/sft.pt`, `seed*/{grpo,srpo}/checkpoint.pt`), written to `out/reading.json`."""
    check = CheckConfig()
    rows: dict[str, Any] = {}
    for seed in seeds:
        folder = out / f"seed{seed}"
        model_path = str(folder / "tiny")
        cfg = task_config(
            model_path, seed, str(folder / "reading" / "scratch"), **_sizes(check, model_path)
        )
        rows[str(seed)] = {"scratch": reading_accuracy(Trainer(cfg))}
        sft_cfg = dataclasses.replace(cfg, init_checkpoint=str(folder / "sft.pt"))
        rows[str(seed)]["sft"] = reading_accuracy(Trainer(sft_cfg))
        for algo in ("grpo", "srpo"):
            trainer = rl_trainer(cfg, folder / "sft.pt", algo, check.rl_steps)
            trainer.load_checkpoint(folder / algo / "checkpoint.pt")
            rows[str(seed)][f"sft+{algo}"] = reading_accuracy(trainer)
        print(json.dumps({seed: rows[str(seed)]}), flush=True)
    atomic_write_text(out / "reading.json", json.dumps(rows, indent=2) + "\n")
    return rows


METRICS = (
    ("sampled/reward", "held-out reward (sampled)"),
    ("sampled/acc", "accuracy (sampled)"),
    ("sampled/reward_format", "format (sampled)"),
    ("sampled/miou", "mIoU (sampled)"),
    ("greedy/reward", "reward (greedy)"),
    ("greedy/acc", "accuracy (greedy)"),
)
"""Table columns: (metric key, header)."""


def summarise(results: dict[int, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    """(markdown table, JSON summary): per stage, mean [95 % bootstrap interval] over seeds of
    each of `METRICS`, the wall time, and the paired RL-minus-SFT reward differences."""
    seeds = sorted(results)
    header = "| stage | " + " | ".join(h for _, h in METRICS) + " | wall s / seed |"
    lines = [header, "|" + "---|" * (len(METRICS) + 2)]
    summary: dict[str, Any] = {}
    for stage in STAGES:
        cells, summary[stage] = [], {}
        for key, _ in METRICS:
            mean, low, high = bootstrap_ci(
                [results[s][stage].get(key, float("nan")) for s in seeds]
            )
            summary[stage][key] = [mean, low, high]
            cells.append(f"{mean:.3f} [{low:.3f}, {high:.3f}]")
        wall = sum(results[s]["seconds"][stage] for s in seeds) / len(seeds)
        lines.append(f"| {stage} | " + " | ".join(cells) + f" | {wall:.0f} |")
    for algo in ("grpo", "srpo"):
        diffs = [
            results[s][f"sft+{algo}"]["sampled/reward"] - results[s]["sft"]["sampled/reward"]
            for s in seeds
        ]
        summary[f"sft+{algo} - sft"] = {"per_seed": diffs, "ci": list(bootstrap_ci(diffs))}
        mean, low, high = bootstrap_ci(diffs)
        lines.append(
            f"\nPaired sft+{algo} - sft held-out sampled reward: {mean:+.3f} "
            f"[{low:+.3f}, {high:+.3f}] (per seed: {', '.join(f'{d:+.3f}' for d in diffs)})"
        )
    return "\n".join(lines) + "\n", summary


def plot(results: dict[int, dict[str, Any]], summary: dict[str, Any], path: Path) -> None:
    """Held-out sampled reward per stage (mean, 95 % interval, seeds as dots) and the RL
    training reward against env steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    key = "sampled/reward"
    for i, stage in enumerate(STAGES):
        mean, low, high = summary[stage][key]
        axes[0].bar(i, mean, color="C0", alpha=0.6)
        axes[0].errorbar(i, mean, yerr=[[mean - low], [high - mean]], color="k", capsize=4)
        axes[0].plot([i] * len(results), [r[stage][key] for r in results.values()], "k.")
    axes[0].set_xticks(range(len(STAGES)), STAGES)
    axes[0].set(title="held-out reward (sampled), 95 % CI", ylabel="reward")
    groups = {algo: [r["history"][algo] for r in results.values()] for algo in ("grpo", "srpo")}
    plot_curve_panels([axes[1]], groups, [("rollout/reward", "training reward (rollouts)")])
    fig.tight_layout()
    save_figure(fig, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m agents.learning_check", description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--out", default="runs/learning_check")
    for f in dataclasses.fields(CheckConfig):
        parser.add_argument(
            f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default
        )
    parser.add_argument(
        "--rise", action="store_true", help="only the reduced check of the tests (`rise_main`)"
    )
    parser.add_argument(
        "--reading",
        action="store_true",
        help="only `reading_accuracy` of the saved stages of a finished check in --out",
    )
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    if args.reading:
        reading_main(args.seeds, Path(args.out))
        return 0
    if args.rise:
        print(json.dumps(rise_main(args.seeds, Path(args.out)), indent=2))
        return 0
    check = CheckConfig(**{f.name: getattr(args, f.name) for f in dataclasses.fields(CheckConfig)})
    out = Path(args.out)
    results: dict[int, dict[str, Any]] = {}
    for seed in args.seeds:  # a seed with a result.json is done (deterministic): reuse it
        done = out / f"seed{seed}" / "result.json"
        if done.exists() and json.loads(done.read_text())["check"] == dataclasses.asdict(check):
            results[seed] = json.loads(done.read_text())["result"]
        else:
            results[seed] = run_seed(check, seed, out / f"seed{seed}")
            record = {"check": dataclasses.asdict(check), "result": results[seed]}
            atomic_write_text(done, json.dumps(record) + "\n")
        print(json.dumps({seed: {s: results[seed][s]["sampled/reward"] for s in STAGES}}))
    table, summary = summarise(results)
    record = {
        "command": "python -m agents.learning_check "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "check": dataclasses.asdict(check),
        "seeds": args.seeds,
        "wall_s_per_seed": {s: sum(r["seconds"].values()) for s, r in results.items()},
        "summary": summary,
        "results": {s: {k: v for k, v in r.items() if k != "history"} for s, r in results.items()},
    }
    atomic_write_text(out / "results.json", json.dumps(record, indent=2) + "\n")
    atomic_write_text(out / "table.md", table)
    plot(results, summary, out / "learning_check.png")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
