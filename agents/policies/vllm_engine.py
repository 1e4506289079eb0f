"""`VLLMPolicy`: the `Policy` protocol with vLLM rollouts and a trainable `HFPolicy` for gradients.

vLLM (GPU only; `pip install 'grounding-gym[vllm]'`, it pins its own torch/transformers) samples
the actions; the wrapped `HFPolicy` keeps the trainable weights and computes
`trajectory_logprobs`. After each optimiser step, `sync_weights()` copies the trained weights
into the engine (`load_weights` on the engine's model, LoRA merged first), the same colocated
pattern TRL and verl use.

Prompts are built by the `HFPolicy`'s token bookkeeping (`HFPolicy.engine_prompt`): the chat
template, earlier assistant turns spliced in as their generated ids, and ONE `<|image_pad|>` per
image, which vLLM's Qwen-VL processor expands itself (as verl passes `raw_prompt_ids`). Set the
engine's pixel budget to the env's (`mm_processor_kwargs` min/max pixels, done from
`HFPolicy.min_pixels/max_pixels`) so vLLM sees the views unresized.

Log-probs. The engine is created with `logprobs_mode="processed_logprobs"` where the installed
vLLM supports it: log-softmax after temperature (and after top-k/top-p masking, which is the
identity at the defaults top_k=0, top_p=1), i.e. the `HFPolicy` convention. Engine log-probs are
computed in the engine's dtype and kernels, so they differ from the trainer's recompute by a
small amount; off-policy corrections should use a no-grad recompute with the training model
(one extra forward) rather than trusting them for the ratio denominator.

Nothing here is imported by the test suite except to check the error without vLLM;
`scripts/gpu_smoke.sh` exercises it on a GPU machine.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Any

from agents.policies.base import Generation, Trajectory

__all__ = [
    "DEFAULT_IMAGE_LIMIT",
    "VLLMPolicy",
    "check_image_limit",
    "import_vllm",
    "make_vllm_policy",
]

DEFAULT_IMAGE_LIMIT = 16
"""The engine's `limit_mm_per_prompt` images unless `llm_kwargs` set it."""

_ENGINE_MODEL_PATHS = (
    "model_executor.driver_worker.model_runner.model",  # vLLM V0 / V1 in-process
    "model_executor.driver_worker.worker.model_runner.model",  # V1 in-process, newer layout
)


def import_vllm() -> Any:
    """`import vllm`, or an ImportError that says how to get it."""
    try:
        import vllm
    except ImportError as exc:
        raise ImportError(
            "VLLMPolicy needs vLLM, which is an optional, GPU-only extra: "
            "`pip install 'grounding-gym[vllm]'` on a CUDA machine (vLLM pins its own torch and "
            "transformers versions; use a separate environment if they clash). On CPU use "
            f"HFPolicy (agents.policies.hf) instead. Original error: {exc}"
        ) from exc
    return vllm


def check_image_limit(env: Any, limit_mm_per_prompt: Any = None) -> None:
    """Refuse, before any engine starts, an env whose conversations can hold more images than the
    engine takes per prompt (vLLM would reject such a prompt mid-run).

    The prompt of an episode's last action holds the first view and one view per earlier crop:
    up to `max_turns` images.

    Args:
        env: the env (its `max_turns`; an env without one is not checked).
        limit_mm_per_prompt: the engine's `limit_mm_per_prompt` (`{"image": N}`), default
            `{"image": DEFAULT_IMAGE_LIMIT}`.

    Raises:
        ValueError: `max_turns` exceeds the image limit (the message names both numbers and the
            two fixes).
    """
    max_turns = getattr(getattr(env, "unwrapped", env), "max_turns", None)
    limits = limit_mm_per_prompt if limit_mm_per_prompt is not None else {}
    limit = limits.get("image", DEFAULT_IMAGE_LIMIT) if isinstance(limits, dict) else None
    if max_turns is None or limit is None or int(max_turns) <= int(limit):
        return
    raise ValueError(
        f"env max_turns={max_turns} lets one prompt hold up to {max_turns} images (the first view "
        f"and one per crop), but the vLLM engine's limit_mm_per_prompt allows {limit} image(s) per "
        f"prompt, so vLLM would refuse long episodes mid-run. Lower max_turns to {limit}, or pass "
        f"limit_mm_per_prompt={{'image': {max_turns}}}."
    )


def make_vllm_policy(*, engine_kwargs: dict[str, Any] | None = None, **hf_kwargs: Any) -> Any:
    """The trainer's `policy: vllm`: an `HFPolicy(**hf_kwargs)` whose weights are trained,
    sampled through `VLLMPolicy(hf, **engine_kwargs)` (keep `loss.beta: 0`: the KL reference is
    a deepcopy of the policy, which must not copy an engine).

    `make_vllm_policy.check_env(env, **policy_kwargs)` is the same pre-run check as the `vllm`
    eval agent's (`check_image_limit`, a function of the config only); the trainer calls it on its
    envs before building the policy, so nothing is loaded for a config vLLM would refuse mid-run.

    Raises:
        ImportError: vLLM is not installed (the message says how to install it).
    """
    from agents.policies.hf import HFPolicy

    import_vllm()
    return VLLMPolicy(HFPolicy(**hf_kwargs), **(engine_kwargs or {}))


def _check_vllm_policy_env(
    env: Any, *, engine_kwargs: dict[str, Any] | None = None, **hf_kwargs: Any
) -> None:
    check_image_limit(env, (engine_kwargs or {}).get("limit_mm_per_prompt"))


make_vllm_policy.check_env = _check_vllm_policy_env  # type: ignore[attr-defined]


class VLLMPolicy:
    """Rollouts with vLLM, gradients with an `HFPolicy`.

    Args:
        trainable: the `HFPolicy` whose weights are trained (its processor, chat template,
            sampling settings and pixel budget are used).
        gpu_memory_utilization: fraction of GPU memory vLLM may take (the rest is training's).
        tensor_parallel_size: vLLM tensor parallelism.
        max_model_len: context length of the engine (tokens, images included).
        enable_prefix_caching: reuse KV of shared prefixes (a group's turns share their prompt).
        seed: engine sampling seed.
        auto_sync: before sampling, sync the engine if the trainable weights changed in place
            since the last sync (an optimiser step bumps the tensors' version counters), so a
            trainer that only calls `act` / `trajectory_logprobs` still samples on-policy.
        llm_kwargs: extra `vllm.LLM(...)` kwargs.

    Raises:
        ImportError: vLLM is not installed (the message says how to install it).
    """

    def __init__(
        self,
        trainable: Any,
        *,
        gpu_memory_utilization: float = 0.4,
        tensor_parallel_size: int = 1,
        max_model_len: int = 8192,
        enable_prefix_caching: bool = True,
        seed: int = 0,
        auto_sync: bool = True,
        **llm_kwargs: Any,
    ):
        vllm = import_vllm()
        self.trainable = trainable
        self.auto_sync = auto_sync
        self._vllm = vllm
        kwargs: dict[str, Any] = {
            "model": trainable.name,
            "dtype": str(trainable.dtype).removeprefix("torch."),
            "gpu_memory_utilization": gpu_memory_utilization,
            "tensor_parallel_size": tensor_parallel_size,
            "max_model_len": max_model_len,
            "enable_prefix_caching": enable_prefix_caching,
            "seed": seed,
            "limit_mm_per_prompt": {"image": DEFAULT_IMAGE_LIMIT},
        }
        if trainable.min_pixels is not None and trainable.max_pixels is not None:
            kwargs["mm_processor_kwargs"] = {
                "min_pixels": trainable.min_pixels,
                "max_pixels": trainable.max_pixels,
            }
        supported = inspect.signature(vllm.engine.arg_utils.EngineArgs).parameters
        if "logprobs_mode" in supported:
            kwargs["logprobs_mode"] = "processed_logprobs"
        kwargs.update(llm_kwargs)
        self.llm = vllm.LLM(**kwargs)
        self._synced_version = self._weights_version()

    # ------------------------------------------------------------------ protocol
    def act(
        self,
        observations: Sequence[dict[str, Any]],
        infos: Sequence[dict[str, Any]],
        *,
        greedy: bool = False,
    ) -> list[Generation]:
        """One assistant turn per env from vLLM (one batched `generate` call)."""
        policy = self.trainable
        if self.auto_sync and self._weights_version() != self._synced_version:
            self.sync_weights()
        prompts = []
        for info in infos:
            ids, images = policy.engine_prompt(info["messages"])
            prompt: dict[str, Any] = {"prompt_token_ids": ids}
            if images:
                prompt["multi_modal_data"] = {"image": images}
            prompts.append(prompt)
        params = self._vllm.SamplingParams(
            n=1,
            max_tokens=policy.max_new_tokens,
            temperature=0.0 if greedy else policy.temperature,
            top_p=1.0 if greedy else policy.top_p,
            top_k=0 if greedy or not policy.top_k else policy.top_k,
            logprobs=0,
            stop_token_ids=list(policy.eos_token_ids),
            skip_special_tokens=True,
        )
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        generations = []
        for out in outputs:
            completion = out.outputs[0]
            ids = [int(t) for t in completion.token_ids]
            logprobs = [
                float(step[t].logprob)
                for step, t in zip(completion.logprobs or [], ids, strict=False)
            ]
            if len(logprobs) != len(ids):
                raise RuntimeError(f"vLLM returned {len(logprobs)} log-probs for {len(ids)} tokens")
            text = policy.tokenizer.decode(ids, skip_special_tokens=True)
            policy.chat.remember(text, ids)  # later turns' prompts splice these exact ids
            generations.append(
                Generation(text=text, token_ids=tuple(ids), logprobs=tuple(logprobs))
            )
        return generations

    def trajectory_logprobs(self, trajectories: Sequence[Trajectory]) -> tuple[Any, Any]:
        """The trainable `HFPolicy`'s recompute (with gradients)."""
        return self.trainable.trajectory_logprobs(trajectories)

    # ------------------------------------------------------------------ weights
    @property
    def model(self) -> Any:
        """The trainable transformers model (what trainers checkpoint)."""
        return self.trainable.model

    def _weights_version(self) -> int:
        return sum(p._version for p in self.trainable.parameters() if p.requires_grad)

    def parameters(self) -> Iterable[Any]:
        return self.trainable.parameters()

    def train(self, mode: bool = True) -> VLLMPolicy:
        self.trainable.train(mode)
        return self

    def eval(self) -> VLLMPolicy:
        return self.train(False)

    def _engine_model(self) -> Any:
        engine = self.llm.llm_engine
        for path in _ENGINE_MODEL_PATHS:
            try:
                return attrgetter(path)(engine)
            except AttributeError:
                continue
        return None

    def sync_weights(self, weights: Iterable[tuple[str, Any]] | None = None) -> None:
        """Copy the trainable weights (LoRA merged) into the engine, then drop its prefix cache.

        Uses `load_weights` on the engine's model in-process; with a multi-process engine
        (vLLM V1 default) it goes through `LLM.collective_rpc`. Set
        `VLLM_ENABLE_V1_MULTIPROCESSING=0` for the in-process path (what TRL's colocate mode does).
        """
        named = list(weights if weights is not None else self.trainable.state_dict_for_inference())
        model = self._engine_model()
        if model is not None:
            model.load_weights(named)
        else:

            def _load(worker: Any, items: list[tuple[str, Any]] = named) -> None:
                worker.model_runner.model.load_weights(items)

            self.llm.collective_rpc(_load)
        if hasattr(self.llm, "reset_prefix_cache"):
            self.llm.reset_prefix_cache()
        self._synced_version = self._weights_version()
