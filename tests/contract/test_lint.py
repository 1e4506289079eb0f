"""The README's test command enforces the style: `ruff format`, `ruff check` (line length 100,
E501 on) and mypy on `grounding_gym`, configured in pyproject.toml. A failure prints the tool's
report; fix with `ruff format .`, `ruff check --fix .`, or the types mypy names."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_tool(*args: str) -> subprocess.CompletedProcess[str]:
    """`python -m TOOL ARGS` from the repository root (the venv's tool, pyproject's settings)."""
    return subprocess.run(
        [sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=900
    )


@pytest.mark.parametrize(
    "command", [("ruff", "format", "--check", "."), ("ruff", "check", ".")], ids=" ".join
)
def test_ruff_is_clean(command):
    result = run_tool(*command)
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout}{result.stderr}"


@pytest.mark.slow
def test_mypy_is_clean_on_grounding_gym():
    result = run_tool("mypy")  # files = ["grounding_gym"] in pyproject.toml
    assert result.returncode == 0, f"mypy:\n{result.stdout}{result.stderr}"
    assert "Success" in result.stdout
