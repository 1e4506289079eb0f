"""tests/ci_guard.py: under CI=true a skip for want of a CI-installed extra fails; gpu tests skip.

Each case runs pytest in a subprocess on a small test file that blocks an extra's import
(`sys.modules[name] = None`, what a missing or broken install looks like to `importorskip`).
"""

from __future__ import annotations

import doctest
import importlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests import ci_guard

ROOT = Path(__file__).resolve().parents[2]

FILE_SKIPPED = """
import sys
import pytest
sys.modules["trl"] = None  # as if the trl extra were missing
trl = pytest.importorskip("trl")

def test_needs_trl():
    pass
"""
TESTS_SKIPPED = """
import sys
import pytest

def test_needs_opencv():
    sys.modules["cv2"] = None
    pytest.importorskip("cv2")

def test_needs_the_accelerate_cli():
    pytest.skip("the accelerate CLI is not on PATH")

def test_skips_for_another_reason():
    pytest.skip("no shipped baselines in this checkout")

@pytest.mark.gpu
def test_needs_cuda():
    pytest.skip("needs CUDA (run scripts/gpu_smoke.sh on a GPU machine)")

@pytest.mark.gpu
def test_needs_vllm_and_torch_on_a_gpu():
    sys.modules["torch"] = None
    pytest.importorskip("torch")

def test_vllm_is_gpu_only():
    sys.modules["vllm"] = None
    pytest.importorskip("vllm")

@pytest.mark.xfail(reason="torch bug, expected to fail")
def test_expected_failure_mentioning_torch():
    assert False
"""
GPU_FILE = """
import sys
import pytest
pytestmark = pytest.mark.gpu
sys.modules["vllm"] = None
pytest.importorskip("vllm")

def test_on_vllm():
    pass
"""


def run_pytest(folder: Path, ci: str | None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "CI"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    if ci is not None:
        env["CI"] = ci
    cmd = [
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "tests.ci_guard",
        "-p",
        "no:cacheprovider",
        "-q",
        "-rA",
        "--continue-on-collection-errors",
        str(folder),
    ]
    return subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=120)


@pytest.fixture
def fake_suite(tmp_path) -> Path:
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    gpu: needs a GPU\n")
    (tmp_path / "test_file_skipped.py").write_text(FILE_SKIPPED)
    (tmp_path / "test_tests_skipped.py").write_text(TESTS_SKIPPED)
    (tmp_path / "test_gpu_file.py").write_text(GPU_FILE)
    return tmp_path


def test_under_ci_a_missing_extra_fails_and_gpu_tests_still_skip(fake_suite):
    result = run_pytest(fake_suite, ci="true")
    out = result.stdout
    assert result.returncode != 0, out
    assert "ERROR test_file_skipped.py" in out  # the whole file, skipped at import
    assert "FAILED test_tests_skipped.py::test_needs_opencv" in out
    assert "FAILED test_tests_skipped.py::test_needs_the_accelerate_cli" in out
    assert "CI installs 'trl' (extra grounding-gym[trl]" in out
    assert "CI installs 'cv2' (extra grounding-gym[fast]" in out
    assert "XFAIL test_tests_skipped.py::test_expected_failure_mentioning_torch" in out
    skipped = [line for line in out.splitlines() if line.startswith("SKIPPED")]
    for reason in (
        "no shipped baselines",
        "needs CUDA",
        "could not import 'torch'",  # the last: marked gpu
        "test_gpu_file.py:6: could not import 'vllm'",
        "test_tests_skipped.py:26: could not import 'vllm'",
    ):
        assert any(reason in line for line in skipped), f"{reason!r} should still skip:\n{out}"
    assert "2 failed, 5 skipped, 1 xfailed, 1 error" in out, out


@pytest.mark.slow
@pytest.mark.parametrize("ci", [None, "", "false"])
def test_outside_ci_every_skip_stays_a_skip(fake_suite, ci):
    result = run_pytest(fake_suite, ci=ci)
    assert result.returncode == 0, result.stdout
    assert "FAILED" not in result.stdout and "ERROR" not in result.stdout


def test_reason_parsing_doctests():
    result = doctest.testmod(ci_guard)
    assert result.attempted >= 4 and result.failed == 0


@pytest.mark.skipif(not ci_guard.active(), reason="checks CI's install; runs under CI=true")
@pytest.mark.parametrize("module", sorted(ci_guard.CI_EXTRAS))
def test_ci_installs_every_extra(module):
    """Belt and braces: in CI every extra imports (tests that guard with `find_spec` need it
    too)."""
    importlib.import_module(module)
