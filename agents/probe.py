"""The held-out crop-scale probe: which crop scale a policy takes first, per target scale, cheaply.

A policy that crops on its first turn chooses that crop's scale from the first view alone, so the
greedy first action on the held-out questions' first views (rendered once, kept) tells its
held-out crop choice without stepping an env: one batched `act` per probe. The trainer runs it
every `probe_every` steps and logs `heldout/p_crop_<crop bin>_<target bin>` and
`heldout/conditioning_index` (`agents.algos.diagnostics.crop_choice`): the scale-bias testbed's
primary metric, for any estimator.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from grounding_gym.actions import action_frame, parse_action
from grounding_gym.geometry import resolve_crop
from grounding_gym.scale import relative_area, scale_bin

__all__ = ["FirstViews", "first_crop_rel_areas"]


class FirstViews:
    """The first observation and info of each of `sample_ids` in `env`, kept for reuse.

    Attributes:
        observations, infos: as `env.reset` returned them.
        target_rel_areas: (N,) float64 target area / image area (NaN: no target).
        bins: (N,) int64 target-scale bin (`grounding_gym.scale.scale_bin` on `bin_edges`; -1: no
            target).
    """

    def __init__(self, env: Any, sample_ids: Sequence[int], bin_edges: Sequence[float]):
        self.observations: list[dict[str, Any]] = []
        self.infos: list[dict[str, Any]] = []
        for sample_id in sample_ids:
            obs, info = env.reset(options={"sample_id": int(sample_id)})
            self.observations.append(obs)
            self.infos.append(info)
        areas = [i.get("target_rel_area") for i in self.infos]
        self.target_rel_areas = np.array(
            [math.nan if a is None else float(a) for a in areas], dtype=np.float64
        )
        self.bins = np.array([scale_bin(a, bin_edges) for a in self.target_rel_areas])

    def take(self, indices: Sequence[int]) -> FirstViews:
        """The views at `indices`, in that order (nothing re-rendered)."""
        out = object.__new__(FirstViews)
        out.observations = [self.observations[i] for i in indices]
        out.infos = [self.infos[i] for i in indices]
        out.target_rel_areas = self.target_rel_areas[list(indices)]
        out.bins = self.bins[list(indices)]
        return out

    def __len__(self) -> int:
        return len(self.observations)

    @property
    def prompts(self) -> list[str]:
        """The first turn's text of each question."""
        return [str(o["dialogue"]) for o in self.observations]


def first_crop_rel_areas(policy: Any, views: FirstViews) -> np.ndarray:
    """(N,) float64 relative area of the crop `policy` greedily asks for on each first view
    (NaN when it answers or writes no usable box), resolved as the env would (`resolve_crop` in
    the action's frame, default `invalid_box="clip"` and `min_crop`)."""
    generations = policy.act(views.observations, views.infos, greedy=True)
    out = np.full(len(views), math.nan)
    for n, (generation, info) in enumerate(zip(generations, views.infos, strict=True)):
        action = parse_action(generation.text)
        if action.kind != "crop":
            continue
        box, _, _ = resolve_crop(
            action.boxes[0], info.get("coord_frame", "view"), *action_frame(info)
        )
        if box is not None:
            out[n] = relative_area(box, tuple(info["image_size"]))
    return out
