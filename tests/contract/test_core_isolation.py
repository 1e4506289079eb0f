"""`grounding_gym` works with only its core requirements: no torch, no `agents`."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_grounding_gym_imports_and_checks_without_torch():
    script = textwrap.dedent(
        """
        import sys
        sys.modules["torch"] = None  # any `import torch` now raises ImportError
        sys.modules["agents"] = None
        import gymnasium as gym
        import grounding_gym
        from gymnasium.utils.env_checker import check_env
        env = gym.make("GroundedVQA-HR-v0", dataset_kwargs={"image_size": 1024, "num_samples": 8})
        check_env(env.unwrapped)
        env = gym.make("grounding_gym:GroundedVQA-v0")
        env.reset(seed=0)
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("torch", "transformers", "agents")
                       and sys.modules[m] is not None)
        assert not heavy, heavy
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("ok")
