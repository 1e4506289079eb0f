"""`--agent hf` on the tiny Qwen2.5-VL built in code (CPU), and `--agent vllm`'s error without
vLLM."""

from __future__ import annotations

import json
import re

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.policies.tiny_qwen import tiny_env_kwargs, tiny_qwen25vl_path  # noqa: E402
from grounding_gym.cli import main  # noqa: E402
from grounding_gym.eval import load_summary, read_records  # noqa: E402


def test_eval_agent_hf_on_the_tiny_qwen_runs_on_cpu(tmp_path, capsys):
    out = tmp_path / "hf"
    agent_kwargs = {"model": tiny_qwen25vl_path(), "device": "cpu", "max_new_tokens": 8}
    code = main(
        [
            "eval",
            "--agent",
            "hf",
            "--agent-kwargs",
            json.dumps(agent_kwargs),
            "-n",
            "3",
            "--env-kwargs",
            json.dumps(tiny_env_kwargs(max_turns=2)),
            "--image-size",
            "512",
            "--out",
            str(out),
            "--no-progress",
            "--no-plots",
        ]
    )
    assert code == 0
    records = read_records(out / "episodes.jsonl")
    assert len(records) == 3 and all(1 <= r["turns"] <= 2 for r in records)
    assert all(isinstance(a, str) for r in records for a in r["actions"])  # generated text, stepped
    assert load_summary(out)["meta"]["agent"] == "hf"


def test_eval_agent_vllm_without_vllm_is_a_clear_error(tmp_path, capsys):
    try:
        import vllm  # noqa: F401
    except ImportError:
        pass
    else:  # pragma: no cover - GPU machines
        pytest.skip("vLLM is installed")
    code = main(
        [
            "eval",
            "--agent",
            "vllm",
            "--agent-kwargs",
            json.dumps({"model": "unused"}),
            "-n",
            "1",
            "--image-size",
            "512",
            "--out",
            str(tmp_path / "v"),
            "--no-progress",
            "--no-plots",
        ]
    )
    assert code == 2  # a clear message, no traceback
    assert re.search(r"grounding-gym\[vllm\]", capsys.readouterr().err)
