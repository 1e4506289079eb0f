"""Under CI (`CI=true`), a test skipped for want of an extra that CI installs fails instead.

`.ci/run` installs `.[all]`, so in CI `pytest.importorskip("trl")` (or any skip whose reason names
torch, transformers, accelerate, trl, stable-baselines3, OpenCV, verl or openenv) can only mean a
broken install
or a broken import, and a silent skip would let either pass. This plugin (loaded by
tests/conftest.py; `-p tests.ci_guard` elsewhere) turns such skips into failures, naming the
extra. Tests marked `gpu` still skip (no GPU in CI), and so does everything else, e.g. vLLM
(GPU only, not installed by CI). Outside CI, skips are left alone: the core package runs its
tests without any extra.
"""

from __future__ import annotations

import os
import re

import pytest

CI_EXTRAS = {
    "torch": "agents",
    "transformers": "agents",
    "accelerate": "agents",
    "peft": "agents",
    "trl": "trl",
    # a dependency of trl; tests/agents/integrations/test_trl_integration.py needs it
    "datasets": "trl",
    "stable_baselines3": "sb3",
    "cv2": "fast",
    "verl": "verl",
    "transfer_queue": "verl",  # verl's v1 trainer's data plane
    "openenv": "serve",
}
"""Import name -> the pyproject extra that installs it; `.ci/run` installs all of them."""

_ALIASES = {"opencv": "cv2", "sb3": "stable_baselines3", "stable-baselines3": "stable_baselines3"}
_IMPORT_SKIP = re.compile(r"could not import '([\w.]+)'")  # pytest.importorskip's reason
_NAMED = re.compile(
    r"\b("
    + "|".join(re.escape(n) for n in sorted([*CI_EXTRAS, *_ALIASES], key=len, reverse=True))
    + r")\b",
    re.I,
)


def active() -> bool:
    """True when the environment says CI (`CI=true` or `CI=1`)."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def ci_extra_behind(reason: str) -> str | None:
    """The CI-installed module a skip reason blames, or None.

    >>> ci_extra_behind("could not import 'trl.trainer': No module named 'trl'")
    'trl'
    >>> ci_extra_behind("could not import 'vllm': No module named 'torch._C'")  # vLLM: GPU only
    >>> ci_extra_behind("the accelerate CLI is not on PATH")
    'accelerate'
    >>> ci_extra_behind("needs CUDA (run scripts/gpu_smoke.sh on a GPU machine)")
    """
    match = _IMPORT_SKIP.search(reason)
    if match:  # importorskip names its module: judge by that name alone
        top = match.group(1).split(".")[0]
        return top if top in CI_EXTRAS else None
    match = _NAMED.search(reason)
    if match is None:
        return None
    name = match.group(1).lower()
    return _ALIASES.get(name, name)


def _reason(report: pytest.CollectReport | pytest.TestReport) -> str:
    longrepr = report.longrepr
    return str(longrepr[2] if isinstance(longrepr, tuple) else longrepr)


def _fail_if_hidden(report: pytest.CollectReport | pytest.TestReport, what: str, gpu: bool) -> None:
    if not (report.skipped and active()) or gpu or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    module = ci_extra_behind(reason)
    if module is None:
        return
    report.outcome = "failed"
    report.longrepr = (
        f"CI=true: {what} was skipped ({reason}), but CI installs {module!r} "
        f"(extra grounding-gym[{CI_EXTRAS[module]}], in '.[all]' of .ci/run), so this skip hides a "
        "broken install or import. Fix the import; a test that needs a GPU is marked `gpu` and may "
        "skip. Unset CI to allow the skip locally."
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A whole test file skipped at import (module-level `importorskip`)."""
    outcome = yield
    report = outcome.get_result()
    gpu = collector.get_closest_marker("gpu") is not None
    _fail_if_hidden(report, f"test file {report.nodeid or collector.nodeid}", gpu)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """One test skipped in its setup or body."""
    outcome = yield
    _fail_if_hidden(
        outcome.get_result(), f"test {item.nodeid}", item.get_closest_marker("gpu") is not None
    )
