"""`hf` and `vllm` eval agents: a local Qwen2.5-VL-style checkpoint, evaluated from the CLI.

    grounding-gym eval --agent hf --agent-kwargs '{"model": "Qwen/Qwen2.5-VL-7B-Instruct", "dtype":
    "bfloat16", "device": "cuda"}'
    grounding-gym eval --agent vllm --agent-kwargs '{"model": "DIR", "gpu_memory_utilization": 0.8}'

Both act greedily by default through `grounding_gym.eval.PolicyAgent`. The processor's pixel
budget defaults to the env's (`min_pixels`, `max_pixels`), so the model sees each view at the
size the prompt states (see `agents.policies.hf`, "Pixel budget"). `vllm` is GPU only: without
vLLM it raises an ImportError that says how to install it, before loading any weights.
"""

from __future__ import annotations

from typing import Any

from grounding_gym.eval.agents import PolicyAgent

__all__ = ["make_hf_agent", "make_vllm_agent"]


def _hf_policy(
    env: Any, model: str, dtype: str, device: str, max_new_tokens: int, **kwargs: Any
) -> Any:
    from agents.policies.hf import HFPolicy

    kwargs.setdefault("image_min_pixels", getattr(env, "min_pixels", None))
    kwargs.setdefault("image_max_pixels", getattr(env, "max_pixels", None))
    return HFPolicy(model, dtype=dtype, device=device, max_new_tokens=max_new_tokens, **kwargs)


def make_hf_agent(
    env: Any,
    model: str,
    dtype: str = "float32",
    device: str = "auto",
    greedy: bool = True,
    max_new_tokens: int = 256,
    **policy_kwargs: Any,
) -> PolicyAgent:
    """Factory of the `hf` agent: `HFPolicy(model, ...)` acting through `PolicyAgent`.

    Args:
        env: the unwrapped env (its pixel budget becomes the processor's unless given).
        model: a local checkpoint folder or Hub id (`AutoModelForImageTextToText`).
        dtype: "float32", "bfloat16" or "float16".
        device: "cpu", "cuda", "cuda:1" or "auto" (CUDA when available).
        greedy: argmax decoding (default) or sampling at `temperature`.
        max_new_tokens: generation budget per turn (tokens).
        **policy_kwargs: any other `HFPolicy` argument (`temperature`, `image_max_pixels`, ...).
    """
    return PolicyAgent(
        _hf_policy(env, model, dtype, device, max_new_tokens, **policy_kwargs), greedy=greedy
    )


def make_vllm_agent(
    env: Any,
    model: str,
    dtype: str = "bfloat16",
    device: str = "cuda",
    greedy: bool = True,
    max_new_tokens: int = 256,
    gpu_memory_utilization: float = 0.5,
    **engine_kwargs: Any,
) -> PolicyAgent:
    """Factory of the `vllm` agent (GPU only): a vLLM engine over `model`; arguments as for
    `make_hf_agent`, plus `gpu_memory_utilization` and other `VLLMPolicy` / `vllm.LLM` kwargs.

    Raises:
        ValueError: the env's `max_turns` exceeds the engine's per-prompt image limit
            (`check_image_limit`, checked first: before vLLM is imported or a model loaded).
        ImportError: vLLM is not installed (the message says how to get it).
    """
    from agents.policies.vllm_engine import VLLMPolicy, check_image_limit, import_vllm

    check_image_limit(env, engine_kwargs.get("limit_mm_per_prompt"))
    import_vllm()
    trainable = _hf_policy(env, model, dtype, device, max_new_tokens)
    engine = VLLMPolicy(trainable, gpu_memory_utilization=gpu_memory_utilization, **engine_kwargs)
    return PolicyAgent(engine, greedy=greedy)
