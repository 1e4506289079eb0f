"""docs/extending.md: each recipe's `python` blocks run as written, in a fresh interpreter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "extending.md"
RECIPES = ("1. A new environment", "2. A new dataset format", "3. A new advantage estimator")


def recipe_code(title: str) -> str:
    """The `python` blocks of the section `## {title}`, joined in order."""
    sections = re.split(r"^## ", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE)
    (section,) = [s for s in sections if s.startswith(title)]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, f"docs/extending.md, section {title!r}: no python block"
    return "\n".join(blocks)


@pytest.mark.slow
@pytest.mark.parametrize("title", RECIPES)
def test_recipe_runs_as_written(title, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", recipe_code(title)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, f"{title}:\n{result.stdout}{result.stderr[-3000:]}"
