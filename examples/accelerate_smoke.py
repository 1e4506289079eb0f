"""One distributed optimisation step of an `HFPolicy`, then a check that every replica agrees.

Each process rolls out its OWN teacher-forced episode of `GroundedVQA-HR-v0` (crop, crop, answer
on sample `rank`), so local gradients differ; after one step under `accelerate` (DDP / FSDP /
DeepSpeed) the parameters must be identical on every rank, and must have moved.

    # CPU, 2 processes (gloo): what tests/agents/integrations/test_accelerate.py runs
    accelerate launch --num_processes 2 --cpu examples/accelerate_smoke.py
    # GPUs, with one of the configs of examples/accelerate/
    accelerate launch --config_file examples/accelerate/ddp.yaml examples/accelerate_smoke.py \\
        --model Qwen/Qwen2.5-VL-3B-Instruct --dtype bfloat16

Prints one line `SMOKE_RESULT {...json...}` on the main process and exits 1 on a mismatch.
Without `--model` the tiny in-code Qwen2.5-VL is built (once, by the main process) in
`--workdir`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile

import gymnasium as gym
import torch
from accelerate import Accelerator

import grounding_gym  # noqa: F401  (registers the env ids)
from agents.algos import LossConfig, compute_loss
from agents.policies.base import Trajectory, Turn
from agents.policies.hf import HFPolicy
from agents.policies.tiny_qwen import TINY_MAX_PIXELS, TINY_MIN_PIXELS, build_tiny_qwen25vl


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint; default: the tiny in-code model")
    parser.add_argument(
        "--workdir", default=os.path.join(tempfile.gettempdir(), "grounding-gym-tiny-qwen25vl")
    )
    parser.add_argument("--dtype", default="float32", help="float32 | bfloat16 | float16")
    parser.add_argument("--lr", type=float, default=1e-2)
    parser.add_argument("--lora", action="store_true", help="train LoRA adapters only")
    parser.add_argument("--min-pixels", type=int, default=TINY_MIN_PIXELS)
    parser.add_argument("--max-pixels", type=int, default=TINY_MAX_PIXELS)
    return parser.parse_args(argv)


def forced_episode(env, policy: HFPolicy, sample: int) -> Trajectory:
    """Crop the top-left 3/4, then the bottom-right 3/4 of that, then answer B."""
    obs, info = env.reset(seed=0, options={"sample_id": sample})
    traj = Trajectory(sample_id=info["sample_id"], group_id=sample, reset_info=info)
    for frac in [(0.0, 0.0, 0.75, 0.75), (0.25, 0.25, 1.0, 1.0), None]:
        if frac is None:
            text = "<answer>B</answer>"
        else:
            w, h = info["view_size"]
            text = (
                f"<crop>[{round(frac[0] * w)}, {round(frac[1] * h)}, {round(frac[2] * w)}, "
                f"{round(frac[3] * h)}]</crop>"
            )
        (gen,) = policy.act([obs], [info], forced_texts=[text])
        obs, reward, terminated, truncated, info = env.step(gen.text)
        traj.turns.append(Turn(obs, gen, float(reward), info["reward_terms"], info))
        if terminated or truncated:
            break
    traj.messages = list(info["messages"])
    return traj


def fingerprint(policy: HFPolicy, accelerator: Accelerator) -> torch.Tensor:
    """(3,) float64 summary of the full (unsharded) trainable parameters."""
    model = accelerator.unwrap_model(policy.model)
    state = (
        accelerator.get_state_dict(model)
        if accelerator.distributed_type.value in ("FSDP", "DEEPSPEED")
        else model.state_dict()
    )
    names = {n.removeprefix("module.") for n, p in model.named_parameters() if p.requires_grad}
    flat = torch.cat(
        [v.detach().double().flatten().cpu() for n, v in sorted(state.items()) if n in names]
    )
    return torch.stack(
        [
            flat.sum(),
            (flat * flat).sum(),
            (flat * torch.arange(len(flat), dtype=torch.float64)).sum(),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    path = args.model
    if path is None:
        with accelerator.main_process_first():
            path = build_tiny_qwen25vl(args.workdir)
    torch.manual_seed(0)
    policy = HFPolicy(
        path,
        dtype=args.dtype,
        device=accelerator.device,
        image_min_pixels=args.min_pixels,
        image_max_pixels=args.max_pixels,
        lora={"r": 4} if args.lora else None,
    )
    env = gym.make(
        "GroundedVQA-HR-v0",
        max_turns=3,
        dataset_kwargs={"num_samples": max(4, world), "image_size": (256, 512), "seed": 3},
        **policy.env_pixel_kwargs(),
    )
    # ROLLOUT: each rank its own sample, hence its own gradient
    traj = forced_episode(env, policy, sample=rank)

    optimizer = torch.optim.SGD(policy.trainable_parameters(), lr=args.lr)
    optimizer = policy.prepare(accelerator, optimizer)
    before = fingerprint(policy, accelerator)

    # ONE OPTIMISATION STEP
    logp, mask = policy([traj])
    old = torch.tensor(traj.old_logprobs(), device=logp.device)[None]
    advantage = torch.tensor([1.0 if rank % 2 == 0 else -1.0], device=logp.device)
    loss, metrics = compute_loss(logp, old, None, advantage, mask, LossConfig())
    accelerator.backward(loss)
    optimizer.step()
    optimizer.zero_grad()

    after = fingerprint(policy, accelerator)
    gathered = accelerator.gather(after[None].to(accelerator.device)).cpu()  # (world, 3)
    losses = accelerator.gather(loss.detach()[None]).cpu()
    identical = bool(torch.equal(gathered, gathered[:1].expand_as(gathered)))
    moved = bool(not torch.equal(before, after))
    if accelerator.is_main_process:
        result = {
            "world_size": world,
            "distributed_type": str(accelerator.distributed_type),
            "identical": identical,
            "moved": moved,
            "losses": [round(v, 6) for v in losses.tolist()],
            "policy_tokens": traj.num_policy_tokens,
        }
        print("SMOKE_RESULT " + json.dumps(result), flush=True)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return 0 if identical and moved else 1


if __name__ == "__main__":
    sys.exit(main())
