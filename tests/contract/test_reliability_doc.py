"""docs/reliability.md quotes the suite's own figures: case counts, sizes, examples per CI run.

The figures are recomputed from the tests (the parse table's length, the fuzz constants, the sum
of `max_examples` over every hypothesis test of a file), so a doc that overstates them fails here.
"""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path

from tests.grounding_gym import test_actions
from tests.grounding_gym.envs import test_env_fuzz

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "reliability.md").read_text(encoding="utf-8")
MIN_EXAMPLES_PER_CI_RUN = 10_000


def property_examples(path: str) -> int:
    """Sum of `max_examples` over the hypothesis tests of the test file `path` (from the root)."""
    module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
    return sum(
        fn._hypothesis_internal_use_settings.max_examples
        for _, fn in inspect.getmembers(module, inspect.isfunction)
        if getattr(fn, "is_hypothesis_test", False) and fn.__module__ == module.__name__
    )


def files_with_property_tests() -> set[str]:
    given = re.compile(r"^@given\(", re.M)
    return {
        p.relative_to(ROOT).as_posix()
        for p in (ROOT / "tests").rglob("test_*.py")
        if given.search(p.read_text(encoding="utf-8"))
    }


def number(text: str) -> int:
    return int(text.replace(",", ""))


def test_parse_table_size_is_quoted_exactly():
    quoted = re.search(r"table of ([\d,]+) cases", DOC)
    assert quoted and number(quoted.group(1)) == len(test_actions.CASES), (
        f"docs/reliability.md says {quoted and quoted.group(1)} parse cases; "
        "tests/grounding_gym/test_actions.py has "
        f"{len(test_actions.CASES)}"
    )


def test_env_fuzz_sizes_are_quoted_exactly():
    assert f"fuzzed unicode up to {test_env_fuzz.UNICODE_MAX_CHARS:,} chars" in DOC
    assert f"one {test_env_fuzz.LONG_ACTION_CHARS:,}-char action" in DOC
    assert f"single unicode actions up to {test_env_fuzz.UNICODE_MAX_CHARS:,} chars" in DOC
    assert f"a {test_env_fuzz.LONG_ACTION_CHARS:,}-char action" in DOC


def test_examples_per_ci_run_are_the_tests_max_examples():
    rows = dict(
        (path, number(count))
        for path, count in re.findall(
            r"^\|[^\n]*\| `(tests/[\w/]*test_\w+\.py)` \| ([\d,]+) \|$", DOC, re.M
        )
    )
    assert set(rows) == files_with_property_tests(), "every file with property tests needs its row"
    for name, quoted in rows.items():
        assert quoted == property_examples(name), (
            f"{name}: doc says {quoted:,}, code runs {property_examples(name):,}"
        )
    total = re.search(r"\*\*([\d,]+)\*\* generated inputs per CI run", DOC)
    assert total and number(total.group(1)) == sum(rows.values())
    assert sum(rows.values()) >= MIN_EXAMPLES_PER_CI_RUN


def test_every_threat_model_defence_names_an_existing_test():
    section = DOC.split("## Threat model", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ") and "---" not in line]
    defined = {
        name
        for path in (ROOT / "tests").rglob("test_*.py")
        for name in re.findall(r"^def (test_\w+)", path.read_text(encoding="utf-8"), re.M)
    }
    assert len(rows) > 10, "the threat model table is missing"
    for row in rows[1:]:  # the first is the header
        named = re.findall(r"`(test_\w+)`", row.rsplit("|", 2)[-2])
        assert named, f"threat model row names no test: {row[:80]}"
        missing = [n for n in named if n not in defined]
        assert not missing, f"threat model names tests that do not exist: {missing}"
