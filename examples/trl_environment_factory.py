"""Train a vision-language model on GroundedVQA-HR-v0 with TRL's GRPOTrainer and
`environment_factory`.

    # the tiny in-code Qwen2.5-VL on CPU, 2 steps (a smoke run; the random model rarely calls a
    tool)
    python examples/trl_environment_factory.py --max-steps 2
    # a real checkpoint on GPUs, SRPO advantages
    accelerate launch --config_file examples/accelerate/ddp.yaml examples/trl_environment_factory.py
    \\
        --model Qwen/Qwen2.5-VL-3B-Instruct --bf16 --max-steps 500 --num-generations 8 \\
        --max-turns 4 --srpo    # max_completion_length: tool_completion_budget = 4480 tokens

Each rollout is a whole episode: the model calls `crop(x1, y1, x2, y2)` (TRL feeds the zoomed view
back as an image) as often as it likes, then `answer(choice)`; every turn is trained, with the
crop images in the forward pass (agents/integrations/trl_environment.py). `--srpo` swaps the
reward for the SRPO advantage and sets `scale_rewards="none"`, which makes TRL's advantage equal
to SRPO's. `--max-completion-length` bounds a whole episode: tool calls, tool results (image
tokens included) and the final text; by default `tool_completion_budget`, which holds
`--max-turns` turns at the env's pixel budget (a smaller one drops crop results, with a warning).
"""

from __future__ import annotations

import argparse
import os
from functools import partial

import torch
from trl import GRPOConfig, GRPOTrainer

from agents.integrations.trl import trl_run_setup
from agents.integrations.trl_environment import (
    GroundingToolEnv,
    tool_calling_processor,
    tool_completion_budget,
    tool_dataset,
    tool_reward_funcs,
)

ENV_ID = "GroundedVQA-HR-v0"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--model", default=None, help="checkpoint (default: the tiny in-code Qwen2.5-VL)"
    )
    p.add_argument("--output-dir", default="runs/trl_environment_factory")
    p.add_argument("--max-steps", type=int, default=2, help="optimizer steps")
    p.add_argument("--num-generations", type=int, default=4, help="episodes per question (G)")
    p.add_argument("--per-device-batch", type=int, default=None, help="default: num_generations")
    p.add_argument(
        "--max-completion-length",
        type=int,
        default=None,
        help="tokens per episode, tool results included (default: tool_completion_budget)",
    )
    p.add_argument(
        "--max-turns", type=int, default=3, help="env turns (crops + answer) per episode"
    )
    p.add_argument("--num-samples", type=int, default=64, help="questions in the train set")
    p.add_argument(
        "--image-size", type=int, nargs=2, default=None, help="synthetic image side range"
    )
    p.add_argument("--lr", type=float, default=1e-5)
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--srpo", action="store_true", help="SRPO advantages as the reward")
    p.add_argument("--lora-r", type=int, default=0, help="LoRA rank (0: full fine-tuning)")
    return p.parse_args(argv)


def build_trainer(args: argparse.Namespace) -> GRPOTrainer:
    """The GRPOTrainer of `args`: model, processor (with a tool-calling chat template), env
    factory."""
    os.environ.setdefault("TRL_EXPERIMENTAL_SILENCE", "1")
    setup = trl_run_setup(
        args.model,
        max_turns=args.max_turns,
        num_samples=args.num_samples,
        image_size=args.image_size,
        bf16=args.bf16,
        lora_r=args.lora_r,
    )
    make_env = partial(GroundingToolEnv, ENV_ID, setup.env_kwargs)

    logged = (
        "answer_reward",
        "format_reward",
        "grounding_reward",
        "crop_rel_area",
        "target_rel_area",
    )
    reward_names = ("srpo_reward",) if args.srpo else ("env_reward",)
    config = GRPOConfig(
        output_dir=args.output_dir,
        max_steps=args.max_steps,
        learning_rate=args.lr,
        per_device_train_batch_size=args.per_device_batch or args.num_generations,
        num_generations=args.num_generations,
        max_completion_length=args.max_completion_length
        or tool_completion_budget(setup.env_kwargs, args.max_turns),
        max_tool_calling_iterations=args.max_turns,
        temperature=args.temperature,
        scale_rewards="none" if args.srpo else "group",
        reward_weights=[1.0]
        + [0.0] * len(logged),  # the first reward trains, the others are logged
        bf16=args.bf16,
        use_cpu=not torch.cuda.is_available(),
        gradient_checkpointing=not setup.tiny,
        seed=args.seed,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        dataloader_num_workers=0,
        disable_tqdm=True,
    )
    return GRPOTrainer(
        model=setup.model,
        processing_class=tool_calling_processor(setup.processor),
        reward_funcs=tool_reward_funcs(
            *reward_names, *logged, num_generations=args.num_generations
        ),
        environment_factory=make_env,
        args=config,
        train_dataset=tool_dataset(make_env(), range(args.num_samples)),
        peft_config=setup.peft_config,
    )


def main(argv: list[str] | None = None) -> None:
    """Train; TRL prints each step's log (loss, `rewards/*`, `tools/call_frequency`, ...)."""
    build_trainer(parse_args(argv)).train()


if __name__ == "__main__":
    main()
