"""RefGrounding env: the box is the prediction, IoU / Acc@0.5 by hand, zoom then predict, data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.actions import format_crop
from grounding_gym.data import Sample, loaders, make_dataset
from grounding_gym.data.synthetic import SyntheticRef
from grounding_gym.envs.ref_grounding import PREDICTION_COLOR, RefGroundingEnv
from grounding_gym.geometry import FRAMES, Box, from_original

SMALL_BUDGET = {"min_pixels": 28 * 28, "max_pixels": 336 * 252}
EXPRESSION = "the red rectangle"


@pytest.fixture
def ref_data(toy_dataset) -> list[Sample]:
    """RefCOCO-shaped samples (as the `refcoco` loader makes them) on the toy scenes."""
    return [
        dataclasses.replace(
            s,
            question=EXPRESSION,
            answer="",
            options=None,
            metadata={"referring_expression": EXPRESSION},
        )
        for s in toy_dataset
    ]


@pytest.fixture
def make_env(ref_data):
    def make(**kwargs) -> RefGroundingEnv:
        return RefGroundingEnv(ref_data, **{**SMALL_BUDGET, **kwargs})

    return make


def predict(env: RefGroundingEnv, box_orig: Box, info: dict, frame: str, tag: str = "box") -> tuple:
    """Step with `box_orig` written in `frame` of the current view (9 decimals)."""
    box = from_original(box_orig, frame, Box(*info["view_box"]), info["view_size"])
    text = format_crop(box.as_tuple(), decimals=9).replace("crop>", f"{tag}>")
    return env.step(text)


def test_check_env_passes(make_env):
    check_env(make_env(render_mode="rgb_array"), skip_render_check=False)
    check_env(make_env(max_turns=3, render_mode="rgb_array"), skip_render_check=False)


def test_prompt_states_expression_frame_and_reply(make_env):
    env = make_env()
    obs, info = env.reset(seed=0)
    w, h = info["view_size"]
    assert f"Find: {EXPRESSION}" in obs["dialogue"] and f"{w}x{h}" in obs["dialogue"]
    assert "Box coordinates" in obs["dialogue"] and "<box>[x1, y1, x2, y2]</box>" in obs["dialogue"]
    assert info["iou"] is None and info["acc50"] is None and info["pred_box"] is None


@pytest.mark.parametrize("frame", FRAMES)
def test_oracle_box_gives_iou_1_and_acc50_in_every_frame(make_env, frame):
    env = make_env(coord_frame=frame)
    _, info = env.reset(seed=0, options={"sample_id": "toy-3"})
    gt = Box(*info["gt_boxes"][0])
    _, reward, terminated, truncated, info = predict(env, gt, info, frame)
    assert terminated and not truncated
    assert (
        info["iou"] == pytest.approx(1.0, abs=1e-6)
        and info["acc50"] is True
        and info["correct"] is True
    )
    assert info["pred_box"] == pytest.approx(gt.as_tuple(), abs=1e-3)
    assert info["reward_terms"]["grounding"] == pytest.approx(1.0, abs=1e-6)
    assert info["reward_terms"]["format"] == 1.0 and info["reward_terms"]["answer"] == 1.0
    assert reward == pytest.approx(1.0 + 0.1, abs=1e-6)  # IoU + 0.1 format; Acc@0.5 has weight 0


def test_oracle_box_in_original_frame_is_exact(make_env):
    env = make_env(coord_frame="original")
    env.reset(seed=0, options={"sample_id": "toy-0"})  # target (100, 80, 180, 150)
    _, _, _, _, info = env.step("<box>[100, 80, 180, 150]</box>")
    assert info["iou"] == 1.0 and info["acc50"] is True


@pytest.mark.parametrize("frame", ["original", "view"])
def test_half_width_shift_gives_iou_one_third(make_env, frame):
    env = make_env(coord_frame=frame)
    _, info = env.reset(seed=0, options={"sample_id": "toy-0"})
    gt = Box(*info["gt_boxes"][0])
    assert gt.as_tuple() == (100, 80, 180, 150)  # w = 80, h = 70
    shifted = Box(gt.x1 + gt.width / 2, gt.y1, gt.x2 + gt.width / 2, gt.y2)  # (140, 80, 220, 150)
    # intersection = (w/2) * h = 40 * 70 = 2800; union = 2 * w * h - 2800 = 11200 - 2800 = 8400
    # (= 1.5 * w * h); IoU = 2800 / 8400 = 1/3 < 0.5, so Acc@0.5 = 0.
    _, reward, terminated, _, info = predict(env, shifted, info, frame)
    assert terminated
    assert info["iou"] == pytest.approx(1 / 3, abs=1e-6) and info["acc50"] is False
    assert info["correct"] is False and info["reward_terms"]["answer"] == 0.0
    assert reward == pytest.approx(1 / 3 + 0.1, abs=1e-6)


def test_answer_weight_pays_acc50(make_env):
    env = make_env(coord_frame="original", reward_weights={"answer": 1.0, "format": 0.0})
    env.reset(seed=0, options={"sample_id": "toy-0"})
    _, reward, _, _, info = env.step("<box>[100, 80, 200, 150]</box>")  # IoU 80/100 = 0.8
    assert info["iou"] == pytest.approx(0.8) and reward == pytest.approx(0.8 + 1.0)


@pytest.mark.parametrize("frame", ["view", "norm1000"])
def test_zoom_then_answer_composes_through_the_crop(make_env, frame):
    env = make_env(coord_frame=frame, max_turns=3)
    _, info = env.reset(seed=0, options={"sample_id": "toy-2"})
    gt = Box(*info["gt_boxes"][0])
    zoom = Box(gt.x1 - 60, gt.y1 - 50, gt.x2 + 90, gt.y2 + 40)  # original px
    obs, _, terminated, _, info = predict(env, zoom, info, frame, tag="crop")
    assert not terminated and info["action_kind"] == "crop" and info["iou"] is None
    assert info["view_box"] == pytest.approx(zoom.as_tuple(), abs=1e-3)
    assert "<answer>[x1, y1, x2, y2]</answer>" in obs["dialogue"]
    box = from_original(gt, frame, Box(*info["view_box"]), info["view_size"])  # in the zoomed view
    _, _, terminated, _, info = env.step(f"<answer>{format_crop(box.as_tuple(), 6)[6:-7]}</answer>")
    assert terminated and info["action_kind"] == "answer"
    assert info["iou"] == pytest.approx(1.0, abs=1e-6) and info["turn"] == 2


def test_box_on_the_last_turn_is_the_prediction(make_env):
    env = make_env(coord_frame="original", max_turns=2)
    env.reset(seed=0, options={"sample_id": "toy-0"})
    obs, _, terminated, _, info = env.step("<crop>[0, 0, 400, 300]</crop>")  # turn 1: zoom
    assert not terminated and info["crop_box"] == (0, 0, 400, 300)
    assert "Your next reply is your answer" in obs["dialogue"]
    _, _, terminated, truncated, info = env.step(
        "<crop>[100, 80, 180, 150]</crop>"
    )  # turn 2: answer
    assert terminated and not truncated and info["iou"] == 1.0 and info["crop_box"] is None


@pytest.mark.parametrize(
    "action",
    [
        '<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [100, 80, 180, 150]}}',
        '```json\n[{"bbox_2d": [100, 80, 180, 150], "label": "red rectangle"}]\n```',
        '<answer>{"bbox_2d": [100, 80, 180, 150]}</answer>',
        "<answer>(100, 80, 180, 150)</answer>",
    ],
)
def test_every_box_syntax_predicts(make_env, action):
    env = make_env(coord_frame="original")
    env.reset(seed=0, options={"sample_id": "toy-0"})
    _, _, terminated, _, info = env.step(action)
    assert terminated and info["iou"] == 1.0 and info["reward_terms"]["format"] == 1.0


@pytest.mark.parametrize(
    ("action", "error_part"),
    [
        ("no box here", "no <crop>"),
        ("<answer>the red one</answer>", "must hold one box"),
        ("<box>[5000, 5000, 6000, 6000]</box>", "no area inside the image"),
        ("<box>[nan, 1, 2, 3]</box>", "nan"),
    ],
)
def test_failed_prediction_scores_zero_and_terminates(make_env, action, error_part):
    env = make_env(coord_frame="original")
    env.reset(seed=0)
    _, reward, terminated, truncated, info = env.step(action)
    assert terminated and not truncated and reward == 0.0
    assert error_part in info["action_error"]
    assert info["iou"] == 0.0 and info["acc50"] is False and info["pred_box"] is None


def test_clip_mode_clips_to_the_image_and_never_grows(make_env):
    env = make_env(coord_frame="original", invalid_box="clip")
    env.reset(seed=0, options={"sample_id": "toy-0"})
    _, _, _, _, info = env.step("<box>[180, 150, 100, -80]</box>")  # inverted, above the image
    assert info["pred_box"] == (100, 0, 180, 150) and info["pred_adjusted"] is True
    env.reset(seed=0, options={"sample_id": "toy-0"})
    _, _, _, _, info = env.step("<box>[110, 90, 115, 95]</box>")  # 5 px: scored as written
    assert info["pred_box"] == (110, 90, 115, 95) and info["iou"] == pytest.approx(25 / 5600)


def test_reject_mode_refuses_boxes_outside_the_image(make_env):
    env = make_env(coord_frame="original", invalid_box="reject")
    env.reset(seed=0, options={"sample_id": "toy-0"})
    _, reward, terminated, _, info = env.step("<box>[100, 80, 180, 800]</box>")
    assert terminated and reward == 0.0 and "extends outside the image" in info["action_error"]


def test_render_draws_the_prediction(make_env):
    env = make_env(coord_frame="original", render_mode="rgb_array")
    env.reset(seed=0, options={"sample_id": "toy-0"})
    env.step("<box>[300, 200, 500, 400]</box>")
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (720, 960, 3)
    assert tuple(frame[200, 400]) == PREDICTION_COLOR  # top edge of the prediction
    assert tuple(frame[80, 120]) == (0, 200, 0)  # ground truth


def test_sample_without_box_is_refused(ref_data):
    sample = dataclasses.replace(ref_data[0], gt_boxes=())
    env = RefGroundingEnv([sample], **SMALL_BUDGET)
    with pytest.raises(ValueError, match="needs a ground-truth box"):
        env.reset(seed=0)


def test_synthetic_ref_turns_synthetic_hr_into_expressions():
    data = make_dataset("synthetic-ref", num_samples=6, image_size=512)
    source = make_dataset("synthetic-hr", num_samples=6, image_size=512)
    assert isinstance(data, SyntheticRef) and len(data) == 6
    for ref, hr in zip(data, source, strict=True):
        assert ref.question == hr.metadata["referring_expression"] and ref.id.startswith(
            "synthetic-ref-"
        )
        assert ref.options is None and ref.answer == "" and ref.gt_boxes == hr.gt_boxes
        assert ref.metadata["source_question"] == hr.question and ref.category == hr.category


def test_synthetic_ref_oracle_through_gym_make():
    import gymnasium as gym

    env = gym.make("RefGrounding-v0", dataset_kwargs={"num_samples": 4, "image_size": 768})
    obs, info = env.reset(seed=3)
    assert env.unwrapped.sample.question in obs["dialogue"]
    _, reward, terminated, _, info = predict(env, Box(*info["gt_boxes"][0]), info, "view")
    assert terminated and info["iou"] == pytest.approx(1.0, abs=1e-6) and info["acc50"] is True


def test_refcoco_loader_samples_run(tmp_path):
    (tmp_path / "images").mkdir()
    Image.new("RGB", (640, 480), (255, 0, 0)).save(tmp_path / "images" / "a.png")
    records = [
        {
            "image": "a.png",
            "bbox": [100, 80, 80, 70],
            "id": 7,
            "sentences": ["red box", "the red one"],
        }
    ]
    (tmp_path / "refs.json").write_text(json.dumps(records))
    samples = loaders.load_refcoco(tmp_path / "refs.json", data_dir=tmp_path)
    env = RefGroundingEnv(samples, coord_frame="original", **SMALL_BUDGET)
    obs, _ = env.reset(seed=0, options={"sample_id": 1})
    assert "Find: the red one" in obs["dialogue"]
    _, _, _, _, info = env.step("<box>[100, 80, 180, 150]</box>")
    assert info["iou"] == 1.0 and info["acc50"] is True
