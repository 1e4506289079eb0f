"""Benchmark harness: evaluate agents per scale bin, write resumable results, compare runs.

    from grounding_gym.eval import evaluate
    summary = evaluate("oracle-crop", "GroundedVQA-HR-v0", n=50, out_dir="runs/eval/oracle")
    print(summary["per_bin"]["small"]["accuracy"])

Modules: `agents` (the `Agent` protocol, the registry, `PolicyAgent`), `harness` (`evaluate`),
`records` (episode JSONL), `metrics` (`summarize`), `report` (tables, plots, `compare_table`),
`render` (an episode as PNG), `published` (papers' reference accuracies, `baselines/published/`),
`stats` (Wilson and bootstrap intervals), `pairing` (two runs' paired differences),
`cli` (`grounding-gym eval | compare | render`).
Nothing here imports torch until a named agent needs it.
"""

from grounding_gym.eval.agents import (
    AGENTS,
    Agent,
    PolicyAgent,
    get_agent_spec,
    list_agents,
    make_agent,
    register_agent,
)
from grounding_gym.eval.harness import episode_plan, evaluate, make_eval_env
from grounding_gym.eval.metrics import summarize
from grounding_gym.eval.records import read_records
from grounding_gym.eval.report import compare_table, load_summary

__all__ = [
    "Agent",
    "AGENTS",
    "PolicyAgent",
    "compare_table",
    "episode_plan",
    "evaluate",
    "get_agent_spec",
    "list_agents",
    "load_summary",
    "make_agent",
    "make_eval_env",
    "read_records",
    "register_agent",
    "summarize",
]
