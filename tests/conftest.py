"""Shared fixtures: small in-code datasets (no files, no network).

Property tests draw their examples deterministically (hypothesis profile "ci", the default), so
CI on a clean clone sees the same examples every run; `HYPOTHESIS_PROFILE=explore pytest` draws
new random ones to search for counterexamples.

Under `CI=true` (set by `.ci/run`), a test skipped because an extra that CI installs did not
import fails instead (`tests/ci_guard.py`); `gpu` tests still skip.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import settings
from PIL import Image, ImageDraw

from grounding_gym.data import Sample
from grounding_gym.geometry import Box
from grounding_gym.image_store import clear_shared_stores
from tests.ci_guard import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401  (hooks)

settings.register_profile("ci", derandomize=True)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _empty_image_stores():
    """Every test starts with empty process-wide image stores (envs share decodes through them)."""
    clear_shared_stores()
    yield
    clear_shared_stores()


def make_scene(size: tuple[int, int], target: Box, seed: int = 0) -> Image.Image:
    """A noisy RGB image with a red rectangle filling `target` (original px)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, size=(size[1], size[0], 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    ImageDraw.Draw(image).rectangle(
        [target.x1, target.y1, target.x2 - 1, target.y2 - 1], fill=(255, 0, 0)
    )
    return image


def toy_samples(n: int = 6, size: tuple[int, int] = (960, 720)) -> list[Sample]:
    """`n` multiple-choice samples on in-memory images; answer letters cycle A..D."""
    samples = []
    for i in range(n):
        target = Box(100 + 40 * i, 80 + 30 * i, 180 + 40 * i, 150 + 30 * i)
        samples.append(
            Sample(
                id=f"toy-{i}",
                image=make_scene(size, target, seed=i),
                question="What colour is the rectangle?",
                answer="ABCD"[i % 4],
                options=("red", "green", "blue", "yellow"),
                gt_boxes=(target,),
                category="toy",
                image_size=size,
            )
        )
    return samples


@pytest.fixture
def toy_dataset() -> list[Sample]:
    return toy_samples()
