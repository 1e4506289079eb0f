"""Train a vision-language model on GroundedVQA-HR-v0 with TRL's GRPOTrainer.

    # the tiny in-code Qwen2.5-VL on CPU, 2 steps (a smoke run; the random model earns ~0)
    python examples/trl_grpo.py
    # a real checkpoint on GPUs, multi-turn episodes, SRPO advantages
    accelerate launch --config_file examples/accelerate/ddp.yaml examples/trl_grpo.py \\
        --model Qwen/Qwen2.5-VL-3B-Instruct --bf16 --steps 500 --num-generations 8 \\
        --max-turns 4 --max-completion-length 256 --srpo

`--single-turn` lets TRL generate the first action itself and scores it by replaying it in the
env (crop -> grounding IoU, answer -> correctness); the default plays whole episodes through
`TRLEnvAdapter.rollout_func` and trains the first turn on the episode's outcome (see
agents/integrations/trl.py for why only the first turn). `--srpo` swaps the reward for the
SRPO advantage and sets `scale_rewards="none"`, which makes TRL's advantage equal to SRPO's.
"""

from __future__ import annotations

import argparse
import os

import torch
from trl import GRPOConfig, GRPOTrainer

from agents.integrations.trl import TRLEnvAdapter, trl_run_setup


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", default=None, help="checkpoint (default: the tiny in-code Qwen2.5-VL)"
    )
    p.add_argument("--output-dir", default="runs/trl_grpo")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--num-generations", type=int, default=4, help="rollouts per question (G)")
    p.add_argument("--per-device-batch", type=int, default=None, help="default: num_generations")
    p.add_argument("--max-completion-length", type=int, default=16, help="tokens per turn")
    p.add_argument("--max-turns", type=int, default=3)
    p.add_argument("--num-samples", type=int, default=64, help="questions in the train set")
    p.add_argument(
        "--image-size", type=int, nargs=2, default=None, help="synthetic image side range"
    )
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--srpo", action="store_true", help="SRPO advantages as the reward")
    p.add_argument(
        "--single-turn", action="store_true", help="no rollout_func: TRL generates turn 1"
    )
    p.add_argument("--lora-r", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    return p.parse_args()


def main() -> None:
    args = parse_args()
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    setup = trl_run_setup(
        args.model,
        max_turns=args.max_turns,
        num_samples=args.num_samples,
        image_size=args.image_size,
        bf16=args.bf16,
        lora_r=args.lora_r,
    )
    adapter = TRLEnvAdapter("GroundedVQA-HR-v0", env_kwargs=setup.env_kwargs)
    adapter.num_generations = args.num_generations  # srpo_reward groups as TRL does

    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.steps,
        learning_rate=args.lr,
        per_device_train_batch_size=args.per_device_batch or args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length,
        temperature=args.temperature,
        scale_rewards="none" if args.srpo else "group",
        bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=not setup.tiny,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
    )
    reward_names = (
        ("srpo_reward",) if args.srpo else ("env_reward", "format_reward", "grounding_reward")
    )
    weights = None if args.srpo else [1.0, 0.0, 0.0]  # format/grounding logged, env_reward trained
    config.reward_weights = weights
    trainer = GRPOTrainer(
        model=setup.model,
        processing_class=setup.processor,
        reward_funcs=adapter.reward_funcs(*reward_names),
        rollout_func=None if args.single_turn else adapter.rollout_func,
        args=config,
        train_dataset=adapter.dataset(range(args.num_samples)),
        peft_config=setup.peft_config,
    )
    trainer.train()
    for row in trainer.state.log_history:
        if "loss" in row:
            keys = [k for k in row if k.startswith("rewards/") and k.endswith("/mean")] + ["loss"]
            print({k: row[k] for k in keys})


if __name__ == "__main__":
    main()
