"""`policy-checkpoint` eval agent: a policy trained by `agents.trainer`, restored from its
checkpoint.

    grounding-gym eval --agent policy-checkpoint --agent-kwargs '{"path": "runs/demo/srpo"}' ...

The checkpoint (`checkpoint.pt`, written by `Trainer.save_checkpoint`) holds the trainer config,
so the policy is rebuilt by name (`agents.policies.make_policy(config["policy"],
**config["policy_kwargs"])`) and its weights loaded; it then acts greedily through
`grounding_gym.eval.PolicyAgent`. Needs torch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from grounding_gym.eval.agents import PolicyAgent

__all__ = ["load_policy", "make_agent"]


def load_policy(path: str | os.PathLike) -> Any:
    """The policy saved in `path` (a `checkpoint.pt`, or a training folder holding one), in eval
    mode.

    Raises:
        FileNotFoundError: no checkpoint there.
        RuntimeError: the weights do not fit the current policy code.
        agents.checkpoint.UnsafeCheckpointError: the file would need unpickling (refused,
            nothing from it runs) or is truncated.
    """
    from agents.checkpoint import load_checkpoint_file
    from agents.policies import make_policy

    path = Path(path)
    file = path / "checkpoint.pt" if path.is_dir() else path
    if not file.is_file():
        raise FileNotFoundError(
            f"no trainer checkpoint at {file}; train first (grounding-gym train / demo)"
        )
    state = load_checkpoint_file(file)
    config = state.get("config") or {}
    policy = make_policy(config.get("policy", "tiny"), **(config.get("policy_kwargs") or {}))
    try:
        policy.load_state_dict(state["policy"])
    except RuntimeError as exc:
        raise RuntimeError(
            f"{file} does not fit the current {config.get('policy', 'tiny')!r} policy code (it was "
            "trained with another version of it, or other policy_kwargs); retrain it. "
            f"torch said: {str(exc)[:400]}"
        ) from exc
    policy.eval()
    return policy


def make_agent(
    env: Any, path: str | os.PathLike = "runs/train", greedy: bool = True, torch_threads: int = 1
) -> PolicyAgent:
    """Factory of the `policy-checkpoint` agent (`env` is unused: the policy reads observations).

    Args:
        path: `checkpoint.pt` or the trainer's `output_dir`.
        greedy: argmax actions (evaluation) or sampled ones.
        torch_threads: torch CPU threads (0 keeps torch's default).
    """
    import torch

    if torch_threads:
        torch.set_num_threads(torch_threads)
    return PolicyAgent(load_policy(path), greedy=greedy)
