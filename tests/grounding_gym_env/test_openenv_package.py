"""The OpenEnv package folder `grounding_gym_env/` and `grounding-gym serve` as OpenEnv's own
tools and clients see them: `openenv validate DIR`, `openenv validate --url`, a stock
`GenericEnvClient` reading plain fields, and the package's typed client."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from PIL import Image

pytest.importorskip("openenv")

from grounding_gym.remote import serve_subprocess  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
OPENENV = str(Path(sys.executable).with_name("openenv"))
ENV_ID = "GroundedVQA-HR-v0"
ENV_KWARGS = {"max_turns": 3, "dataset_kwargs": {"num_samples": 2, "image_size": [256, 512]}}


@pytest.fixture(scope="module")
def url():
    with serve_subprocess(ENV_ID, ENV_KWARGS) as base_url:
        yield base_url


def png_pixels(b64: str) -> np.ndarray:
    with Image.open(io.BytesIO(base64.b64decode(b64))) as image:
        return np.asarray(image.convert("RGB"))


def test_openenv_validate_accepts_the_package_folder():
    folder = ROOT / "grounding_gym_env"
    for name in ("openenv.yaml", "pyproject.toml", "uv.lock", "server/app.py", "server/Dockerfile"):
        assert (folder / name).is_file(), name
    out = subprocess.run(
        [OPENENV, "validate", str(folder), "--json"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout + out.stderr
    report = json.loads(out.stdout)
    assert report["passed"] is True and all(report["deployment_modes"].values()), report


def test_openenv_validate_url_passes_on_grounding_gym_serve(url):
    out = subprocess.run(
        [OPENENV, "validate", "--url", url], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stdout[-3000:]
    report = json.loads(out.stdout)
    assert report["passed"] is True, report["summary"]


def test_stock_generic_client_reads_plain_fields(url):
    """No project codec: the question is a plain str, the view a base64 PNG, the reward terms
    a dict of floats, each equal to the local env's."""
    from openenv.core import GenericEnvClient

    local = gym.make(ENV_ID, **ENV_KWARGS).unwrapped
    obs, _ = local.reset(options={"sample_id": 1})
    answer = f"<answer>{local.sample.answer}</answer>"
    _, reward, terminated, _, info = local.step(answer)
    with GenericEnvClient(base_url=url).sync() as client:
        first = client.reset(options={"sample_id": 1}).observation
        assert isinstance(first["dialogue"], str) and first["dialogue"].startswith("Question:")
        assert first["dialogue"] == obs["dialogue"]
        np.testing.assert_array_equal(png_pixels(first["image"]), obs["image"])
        result = client.step({"action": answer})
    assert result.reward == reward and result.done == terminated
    assert result.observation["reward_terms"] == info["reward_terms"]


def test_package_client_returns_typed_observations(url):
    from grounding_gym_env import GroundingGymEnv, GymAction, GymObservation

    with GroundingGymEnv(base_url=url).sync() as client:
        first = client.reset(options={"sample_id": 0}).observation
        assert isinstance(first, GymObservation) and first.dialogue.startswith("Question:")
        step = client.step(GymAction(action="<crop>[0, 0, 56, 56]</crop>"))
        assert step.observation.dialogue.startswith("Zoomed in on")
        assert png_pixels(step.observation.image).ndim == 3
        assert set(step.observation.reward_terms) >= {"answer", "format", "grounding"}
        assert not step.done and client.state().env_id == ENV_ID
