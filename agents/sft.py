"""Cold-start SFT: an eval run's episodes as a TRL vision dataset, and SFT of `HFPolicy` on it.

Two commands::

    grounding-gym eval --agent oracle-crop --out runs/oracle ...      # any eval run
    grounding-gym sft-data --from runs/oracle --out data/oracle-sft --only-correct
    grounding-gym sft --config train.yaml --data data/oracle-sft --out sft.pt --epochs 3
    grounding-gym train --config train.yaml init_checkpoint=sft.pt    # RL from the SFT start

`sft-data` rebuilds every recorded episode by stepping the run's env (`config.json`: env id and
kwargs) from the recorded reset seed with the recorded action texts, so the rows hold the
conversation exactly as the env rendered it (system prompt, questions, the chat format of the
env: `<crop>` tags or DeepEyes tool calls, error messages after invalid actions) and every view
the env showed. A first view whose hash differs from the record's `first_view_sha1` (another
generator version or image decoder) is an error, not silently different data.

Dataset columns (TRL's conversational vision format, `datasets.load_from_disk` loads it):

| column | type | meaning |
|--------|------|---------|
| `messages` | list of `{role, content: [{type, text}]}` | system / user / assistant turns in order; `type` "text" (with `text`) or "image" (a placeholder, `text` None) |
| `images` | list of images | one per image part of `messages`, in order: the first view, then each crop's view (PNG) |
| `sample_id`, `episode`, `correct`, `iou`, `return` | str, int, bool, float or None, float | from the eval record |

`sft` trains with `HFPolicy`'s own token bookkeeping: each row becomes a `Trajectory` whose
assistant turns are the tokenized action texts plus `<|im_end|>`; the loss is the mean negative
log-likelihood of exactly the tokens `HFPolicy.trajectory_logprobs` masks as the policy's (the
assistant turns, end-of-turn included; system/user text, image pads and role headers excluded),
so the SFT and RL losses see the same tokens. It writes a policy `state_dict` that
`TrainerConfig.init_checkpoint` loads. (TRL's `SFTTrainer` also trains on the folder, see
docs/lvlm.md; its assistant-only loss on vision data needs transformers >= 5.18.)
"""  # noqa: E501 (table rows)

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from grounding_gym.eval.harness import CONFIG_FILE, EPISODES_FILE, make_eval_env
from grounding_gym.eval.records import read_records, view_sha1

__all__ = [
    "dataset_features",
    "episode_rows",
    "main",
    "row_trajectory",
    "sft_data_main",
    "sft_train",
    "write_sft_dataset",
]


def dataset_features() -> Any:
    """The `datasets.Features` of an SFT folder (see the module docstring)."""
    from datasets import Features, Image, List, Value

    part = {"type": Value("string"), "text": Value("string")}
    return Features(
        {
            "messages": List({"role": Value("string"), "content": List(part)}),
            "images": List(Image()),
            "sample_id": Value("string"),
            "episode": Value("int64"),
            "correct": Value("bool"),
            "iou": Value("float64"),
            "return": Value("float64"),
        }
    )


def _load_run(run_dir: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    config_path, episodes_path = run_dir / CONFIG_FILE, run_dir / EPISODES_FILE
    if not config_path.is_file() or not episodes_path.is_file():
        raise ValueError(
            f"{run_dir} is not an eval run (needs {CONFIG_FILE} and {EPISODES_FILE}); make one "
            "with "
            "`grounding-gym eval --agent oracle-crop --out DIR ...`"
        )
    config = json.loads(config_path.read_text(encoding="utf-8"))
    if not isinstance(config, dict) or "env_id" not in config:
        raise ValueError(f"{config_path}: no 'env_id' field; is this a grounding-gym eval run?")
    return config, read_records(episodes_path, repair=False)


def _keep(record: Mapping[str, Any], only_correct: bool, min_iou: float | None) -> bool:
    if only_correct and not record.get("correct"):
        return False
    if min_iou is not None:
        iou = record.get("iou")
        return iou is not None and iou >= min_iou
    return True


def _row_messages(messages: Sequence[Mapping[str, Any]]) -> tuple[list[dict], list[Any]]:
    """Env messages (image parts hold PIL images) -> (TRL messages with image placeholders,
    the images in order)."""
    rows, images = [], []
    for message in messages:
        content = message.get("content")
        if isinstance(content, str):
            content = [{"type": "text", "text": content}]
        parts = []
        for part in content or []:
            if part.get("type") == "image":
                images.append(part["image"])
                parts.append({"type": "image", "text": None})
            else:
                parts.append({"type": "text", "text": str(part.get("text", ""))})
        rows.append({"role": str(message["role"]), "content": parts})
    return rows, images


def episode_rows(
    run_dir: str | Path, *, only_correct: bool = False, min_iou: float | None = None
) -> Iterator[dict[str, Any]]:
    """The rows of `run_dir`'s episodes that pass the filters, rebuilt through the run's env.

    Args:
        run_dir: a folder written by `grounding-gym eval --out` (`config.json`, `episodes.jsonl`).
        only_correct: keep episodes whose answer was right.
        min_iou: keep episodes whose best crop IoU is at least this (episodes without crops or
            without ground-truth boxes are dropped).

    Yields:
        Dicts with the columns of `dataset_features()` (images as PIL).

    Raises:
        ValueError: not an eval run, or the env renders an episode differently from the record
            (first view hash, or the replayed episode's outcome).
    """
    run_dir = Path(run_dir)
    config, records = _load_run(run_dir)
    env, _, _ = make_eval_env(config["env_id"], env_kwargs=config.get("env_kwargs") or {})
    try:
        for record in records:
            if not _keep(record, only_correct, min_iou):
                continue
            yield _replay(env, record, run_dir)
    finally:
        env.close()


def _replay(env: Any, record: Mapping[str, Any], run_dir: Path) -> dict[str, Any]:
    where = f"{run_dir / EPISODES_FILE}, episode {record.get('episode')}"
    obs, info = env.reset(seed=record["seed"], options={"sample_id": record["sample_index"]})
    expected = record.get("first_view_sha1")
    if expected is not None and view_sha1(obs["image"]) != expected:
        raise ValueError(
            f"{where}: the env's first view differs from the recorded one (sha1 "
            f"{view_sha1(obs['image'])} != {expected}); the dataset generator, image files or "
            "decoder changed since the run: evaluate again"
        )
    total = 0.0
    for action in record.get("actions") or []:
        obs, reward, _, _, info = env.step(action)
        total += float(reward)
    if not math.isclose(total, float(record.get("return", total)), abs_tol=1e-6):
        raise ValueError(
            f"{where}: replaying the recorded actions returns {total:.6f}, the record says "
            f"{record.get('return')}; the env's kwargs or reward changed since the run"
        )
    messages, images = _row_messages(info["messages"])
    return {
        "messages": messages,
        "images": images,
        "sample_id": str(record.get("sample_id")),
        "episode": int(record.get("episode", -1)),
        "correct": bool(record.get("correct")),
        "iou": record.get("iou"),
        "return": float(record.get("return", total)),
    }


def write_sft_dataset(
    run_dir: str | Path,
    out_dir: str | Path,
    *,
    only_correct: bool = False,
    min_iou: float | None = None,
    overwrite: bool = False,
) -> Any:
    """Write `episode_rows(run_dir, ...)` as a `datasets` folder (`save_to_disk`), atomically:
    built in a sibling temporary folder, then renamed into place. Returns the `Dataset`.

    Raises:
        ValueError: no episode passes the filters, or `out_dir` exists and `overwrite` is False.
    """
    from datasets import Dataset

    out = Path(out_dir)
    if out.exists() and not overwrite:
        raise ValueError(f"{out} exists; pass --overwrite to replace it")
    rows = list(episode_rows(run_dir, only_correct=only_correct, min_iou=min_iou))
    if not rows:
        raise ValueError(
            f"no episode of {run_dir} passes the filters (only_correct={only_correct}, "
            f"min_iou={min_iou}); loosen them"
        )
    dataset = Dataset.from_list(rows, features=dataset_features())
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        dataset.save_to_disk(str(tmp / "data"))
        if out.exists():
            shutil.rmtree(out)
        (tmp / "data").rename(out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dataset


# ------------------------------------------------------------------------------ SFT


def row_trajectory(policy: Any, row: Mapping[str, Any]) -> Any:
    """A dataset row as a `Trajectory` that `policy.trajectory_logprobs` scores: the row's
    images put back into its image parts, each assistant turn tokenized (`policy.tokenizer`)
    with the end-of-turn token appended, as `HFPolicy.act` would have generated it."""
    from agents.policies.base import Generation, Trajectory, Turn

    images = iter(row["images"])
    messages, turns = [], []
    for message in row["messages"]:
        content = []
        for part in message["content"]:
            if part["type"] == "image":
                content.append({"type": "image", "image": next(images)})
            else:
                content.append({"type": "text", "text": part["text"]})
        messages.append({"role": message["role"], "content": content})
        if message["role"] == "assistant":
            text = "".join(p["text"] for p in content if p["type"] == "text")
            ids = policy.tokenizer(text, add_special_tokens=False)["input_ids"]
            ids = (*ids, policy.eos_token_ids[0])
            generation = Generation(text=text, token_ids=ids, logprobs=(0.0,) * len(ids))
            turns.append(
                Turn(observation={}, generation=generation, reward=0.0, reward_terms={}, info={})
            )
    return Trajectory(
        sample_id=str(row.get("sample_id")), group_id=0, turns=turns, messages=messages
    )


def sft_train(
    policy: Any,
    dataset: Sequence[Mapping[str, Any]],
    *,
    epochs: float = 1.0,
    batch_size: int = 8,
    lr: float = 1e-3,
    max_grad_norm: float = 1.0,
    seed: int = 0,
) -> list[float]:
    """Supervised steps on `dataset` rows: AdamW on the mean NLL of the policy's tokens.

    Args:
        policy: an `HFPolicy` (anything with `tokenizer`, `eos_token_ids`,
            `trajectory_logprobs` and `parameters`).
        dataset: rows with `messages` and `images` (a `datasets.Dataset` or a list).
        epochs: passes over the rows (fractions allowed: 0.5 trains on half of one shuffle).
        batch_size: rows per step.
        lr: AdamW learning rate.
        max_grad_norm: gradient clipping; 0 disables it.
        seed: the row order.

    Returns:
        The loss (nats per policy token) of every step.
    """
    import torch

    if epochs <= 0 or batch_size < 1:
        raise ValueError(f"epochs must be > 0 and batch_size >= 1, got {epochs}, {batch_size}")
    rng = np.random.default_rng(seed)
    n = len(dataset)
    order = np.concatenate([rng.permutation(n) for _ in range(max(1, math.ceil(epochs)))])
    order = order[: max(1, round(epochs * n))]
    params = [p for p in policy.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    policy.train()
    losses = []
    for start in range(0, len(order), batch_size):
        batch = [row_trajectory(policy, dataset[int(i)]) for i in order[start : start + batch_size]]
        logp, mask = policy.trajectory_logprobs(batch)  # (B, T) each
        loss = -(logp * mask).sum() / mask.sum().clamp(min=1.0)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm > 0:
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        optimizer.step()
        losses.append(float(loss.detach()))
    policy.eval()
    return losses


# ------------------------------------------------------------------------------ CLI


def sft_data_main(argv: Sequence[str] | None = None) -> int:
    """`grounding-gym sft-data --from RUN --out DIR [--only-correct] [--min-iou X]`."""
    parser = argparse.ArgumentParser(
        prog="grounding-gym sft-data",
        description="Write an eval run's episodes as a TRL conversational vision dataset.",
    )
    parser.add_argument("--from", dest="run", required=True, help="eval run folder (--out of eval)")
    parser.add_argument("--out", required=True, help="dataset folder to write (save_to_disk)")
    parser.add_argument("--only-correct", action="store_true", help="keep correct episodes only")
    parser.add_argument("--min-iou", type=float, default=None, help="keep episodes with IoU >= X")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    dataset = write_sft_dataset(
        args.run,
        args.out,
        only_correct=args.only_correct,
        min_iou=args.min_iou,
        overwrite=args.overwrite,
    )
    n_images = sum(len(images) for images in dataset["images"])
    print(json.dumps({"out": args.out, "rows": len(dataset), "images": n_images}))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """`grounding-gym sft --config train.yaml --data DIR --out sft.pt [--epochs E --lr LR]`:
    SFT of the config's policy (`policy`, `policy_kwargs`, `seed`), saved for `init_checkpoint`."""
    import torch

    from agents.checkpoint import atomic_torch_save
    from agents.config import load_config
    from agents.policies import make_policy

    parser = argparse.ArgumentParser(
        prog="grounding-gym sft", description="Cold-start SFT of a trainer config's policy."
    )
    parser.add_argument("--config", required=True, help="the RL run's trainer YAML")
    parser.add_argument("--data", required=True, help="a folder written by `sft-data`")
    parser.add_argument("--out", required=True, help="state_dict to write (.pt)")
    parser.add_argument("--epochs", type=float, default=1.0)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    args, overrides = parser.parse_known_args(sys.argv[1:] if argv is None else argv)
    from datasets import load_from_disk

    cfg = load_config(args.config, overrides)
    torch.manual_seed(cfg.seed)
    policy = make_policy(cfg.policy, **cfg.policy_kwargs)
    if not hasattr(policy, "tokenizer"):
        raise ValueError(
            f"sft trains a tokenizer-based policy (policy: hf), got policy {cfg.policy!r} "
            f"({type(policy).__name__}); set `policy: hf` and policy_kwargs.model_name_or_path"
        )
    start = time.perf_counter()
    losses = sft_train(
        policy,
        load_from_disk(args.data),
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=cfg.seed,
    )
    atomic_torch_save(policy.state_dict(), args.out)
    summary = {"out": args.out, "steps": len(losses), "first_loss": losses[0]}
    summary.update(last_loss=losses[-1], seconds=round(time.perf_counter() - start, 1))
    print(json.dumps(summary))
    return 0
