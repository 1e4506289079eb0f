"""Supervised warm start of `TinyPolicy`'s reader: the answer head, on crops that show the content.

RL on grounded VQA starts from a model that can already read (an instruction-tuned LVLM); what
RL has to learn is where and how wide to look. This gives the tiny policy the same start:
cross-entropy on the correct letter, over views that a scripted agent cropped around each
target at every crop scale that keeps its content legible (`legible_scales`), trains only the
answer path (`answer_linear`, `answer_mlp`, `option_emb`). The where/how-wide parameters
(target map, region gains, scale biases) keep their initial values, so the scale prior of the
warm-started policy is exactly the untrained one.

    python -m agents.reader_sft --config examples/scale_bias.yaml --samples 400 --out reader.pt

The result is a policy `state_dict` that `TrainerConfig.init_checkpoint` loads.
"""

from __future__ import annotations

import argparse
import copy
import sys
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from agents.checkpoint import atomic_torch_save
from agents.config import TrainerConfig, load_config, merge_kwargs
from agents.policies.tiny import TinyPolicy
from grounding_gym.actions import action_frame, format_crop
from grounding_gym.geometry import Box, from_original

__all__ = ["READER_PARAMETERS", "crop_views", "train_reader", "main"]

READER_PARAMETERS = ("answer_linear", "answer_mlp", "option_emb")
"""Submodules of `TinyPolicy` the warm start trains; every other parameter is left as built."""


def crop_views(env: Any, sample_id: int, scales: Sequence[float]) -> list[tuple[dict, dict, str]]:
    """(observation, info, prompt) after one crop of each scale (fraction of the first view's
    side) centred on the target, slid inside the image, and the prompt of the first turn. The
    crop is written in the env's `coord_frame` through `grounding_gym.geometry.from_original`."""
    out = []
    for scale in scales:
        obs, info = env.reset(options={"sample_id": sample_id})
        prompt = str(obs["dialogue"])
        w, h = info["image_size"]
        target = env.unwrapped.sample.gt_boxes[0]
        side_w, side_h = scale * w, scale * h
        cx, cy = (target.x1 + target.x2) / 2, (target.y1 + target.y2) / 2
        x1, y1 = (
            min(max(cx - side_w / 2, 0.0), w - side_w),
            min(max(cy - side_h / 2, 0.0), h - side_h),
        )
        crop = Box(x1, y1, x1 + side_w, y1 + side_h)  # original px
        frame = info.get("coord_frame", "view")
        box = from_original(crop, frame, *action_frame(info))
        obs, _, _, _, info = env.step(
            format_crop(box.as_tuple(), decimals=1 if frame == "view" else 4)
        )
        out.append((obs, info, prompt))
    return out


def train_reader(
    policy: TinyPolicy,
    views: Sequence[tuple[dict, dict, str]],
    answers: Sequence[int],
    *,
    epochs: int = 60,
    lr: float = 1e-2,
    seed: int = 0,
) -> list[float]:
    """Full-batch cross-entropy of the letter given "answer" over `views` (answers: option
    indices), training only `READER_PARAMETERS`. Returns the loss per epoch."""
    torch.manual_seed(seed)
    params = [p for name in READER_PARAMETERS for p in getattr(policy, name).parameters()]
    optimizer = torch.optim.Adam(params, lr=lr)
    batch = policy._batch([v[0] for v in views], [v[1] for v in views], [v[2] for v in views])
    target = torch.tensor(list(answers))
    losses = []
    for _ in range(epochs):
        _, _, letter_logp = policy._forward(batch)
        loss = F.nll_loss(letter_logp, target)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    return losses


def legible_scales(cfg: TrainerConfig, group: int) -> list[float]:
    """Crop scales (fractions of the first view) that keep a target of mixture `group` legible:
    the smallest for the small group (0), the others for larger ones."""
    scales = sorted(cfg.policy_kwargs.get("scales", ()))
    return scales[:1] if group == 0 else scales[1:]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--config", required=True, help="trainer YAML (env, dataset and policy kwargs)"
    )
    parser.add_argument(
        "--samples", type=int, default=400, help="training questions, balanced over target groups"
    )
    parser.add_argument(
        "--holdout", type=int, default=100, help="questions after them, for the reported accuracy"
    )
    parser.add_argument("--epochs", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="where to write the policy state_dict (.pt)")
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    import gymnasium as gym

    import grounding_gym  # noqa: F401

    cfg = load_config(args.config, [f"seed={args.seed}"])
    kwargs = merge_kwargs(cfg.env_kwargs, {"dataset_kwargs": {"target_mix": None}})  # equal groups
    env = gym.make(cfg.env_id, **kwargs)
    torch.manual_seed(args.seed)
    policy = TinyPolicy(**cfg.policy_kwargs)
    initial = copy.deepcopy(policy.state_dict())

    def views_of(ids: range, every_scale: bool = False) -> tuple[list, list, list]:
        views, answers, keys = [], [], []
        for i in ids:
            env.reset(options={"sample_id": i})
            sample = env.unwrapped.sample
            group = int(sample.metadata.get("target_group", 0))
            scales = (
                sorted(cfg.policy_kwargs["scales"]) if every_scale else legible_scales(cfg, group)
            )
            views += crop_views(env, i, scales)
            answers += [ord(sample.answer) - ord("A")] * len(scales)
            keys += [(group, scale) for scale in scales]
        return views, answers, keys

    train_views, train_answers, _ = views_of(range(args.samples))
    losses = train_reader(policy, train_views, train_answers, epochs=args.epochs, seed=args.seed)
    test_views, test_answers, keys = views_of(
        range(args.samples, args.samples + args.holdout), every_scale=True
    )
    with torch.no_grad():
        _, _, letter_logp = policy._forward(
            policy._batch(*[[v[k] for v in test_views] for k in range(3)])
        )
    right = (letter_logp.argmax(dim=1) == torch.tensor(test_answers)).numpy()
    changed = sorted(
        {k.split(".")[0] for k, v in policy.state_dict().items() if not torch.equal(v, initial[k])}
    )
    atomic_torch_save(policy.state_dict(), args.out)
    print(
        f"reader: loss {losses[0]:.3f} -> {losses[-1]:.3f} on {len(train_views)} views; trained "
        f"{changed}; "
        f"wrote {args.out}"
    )
    print("held-out accuracy by target group and crop scale (chance 0.25):")
    for key in sorted(set(keys)):
        chosen = [r for r, k in zip(right, keys, strict=True) if k == key]
        print(
            f"  group {key[0]}, crop {key[1]:g} of the view: {sum(chosen) / len(chosen):.3f} "
            f"({len(chosen)})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
