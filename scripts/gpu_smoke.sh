#!/usr/bin/env bash
# GPU smoke test of the LVLM stack (HFPolicy, the trainer, accelerate, optional vLLM).
#
#   bash scripts/gpu_smoke.sh            # on a CUDA machine, from the repo root or anywhere
#   SKIP_INSTALL=1 bash scripts/gpu_smoke.sh   # reuse the current environment
#   VENV=/path/to/venv STEPS=5 bash scripts/gpu_smoke.sh
#
# 1. Installs the GPU extras into $VENV (default .venv-gpu): the project with [agents,trl,dev];
#    then tries vLLM ([vllm] extra) in a SEPARATE venv ($VENV-vllm), because vLLM pins its own
#    torch/transformers; a failed vLLM install is reported and skipped, not fatal.
# 2. Runs the gpu-marked tests and a short GRPO and SRPO run of the tiny in-code Qwen2.5-VL in
#    bf16 on cuda through agents.trainer.Trainer (policy "hf"), printing rollout and training
#    tokens/s and peak GPU memory.
# 3. If vLLM installed: vLLM rollouts of the tiny model (tokens/s), a weight sync from the
#    trainable HFPolicy, and a check that the engine's log-probs track the trainer's recompute.
#    Then the verl truncation case (tests/agents/integrations/test_verl_integration.py, cut_episode, on cuda) in a
#    venv with the [verl] extra ($VENV-verl).
# 4. A 1-GPU accelerate launch of examples/accelerate_smoke.py (bf16).
#
# Not yet run on a GPU (see docs/lvlm.md); expect to fix version details the first time.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
VENV="${VENV:-$ROOT/.venv-gpu}"
STEPS="${STEPS:-3}"
PY="$VENV/bin/python"

if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi >/dev/null 2>&1; then
    echo "gpu_smoke: no NVIDIA GPU visible (nvidia-smi failed); nothing to do" >&2
    exit 2
fi
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv

if [ "${SKIP_INSTALL:-0}" != "1" ]; then
    python3 -m venv "$VENV"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q -e ".[agents,trl,dev]"
    VLLM_VENV="$VENV-vllm"
    if python3 -m venv "$VLLM_VENV" && "$VLLM_VENV/bin/python" -m pip install -q -e ".[agents,vllm]"; then
        echo "gpu_smoke: vLLM installed in $VLLM_VENV"
    else
        echo "gpu_smoke: vLLM did not install; vLLM rollouts are skipped" >&2
        VLLM_VENV=""
    fi
else
    PY="$(command -v python)"
    VLLM_VENV="${VLLM_VENV:-}"
fi

"$PY" - <<'EOF'
import torch
assert torch.cuda.is_available(), "torch cannot see the GPU (CPU-only wheel?)"
print(f"torch {torch.__version__}, cuda {torch.version.cuda}, {torch.cuda.get_device_name(0)}, bf16 {torch.cuda.is_bf16_supported()}")
EOF

echo "== gpu-marked tests"
"$PY" -m pytest -q -m gpu tests || { status=$?; [ "$status" -eq 5 ] || exit "$status"; }

echo "== verl: an episode cut at 4 points of a crop turn, verl's post-processing, a CUDA forward"
# verl pins transformers <5.11: its own venv, as in CI
VERL_VENV="$VENV-verl"
if [ "${SKIP_INSTALL:-0}" = "1" ] && "$PY" -c "import verl" 2>/dev/null; then
    VERL_PY="$PY"
elif python3 -m venv "$VERL_VENV" && "$VERL_VENV/bin/python" -m pip install -q -e ".[agents,verl,dev]"; then
    VERL_PY="$VERL_VENV/bin/python"
else
    echo "gpu_smoke: verl did not install; the verl truncation case is skipped" >&2
    VERL_PY=""
fi
if [ -n "$VERL_PY" ]; then
    "$VERL_PY" -m pytest -q -m gpu tests/agents/integrations/test_verl_integration.py -k cut_episode -rs
fi

echo "== GRPO / SRPO of the tiny Qwen2.5-VL, bf16, cuda"
STEPS="$STEPS" "$PY" - <<'EOF'
import json, os, tempfile, time
import torch
from agents.policies.hf import HFPolicy
from agents.policies.tiny_qwen import TINY_MAX_PIXELS, TINY_MIN_PIXELS, tiny_env_kwargs, tiny_qwen25vl_path
from agents.config import TrainerConfig
from agents.trainer import Trainer

class TimedHFPolicy(HFPolicy):
    """Counts generated / scored tokens and the time spent generating / scoring."""
    stats = {"gen_tokens": 0, "gen_s": 0.0, "score_tokens": 0, "score_s": 0.0}
    def act(self, observations, infos, **kw):
        torch.cuda.synchronize(); t = time.perf_counter()
        out = super().act(observations, infos, **kw)
        torch.cuda.synchronize(); self.stats["gen_s"] += time.perf_counter() - t
        self.stats["gen_tokens"] += sum(len(g.token_ids) for g in out)
        return out
    def trajectory_logprobs(self, trajectories):
        torch.cuda.synchronize(); t = time.perf_counter()
        logp, mask = super().trajectory_logprobs(trajectories)
        torch.cuda.synchronize(); self.stats["score_s"] += time.perf_counter() - t
        self.stats["score_tokens"] += int(mask.sum())
        return logp, mask

from agents.policies import register_policy
register_policy("hf-timed", TimedHFPolicy)
path = tiny_qwen25vl_path()
for algo, g1, g2 in [("grpo", 8, 1), ("srpo", 4, 2)]:
    TimedHFPolicy.stats = {k: 0 for k in TimedHFPolicy.stats}
    torch.cuda.reset_peak_memory_stats()
    cfg = TrainerConfig(
        output_dir=tempfile.mkdtemp(prefix=f"gpu-smoke-{algo}-"), algo=algo, g1=g1, g2=g2,
        policy="hf-timed",
        policy_kwargs={"model_name_or_path": path, "dtype": "bfloat16", "device": "cuda", "max_new_tokens": 32,
                       "image_min_pixels": TINY_MIN_PIXELS, "image_max_pixels": TINY_MAX_PIXELS},
        env_kwargs=tiny_env_kwargs(max_turns=3, dataset_kwargs={"num_samples": 64, "image_size": [512, 2048]}),
        num_envs=16, questions_per_step=4, total_steps=int(os.environ["STEPS"]), train_samples=48,
        eval_samples=8, update_epochs=1, lr=1e-4, tensorboard=False, progress=False, checkpoint_every=0,
    )
    t0 = time.perf_counter()
    history = Trainer(cfg).train()
    wall = time.perf_counter() - t0
    s = TimedHFPolicy.stats
    print(json.dumps({
        "algo": algo, "steps": len(history), "wall_s": round(wall, 2),
        "loss_finite": all(torch.isfinite(torch.tensor(r["train/loss"])).item() for r in history),
        "rollout_tokens_per_s": round(s["gen_tokens"] / max(s["gen_s"], 1e-9), 1),
        "train_tokens_per_s": round(s["score_tokens"] / max(s["score_s"], 1e-9), 1),
        "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3),
    }))
EOF

if [ -n "${VLLM_VENV:-}" ]; then
    echo "== vLLM rollouts of the tiny Qwen2.5-VL + weight sync"
    VLLM_ENABLE_V1_MULTIPROCESSING=0 "$VLLM_VENV/bin/python" - <<'EOF' || echo "gpu_smoke: vLLM step FAILED (see above)" >&2
import json, time
import gymnasium as gym, torch
import grounding_gym  # noqa: F401
from agents.policies.hf import HFPolicy
from agents.policies.tiny_qwen import TINY_MAX_PIXELS, TINY_MIN_PIXELS, tiny_env_kwargs, tiny_qwen25vl_path
from agents.policies.vllm_engine import VLLMPolicy

path = tiny_qwen25vl_path()
hf = HFPolicy(path, dtype="bfloat16", device="cuda", max_new_tokens=32,
              image_min_pixels=TINY_MIN_PIXELS, image_max_pixels=TINY_MAX_PIXELS)
engine = VLLMPolicy(hf, gpu_memory_utilization=0.3, max_model_len=4096, enforce_eager=True)
envs = [gym.make("GroundedVQA-HR-v0", **tiny_env_kwargs(max_turns=3, dataset_kwargs={"num_samples": 64, "image_size": [512, 2048]})) for _ in range(64)]
pairs = [env.reset(seed=i, options={"sample_id": i}) for i, env in enumerate(envs)]
torch.cuda.synchronize(); t = time.perf_counter()
gens = engine.act([o for o, _ in pairs], [i for _, i in pairs])
torch.cuda.synchronize(); dt = time.perf_counter() - t
tokens = sum(len(g.token_ids) for g in gens)
with torch.no_grad():
    for p in hf.model.parameters():
        p.mul_(1.01)
t = time.perf_counter(); engine.sync_weights(); sync_s = time.perf_counter() - t
print(json.dumps({"vllm_rollout_tokens_per_s": round(tokens / dt, 1), "batch": len(gens),
                  "sync_s": round(sync_s, 3), "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 3)}))
EOF
fi

echo "== accelerate launch (1 GPU, bf16)"
"$(dirname "$PY")/accelerate" launch --num_processes 1 --num_machines 1 --mixed_precision bf16 \
    --dynamo_backend no examples/accelerate_smoke.py --workdir "$(mktemp -d)" | grep SMOKE_RESULT
echo "gpu_smoke: done"
