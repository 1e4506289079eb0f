"""Wrappers that give standard RL libraries standard spaces.

    env = gym.make("GroundedVQA-HR-v0", dataset_kwargs={"image_size": 512})
    env = DiscreteCropAnswer(FixedSizeObservation(env, (64, 64)))
    # Box(0, 255, (64, 64, 3), uint8) observations, Discrete(13 + 4) actions: SB3-ready

`FixedSizeObservation` (fixed_size.py) resizes the view (and can one-hot the options);
`DiscreteCropAnswer` (discrete.py) maps grid tiles of the current view and answer letters to
action text. `BlankCrops`, `ShuffleCrops` and `NoTool` (counterfactual.py) change what a crop
returns, to measure what the crops contribute (`make_counterfactual(env, "blank")`). All rely only
on gymnasium, numpy and pillow.
"""

from grounding_gym.wrappers.counterfactual import (
    COUNTERFACTUALS,
    BlankCrops,
    CounterfactualWrapper,
    NoTool,
    ShuffleCrops,
    make_counterfactual,
)
from grounding_gym.wrappers.discrete import DiscreteCropAnswer, discrete_action_text, grid_tiles
from grounding_gym.wrappers.fixed_size import (
    FixedSizeObservation,
    encode_options,
    option_vocabulary,
    resize_view,
)

__all__ = [
    "COUNTERFACTUALS",
    "BlankCrops",
    "CounterfactualWrapper",
    "DiscreteCropAnswer",
    "FixedSizeObservation",
    "NoTool",
    "ShuffleCrops",
    "discrete_action_text",
    "encode_options",
    "grid_tiles",
    "make_counterfactual",
    "option_vocabulary",
    "resize_view",
]
