"""Run the doctests of every module of `grounding_gym` (they document units and frames).

`WITH_DOCTESTS` lists the modules that have doctests: each must run at least one example (a
doctest that stops being collected, e.g. a `>>>` lost in an edit, fails here instead of passing
with nothing run), and a module with doctests that is not listed fails until it is added.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import grounding_gym

MODULES = sorted(
    m.name
    for m in pkgutil.walk_packages(grounding_gym.__path__, prefix="grounding_gym.")
    if not m.name.endswith("__main__")
)
WITH_DOCTESTS = {
    "grounding_gym.actions",
    "grounding_gym.registry",
    "grounding_gym.data.formats.choices",
    "grounding_gym.data.formats.records",
    "grounding_gym.data.formats.hrbench",
    "grounding_gym.data.formats.treebench",
    "grounding_gym.data.synthetic.dataset",
    "grounding_gym.envs.evidence",
    "grounding_gym.envs.grounded_vqa",
    "grounding_gym.eval.harness",
    "grounding_gym.eval.metrics",
    "grounding_gym.eval.published",
    "grounding_gym.eval.stats",
    "grounding_gym.geometry",
    "grounding_gym.judge",
    "grounding_gym.readers",
    "grounding_gym.rewards",
    "grounding_gym.scale",
    "grounding_gym.validation",
    "grounding_gym.views",
    "grounding_gym.wrappers.discrete",
    "grounding_gym.wrappers.fixed_size",
}


def test_listed_modules_exist():
    assert WITH_DOCTESTS <= set(MODULES), sorted(WITH_DOCTESTS - set(MODULES))


@pytest.mark.parametrize("name", MODULES)
def test_module_doctests(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.failed == 0, f"{result.failed} doctest(s) failed in {name}"
    if name in WITH_DOCTESTS:
        assert result.attempted >= 1, (
            f"{name} is listed in WITH_DOCTESTS but no doctest example ran"
        )
    else:
        assert result.attempted == 0, (
            f"{name} has {result.attempted} doctest example(s); add it to WITH_DOCTESTS so they "
            "stay checked"
        )
