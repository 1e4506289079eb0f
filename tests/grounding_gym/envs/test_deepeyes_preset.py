"""GroundedVQA-HR-DeepEyes-v0: DeepEyes' image_zoom_in_tool in Qwen tool-call format.

Crops are checked to the pixel against PIL on in-code images: `bbox_2d` in the original frame
(DeepEyes' reading, the default) and in the first view's frame (the option), before and after
a first zoom (every call crops the original, as in DeepEyes).
"""

from __future__ import annotations

import json
import re

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.actions import action_frame, crop_action_text
from grounding_gym.envs.deepeyes import DEEPEYES_SYSTEM_PROMPT, IMAGE_ZOOM_IN_TOOL, DeepEyesEnv
from grounding_gym.geometry import Box, coverage, to_original, view_to_original
from tests.conftest import toy_samples

ENV_ID = "GroundedVQA-HR-DeepEyes-v0"
SMALL_HR = {"num_samples": 4, "image_size": (512, 1024)}
EXACT_VIEWS = {"resize_backend": "pil", "fast_resize": False, "reduced_decode": False}
"""The reference resize: each view is `original.resize(view_size, BICUBIC, box=crop_box)`."""
MAX_PIXELS = 200_000
"""With the toy 960x720 images the first view is 504x364: the frames differ by ~1.9x."""


def make_env(**kwargs) -> DeepEyesEnv:
    return DeepEyesEnv(toy_samples(2), max_pixels=MAX_PIXELS, **EXACT_VIEWS, **kwargs)


def zoom(bbox: list[float], label: str | None = None, closed: bool = True) -> str:
    arguments = {"bbox_2d": bbox} if label is None else {"bbox_2d": bbox, "label": label}
    call = json.dumps({"name": "image_zoom_in_tool", "arguments": arguments})
    return f"<think>Zoom in.</think>\n<tool_call>\n{call}\n" + ("</tool_call>" if closed else "")


def reference_view(image: Image.Image, box: tuple[float, ...], size: tuple[int, int]) -> np.ndarray:
    return np.asarray(image.resize(size, Image.Resampling.BICUBIC, box=box))


# ------------------------------------------------------------------------------ the conversation


def test_system_prompt_declares_the_tool_schema():
    env = make_env()
    _, info = env.reset(seed=0)
    system = info["messages"][0]
    assert system["role"] == "system" and system["content"][0]["text"] == DEEPEYES_SYSTEM_PROMPT
    spec = json.loads(re.search(r"<tools>\n(.*)\n</tools>", DEEPEYES_SYSTEM_PROMPT).group(1))
    assert spec == IMAGE_ZOOM_IN_TOOL
    function = spec["function"]
    assert function["name"] == "image_zoom_in_tool"
    assert set(function["parameters"]["properties"]) == {"bbox_2d", "label"}
    assert function["parameters"]["required"] == ["bbox_2d"]
    assert function["parameters"]["properties"]["bbox_2d"]["minItems"] == 4
    assert (
        '<tool_call>\n{"name": <function-name>, "arguments": <args-json-object>}\n</tool_call>'
        in (DEEPEYES_SYSTEM_PROMPT)
    )


@pytest.mark.parametrize(
    ("frame", "stated"),
    [
        ("original", "pixels of the original image (960x720)"),
        ("view", "pixels of this image as shown (504x364)"),
    ],
)
def test_first_prompt_states_the_frame_and_sizes(frame, stated):
    obs, info = make_env(coord_frame=frame).reset(seed=0, options={"sample_id": 0})
    assert info["view_size"] == (504, 364)
    assert stated in obs["dialogue"]
    assert "shown at 504x364 px (original 960x720 px)" in obs["dialogue"]
    assert obs["dialogue"].startswith("Question: What colour is the rectangle?\nOptions:\n(A) red")
    assert info["messages"][1]["content"][-1]["text"] == obs["dialogue"]


def test_crop_returns_a_tool_response_user_turn():
    env = make_env()
    env.reset(seed=0, options={"sample_id": 0})
    action = zoom([112, 84, 392, 308], label="the red rectangle")
    obs, _, _, _, info = env.step(action)
    assistant, tool_turn = info["messages"][-2:]
    assert assistant == {"role": "assistant", "content": [{"type": "text", "text": action}]}
    assert tool_turn["role"] == "user"
    assert [item["type"] for item in tool_turn["content"]] == ["text", "image", "text"]
    assert tool_turn["content"][0]["text"] == "<tool_response>"
    assert np.array_equal(np.asarray(tool_turn["content"][1]["image"]), obs["image"])
    assert tool_turn["content"][2]["text"] == "</tool_response>\n" + obs["dialogue"]
    assert obs["dialogue"].startswith(
        "Zoomed in on [112, 84, 392, 308] of the original, shown at 280x224 px."
    )
    assert "4 turns left." in obs["dialogue"]


# ------------------------------------------------------------------------------ parsing


@pytest.mark.parametrize("label", [None, "the red rectangle", "a [bracketed], label"])
@pytest.mark.parametrize("closed", [True, False])
def test_tool_calls_parse_with_and_without_label(label, closed):
    env = make_env()
    env.reset(seed=0, options={"sample_id": 0})
    _, reward, terminated, truncated, info = env.step(zoom([100, 80, 400, 300], label, closed))
    assert info["action_kind"] == "crop" and info["action_error"] is None
    assert info["crop_box"] == (100.0, 80.0, 400.0, 300.0)
    assert info["reward_terms"]["format"] == 0.0
    assert reward == 0.0  # format, answer and grounding are paid at the end
    assert not terminated and not truncated


MALFORMED = {
    "trailing comma": (
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [100, 80, 400, '
        "300],}}</tool_call>",
        "crop",
    ),
    "bbox key": (
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox": [100, 80, 400, '
        "300]}}</tool_call>",
        "invalid",
    ),
    "three numbers": (
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [100, 80, '
        "400]}}</tool_call>",
        "invalid",
    ),
    "other tool": (
        '<tool_call>{"name": "image_rotate_tool", "arguments": {"angle": 90}}</tool_call>',
        "invalid",
    ),
    "no arguments": ('<tool_call>{"name": "image_zoom_in_tool"}</tool_call>', "invalid"),
    "not json": ("<tool_call>zoom into the top left</tool_call>", "invalid"),
    "nan": (
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [NaN, 1, 2, '
        "3]}}</tool_call>",
        "invalid",
    ),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_calls_score_format_zero_and_go_on(case):
    text, kind = MALFORMED[case]
    env = make_env()
    first, _ = env.reset(seed=0, options={"sample_id": 0})
    obs, reward, terminated, truncated, info = env.step(text)
    assert info["action_kind"] == kind
    assert info["reward_terms"]["format"] == 0.0 and reward == 0.0
    assert not terminated and not truncated
    if kind == "crop":  # JSON read leniently: the crop happens, the format term is lost
        assert info["crop_box"] == (100.0, 80.0, 400.0, 300.0)
        assert "JSON" in info["action_error"]  # the parser's format note is kept in info
    else:  # refused: the reason in info and in a text-only user turn; the view is unchanged
        assert info["action_error"] and info["crop_box"] is None
        assert np.array_equal(obs["image"], first["image"])
        assert info["messages"][-1] == {
            "role": "user",
            "content": [{"type": "text", "text": obs["dialogue"]}],
        }
        assert info["action_error"] in obs["dialogue"] and "image_zoom_in_tool" in obs["dialogue"]
    obs, _, terminated, _, info = env.step("<answer>A</answer>")
    assert terminated and info["correct"] is True


def test_first_of_several_calls_is_used():
    env = make_env()
    env.reset(seed=0, options={"sample_id": 0})
    _, _, _, _, info = env.step(zoom([100, 80, 400, 300]) + zoom([500, 400, 700, 600]))
    assert info["crop_box"] == (100.0, 80.0, 400.0, 300.0) and info["action_error"] is None


# ------------------------------------------------------------------------------ crops, to the pixel


def test_original_frame_crops_are_the_boxes_cut_from_the_original():
    env = make_env()
    env.reset(seed=0, options={"sample_id": 0})
    original = env.sample.image
    # 280x224 is inside the budget and a multiple of 28: the view is the PIL crop itself
    obs, _, _, _, info = env.step(zoom([112, 84, 392, 308]))
    assert info["crop_box"] == (112.0, 84.0, 392.0, 308.0) and info["view_size"] == (280, 224)
    assert np.array_equal(obs["image"], np.asarray(original.crop((112, 84, 392, 308))))
    # a second call outside the first crop still crops the original (DeepEyes), resized into the
    # budget
    obs, _, _, _, info = env.step(zoom([101, 57, 901, 657]))
    assert info["crop_box"] == (101.0, 57.0, 901.0, 657.0) and not info["crop_adjusted"]
    assert info["view_size"] == (504, 364)
    assert np.array_equal(obs["image"], reference_view(original, (101, 57, 901, 657), (504, 364)))


def test_view_frame_crops_the_view_frame_box():
    env = make_env(coord_frame="view")
    _, reset_info = env.reset(seed=0, options={"sample_id": 0})
    original = env.sample.image
    first_box, first_size = Box(*reset_info["view_box"]), reset_info["view_size"]
    assert first_box == Box(0, 0, 960, 720) and first_size == (504, 364)
    obs, _, _, _, info = env.step(zoom([63, 91, 252, 273]))
    expected = (63 * 960 / 504, 91 * 720 / 364, 252 * 960 / 504, 273 * 720 / 364)  # by hand
    assert info["crop_box"] == pytest.approx(expected, abs=1e-9)
    assert info["crop_box"] == pytest.approx((120.0, 180.0, 480.0, 540.0), abs=1e-9)
    assert np.array_equal(
        obs["image"], reference_view(original, info["crop_box"], info["view_size"])
    )
    # after a zoom, bbox_2d still refers to the first view (not to the crop now shown)
    obs, _, _, _, info = env.step(zoom([252, 182, 504, 364]))
    assert Box(*info["crop_box"]) == view_to_original(
        Box(252, 182, 504, 364), first_box, first_size
    )
    assert info["crop_box"] == pytest.approx((480.0, 360.0, 960.0, 720.0), abs=1e-9)
    assert np.array_equal(
        obs["image"], reference_view(original, info["crop_box"], info["view_size"])
    )


@pytest.mark.parametrize("frame", ["view", "original"])
def test_scripted_crops_after_a_zoom_land_where_meant(frame):
    """Agents write boxes in `action_frame(info)`: here it stays the first view after a zoom (not
    the crop now shown), so a region meant in original px is cut as meant on the second call."""
    env = make_env(coord_frame=frame)
    _, info = env.reset(seed=0, options={"sample_id": 0})
    first = (info["view_box"], info["view_size"])
    assert (info["action_frame_box"], info["action_frame_size"]) == first
    info = env.step(crop_action_text(Box(100, 80, 500, 400), *action_frame(info), frame))[4]
    assert info["view_box"] != first[0]
    assert (info["action_frame_box"], info["action_frame_size"]) == first
    meant = Box(200, 150, 300, 230)  # inside the first crop, original px
    info = env.step(crop_action_text(meant, *action_frame(info), frame))[4]
    cut = Box(*info["crop_box"])
    assert coverage(meant, cut) == 1.0  # all of it, and at most a view px (~1.9 px) more per side
    assert (
        cut.x1 > meant.x1 - 2
        and cut.y1 > meant.y1 - 2
        and cut.x2 < meant.x2 + 2
        and cut.y2 < meant.y2 + 2
    )


def test_tiny_policy_crops_what_it_chose_after_a_zoom():
    """TinyPolicy picks crops in the px of the view it sees and writes them in the action frame."""
    from agents.policies.tiny import TinyPolicy

    policy = TinyPolicy(grid=12)
    env = make_env(coord_frame="view")
    obs, info = env.reset(seed=0, options={"sample_id": 0})
    obs, _, _, _, info = env.step(policy.crop_text(0, 30, info, obs))
    view_box, view_size = Box(*info["view_box"]), info["view_size"]
    chosen = to_original(policy.crop_box_view(1, 77, view_size), "view", view_box, view_size)
    info = env.step(policy.crop_text(1, 77, info, obs))[4]
    cut = Box(*info["crop_box"])
    first_px = 960 / 504  # original px per first-view px: the rounding unit of bbox_2d
    assert all(
        abs(a - b) <= first_px for a, b in zip(cut.as_tuple(), chosen.as_tuple(), strict=True)
    )


def test_the_two_frames_disagree_on_the_same_numbers():
    """The known DeepEyes mismatch: one bbox_2d, two crops (the view is ~1.9x smaller)."""
    crops = {}
    for frame in ("original", "view"):
        env = make_env(coord_frame=frame)
        env.reset(seed=0, options={"sample_id": 0})
        crops[frame] = env.step(zoom([63, 91, 252, 273]))[4]["crop_box"]
    assert crops["original"] == (63.0, 91.0, 252.0, 273.0)
    assert crops["view"] == pytest.approx((120.0, 180.0, 480.0, 540.0), abs=1e-9)


# ------------------------------------------------------------------------------ contract


def test_frame_must_be_a_pixel_frame():
    with pytest.raises(
        ValueError, match=r"coord_frame='norm1000' is not one of \('original', 'view'\)"
    ):
        make_env(coord_frame="norm1000")


@pytest.mark.parametrize("frame", ["original", "view"])
def test_registered_id_passes_check_env(frame):
    env = gym.make(ENV_ID, coord_frame=frame, render_mode="rgb_array", dataset_kwargs=SMALL_HR)
    assert isinstance(env.unwrapped, DeepEyesEnv) and env.unwrapped.coord_frame == frame
    check_env(env.unwrapped, skip_render_check=False)
    env.close()


# ------------------------------------------------------------------------------ HFPolicy


@pytest.mark.slow  # ~12 s on one CPU core: builds the tiny checkpoint
def test_hf_policy_renders_the_tool_response_and_masks_only_its_own_tokens():
    """The tiny in-code Qwen2.5-VL plays zoom-then-answer; its chat template renders the tool
    response as DeepEyes' user turn, and the recompute matches the sampled log-probs."""
    pytest.importorskip("torch")
    from agents.policies.base import Trajectory, Turn
    from agents.policies.hf import HFPolicy
    from agents.policies.tiny_qwen import (
        TINY_MAX_PIXELS,
        TINY_MIN_PIXELS,
        tiny_env_kwargs,
        tiny_qwen25vl_path,
    )

    policy = HFPolicy(
        tiny_qwen25vl_path(),
        image_min_pixels=TINY_MIN_PIXELS,
        image_max_pixels=TINY_MAX_PIXELS,
        max_new_tokens=8,
    )
    env = gym.make(
        ENV_ID,
        **tiny_env_kwargs(max_turns=3, dataset_kwargs={"num_samples": 2, "image_size": (256, 512)}),
    )
    obs, info = env.reset(seed=0, options={"sample_id": 0})
    traj = Trajectory(sample_id=info["sample_id"], group_id=0, reset_info=info)
    texts = [zoom([40, 30, 200, 150], label="the ring"), "<answer>B</answer>"]
    for text in texts:
        (gen,) = policy.act([obs], [info], forced_texts=[text])
        obs, reward, terminated, truncated, info = env.step(gen.text)
        traj.turns.append(Turn(obs, gen, float(reward), info["reward_terms"], info))
    traj.messages = list(info["messages"])
    assert terminated and traj.turns[0].info["crop_box"] == (40.0, 30.0, 200.0, 150.0)

    prompt = policy.tokenizer.decode(policy.prompt_token_ids(traj.messages[:4]))
    assert prompt.count("<|vision_start|>") == 2
    assert "<|im_start|>user\n<tool_response><|vision_start|>" in prompt
    assert "<|vision_end|></tool_response>\nZoomed in on [40, 30, 200, 150]" in prompt
    assert prompt.endswith("<|im_start|>assistant\n")

    logp, mask = policy.trajectory_logprobs([traj])
    stored = traj.old_logprobs()
    assert mask.sum().item() == len(stored) == traj.num_policy_tokens
    np.testing.assert_allclose(logp.detach()[0].numpy(), stored, atol=1e-4)
    assert policy.policy_token_spans(traj) == texts
