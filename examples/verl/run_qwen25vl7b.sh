#!/usr/bin/env bash
# Qwen2.5-VL-7B-Instruct, GRPO vs SRPO on grounding-gym episodes with verl, 1 node x 8 GPUs.
# UNTESTED ON GPU ("paper until a GPU is lent"): the config composes and passes verl's
# validate_config on CPU (tests/agents/integrations/test_verl_integration.py); no training run has been made.
#
#   bash examples/verl/run_qwen25vl7b.sh grpo          # baseline
#   bash examples/verl/run_qwen25vl7b.sh srpo          # same run, SRPO advantages
#   bash examples/verl/run_qwen25vl7b.sh srpo +algorithm.srpo_kwargs.no_box=exclude trainer.nnodes=2
#
# Data: $GG_DATA/{train,val}.parquet (default ~/data/grounding_gym), written by prepare_data.py
# on first use (synthetic-hr; pass your V* folders to prepare_data.py for real benchmarks).
set -euo pipefail

ADV=${1:-}
case "$ADV" in
  grpo | srpo | srpo_target) shift ;;
  *) echo "usage: $0 grpo|srpo|srpo_target [hydra overrides...]" >&2; exit 2 ;;
esac

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
export GG_ROOT="$ROOT"
export GG_DATA="${GG_DATA:-$HOME/data/grounding_gym}"
if [ ! -f "$GG_DATA/train.parquet" ]; then
  python "$ROOT/examples/verl/prepare_data.py" --out "$GG_DATA"
fi

python -m verl.trainer.main_ppo \
  --config-path "$ROOT/examples/verl" --config-name grounding_gym \
  algorithm.adv_estimator="$ADV" \
  "$@"
