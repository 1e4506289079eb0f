"""GroundedVQA env: spaces, episode rules, the coordinate contract to the pixel, info keys."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from PIL import Image

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.actions import format_answer, format_crop
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.geometry import FRAMES, Box, from_original, iou, round_outward, to_original
from grounding_gym.views import RESAMPLE, fit_to_budget

SMALL_BUDGET = {"min_pixels": 28 * 28, "max_pixels": 336 * 252}


def make_env(dataset, **kwargs) -> GroundedVQAEnv:
    return GroundedVQAEnv(dataset, **{**SMALL_BUDGET, **kwargs})


def test_check_env_passes(toy_dataset):
    check_env(make_env(toy_dataset, render_mode="rgb_array"), skip_render_check=False)


def test_reset_observation_and_prompt(toy_dataset):
    env = make_env(toy_dataset)
    obs, info = env.reset(seed=0)
    assert obs["image"].dtype == np.uint8 and obs["image"].shape[2] == 3
    h, w = obs["image"].shape[:2]
    assert (w, h) == info["view_size"] == fit_to_budget(960, 720, **SMALL_BUDGET)
    assert info["view_box"] == (0.0, 0.0, 960.0, 720.0)
    assert f"{w}x{h}" in obs["dialogue"] and "(A) red" in obs["dialogue"]
    assert info["turn"] == 0 and info["action_kind"] is None
    assert [m["role"] for m in info["messages"]] == ["system", "user"]
    assert isinstance(info["messages"][1]["content"][0]["image"], Image.Image)


@pytest.mark.parametrize("frame", FRAMES)
def test_oracle_crop_in_every_frame_is_exact(toy_dataset, frame):
    env = make_env(toy_dataset, coord_frame=frame, resize_backend="pil")  # the reference resize
    _, info = env.reset(seed=0, options={"sample_id": "toy-3"})
    gt = Box(*info["gt_boxes"][0])
    decimals = {"view": 0, "original": 0, "norm1000": 1, "norm1": 4}[frame]
    box_in_frame = round_outward(
        from_original(gt, frame, Box(*info["view_box"]), info["view_size"]), decimals
    )
    obs, _, terminated, truncated, info = env.step(format_crop(box_in_frame.as_tuple(), decimals))
    assert not (terminated or truncated)
    assert info["action_error"] is None and info["crop_coverage"] == 1.0
    assert info["crop_iou"] > 0.85  # outward rounding to the frame's precision
    crop = Box(*info["crop_box"])
    expected = toy_dataset[3].image.resize(info["view_size"], RESAMPLE, box=crop.as_tuple())
    np.testing.assert_array_equal(obs["image"], np.asarray(expected))
    assert info["reward_terms"]["format"] == 0.0  # format is paid once, at the episode's end


def test_message_images_are_copies_of_the_observations(toy_dataset):
    env = make_env(toy_dataset)
    obs, info = env.reset(seed=0)
    shown = info["messages"][1]["content"][0]["image"]
    np.testing.assert_array_equal(np.asarray(shown), obs["image"])
    obs, *_, info = env.step("<crop>[10, 10, 300, 200]</crop>")
    shown = info["messages"][-1]["content"][0]["image"]
    np.testing.assert_array_equal(np.asarray(shown), obs["image"])
    assert not np.shares_memory(np.asarray(shown), obs["image"])


@pytest.mark.parametrize("frame", FRAMES)
def test_crop_of_a_crop_composes(toy_dataset, frame):
    env = make_env(toy_dataset, coord_frame=frame)
    _, info0 = env.reset(seed=0, options={"sample_id": "toy-0"})
    first = Box(200, 100, 680, 460)  # original px
    box1 = from_original(first, frame, Box(*info0["view_box"]), info0["view_size"])
    _, _, _, _, info1 = env.step(format_crop(box1.as_tuple(), decimals=6))
    assert Box(*info1["crop_box"]).as_tuple() == pytest.approx(first.as_tuple(), abs=1e-3)
    inner_in_view = {
        "view": Box(10, 20, 110, 90),
        "norm1000": Box(100, 200, 600, 700),
        "norm1": Box(0.1, 0.2, 0.6, 0.7),
        "original": Box(300, 200, 420, 330),
    }[frame]
    expected = to_original(inner_in_view, frame, first, info1["view_size"])
    _, _, _, _, info2 = env.step(format_crop(inner_in_view.as_tuple(), decimals=6))
    assert info2["crop_box"] == pytest.approx(expected.as_tuple(), abs=1e-3)
    assert info2["view_box"] == info2["crop_box"]


def test_answer_terminates_and_scores(toy_dataset):
    env = make_env(toy_dataset)
    env.reset(seed=0, options={"sample_id": "toy-1"})  # answer B
    _, reward, terminated, truncated, info = env.step(format_answer("B"))
    assert terminated and not truncated and info["correct"] is True
    assert info["reward_terms"] == {"answer": 1.0, "format": 1.0, "grounding": 0.0}
    assert reward == pytest.approx(1.0 + 0.1)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(format_answer("B"))


def test_grounding_reward_is_max_iou_over_crops(toy_dataset):
    env = make_env(toy_dataset, coord_frame="original", reward_weights={"grounding": 1.0})
    _, info = env.reset(seed=0, options={"sample_id": "toy-0"})
    gt = Box(*info["gt_boxes"][0])  # 100, 80, 180, 150
    env.step(format_crop((100, 80, 260, 150)))  # IoU 0.5
    env.step(format_crop((100, 80, 180, 150)))  # IoU 1 (inside the previous view)
    _, reward, _, _, info = env.step(format_answer("C"))
    assert gt.as_tuple() == (100, 80, 180, 150)
    assert info["reward_terms"]["grounding"] == pytest.approx(1.0)
    assert info["correct"] is False and reward == pytest.approx(0.1 + 1.0)


@pytest.mark.parametrize("pad", [0, 1, 2, 3, 4])
def test_padding_with_useless_crops_never_pays(toy_dataset, pad):
    """DESIGN.md section 6: an immediate correct answer earns the most (1.0 + 0.1); `pad` valid
    crops away from the target, then the same answer, earn the same, never more."""
    env = make_env(toy_dataset, coord_frame="original", max_turns=5)
    _, info = env.reset(seed=0, options={"sample_id": "toy-1"})  # answer B
    gt = Box(*info["gt_boxes"][0])
    far = (0, 0, 40, 40)  # a well-formed crop of nothing: disjoint from the target
    assert iou(Box(*far), gt) == 0.0
    rewards = [env.step(format_crop(far))[1] for _ in range(pad)]
    _, reward, terminated, _, info = env.step(format_answer("B"))
    assert terminated and rewards == [0.0] * pad
    assert info["reward_terms"]["format"] == 1.0 and sum(rewards) + reward == pytest.approx(1.1)


def test_format_is_the_mean_over_turns(toy_dataset):
    env = make_env(toy_dataset, max_turns=3)
    env.reset(seed=0, options={"sample_id": "toy-1"})
    assert env.step("no action")[1] == 0.0
    _, reward, _, _, info = env.step(format_answer("B"))
    assert info["reward_terms"] == {"answer": 1.0, "format": 0.5, "grounding": 0.0}
    assert reward == pytest.approx(1.0 + 0.1 * 0.5)


def test_truncation_after_max_turns(toy_dataset):
    env = make_env(toy_dataset, max_turns=2)
    env.reset(seed=0)
    _, _, terminated, truncated, info = env.step("hello")
    assert not terminated and not truncated and info["action_kind"] == "invalid"
    assert "not a valid action" in info["messages"][-1]["content"][-1]["text"]
    _, _, terminated, truncated, info = env.step("still no action")
    assert truncated and not terminated and info["reward_terms"]["answer"] == 0.0


@pytest.mark.parametrize(
    ("action", "error_part"),
    [
        ("<crop>[5000, 5000, 6000, 6000]</crop>", "outside"),
        ("<crop>[50, 50, 10, 10]</crop>", "inverted"),
        ("<crop>[1, 1, 3, 3]</crop>", "smaller than 28"),
        ("<crop>[0, 0, 300, 5]</crop>", "smaller than 28"),
        ("<crop>[-10, 0, 100, 100]</crop>", "outside the current view"),
    ],
)
def test_reject_mode_keeps_view_and_reports(toy_dataset, action, error_part):
    env = make_env(toy_dataset, invalid_box="reject", coord_frame="view")
    obs0, info0 = env.reset(seed=1)
    obs, reward, terminated, truncated, info = env.step(action)
    assert error_part in info["action_error"]
    assert info["crop_box"] is None and info["reward_terms"]["format"] == 0.0 and reward == 0.0
    np.testing.assert_array_equal(obs["image"], obs0["image"])
    assert info["view_box"] == info0["view_box"] and not (terminated or truncated)


def test_clip_mode_repairs_boxes(toy_dataset):
    env = make_env(toy_dataset, invalid_box="clip", coord_frame="original")
    env.reset(seed=1)
    _, _, _, _, info = env.step("<crop>[950, 700, 2000, 2000]</crop>")
    crop = Box(*info["crop_box"])
    assert info["crop_adjusted"] and info["action_error"] is None
    assert crop.x2 == 960 and crop.y2 == 720 and crop.width >= 28 and crop.height >= 28


WHOLE_VIEW = (0.0, 0.0, 960.0, 720.0)  # the toy image, original px


# action, invalid_box -> action_kind, crop_box (original px) or None, error fragment or None
@pytest.mark.parametrize(
    ("action", "mode", "kind", "crop_box", "error"),
    [
        # The parser refuses words: nan/inf never reach the geometry.
        (
            "<crop>[nan, 1, 2, 3]</crop>",
            "clip",
            "invalid",
            None,
            "(words such as nan/inf are not numbers)",
        ),
        (
            "<crop>[inf, 0, 10, 10]</crop>",
            "reject",
            "invalid",
            None,
            "(words such as nan/inf are not numbers)",
        ),
        # 1e309 overflows to inf while parsing: a crop, refused for its non-finite coordinate.
        (
            "<crop>[1e308, 1e308, 1e309, 2e308]</crop>",
            "clip",
            "invalid",
            None,
            "box [1e+308, 1e+308, inf, inf] has a non-finite coordinate",
        ),
        (
            "<crop>[1e308, 1e308, 1e309, 2e308]</crop>",
            "reject",
            "invalid",
            None,
            "has a non-finite coordinate",
        ),
        # Huge but finite: "clip" cuts it to the whole view, "reject" refuses it.
        ("<crop>[-1e30, -1e30, 1e30, 1e30]</crop>", "clip", "crop", WHOLE_VIEW, None),
        (
            "<crop>[-1e30, -1e30, 1e30, 1e30]</crop>",
            "reject",
            "invalid",
            None,
            "box [-1e+30, -1e+30, 1e+30, 1e+30] extends outside the current view",
        ),
        # Finite as written, inf once scaled from view px (2.86 original px each) to original px.
        ("<crop>[0, 0, 1e308, 1e308]</crop>", "clip", "crop", WHOLE_VIEW, None),
        (
            "<crop>[-1e308, 100, -1e307, 200]</crop>",
            "clip",
            "invalid",
            None,
            "lies outside the current view",
        ),
    ],
)
def test_nan_and_huge_boxes_are_clipped_or_refused(
    toy_dataset, action, mode, kind, crop_box, error
):
    env = make_env(toy_dataset, invalid_box=mode, coord_frame="view")
    obs0, info0 = env.reset(seed=0)
    obs, reward, terminated, truncated, info = env.step(action)
    assert info["action_kind"] == kind and not (terminated or truncated)
    assert info["crop_box"] == crop_box
    if crop_box is not None:  # accepted: the view is the clipped box, format 1
        assert info["action_error"] is None and info["crop_adjusted"]
        assert info["reward_terms"] == {"answer": 0.0, "format": 0.0, "grounding": 0.0}
        assert info["view_box"] == crop_box and reward == 0.0  # format waits for the end
        assert obs["dialogue"].startswith("Zoomed in on [0, 0, 960, 720] of the original")
    else:  # refused: view unchanged, format 0, the error told to the model
        assert error in info["action_error"]
        assert (
            info["reward_terms"] == {"answer": 0.0, "format": 0.0, "grounding": 0.0}
            and reward == 0.0
        )
        assert info["view_box"] == info0["view_box"]
        np.testing.assert_array_equal(obs["image"], obs0["image"])
        assert obs["dialogue"].startswith(
            f"Your reply was not a valid action ({info['action_error']})"
        )
        assert obs["dialogue"].endswith("4 turns left.")
    assert info["messages"][-1]["content"][-1]["text"] == obs["dialogue"]


def test_same_seed_same_episode_different_seed_differs(toy_dataset):
    def rollout(seed):
        env = make_env(toy_dataset)
        obs, info = env.reset(seed=seed)
        out = [obs["image"].tobytes(), obs["dialogue"], info["sample_id"]]
        obs, *_, info = env.step("<crop>[10, 10, 200, 150]</crop>")
        return out + [obs["image"].tobytes(), info["crop_box"], info["crop_iou"]]

    assert rollout(3) == rollout(3)
    assert any(rollout(s)[2] != rollout(3)[2] for s in range(4, 10))


def test_info_keys_on_every_step(toy_dataset):
    required = {
        "sample_id",
        "turn",
        "view_box",
        "view_size",
        "action_kind",
        "action_error",
        "crop_box",
        "gt_boxes",
        "crop_iou",
        "crop_coverage",
        "crop_rel_area",
        "target_rel_area",
        "target_scale_bin",
        "crop_scale_bin",
        "reward_terms",
        "messages",
        "action_frame_box",
        "action_frame_size",
    }
    env = make_env(toy_dataset)
    _, info = env.reset(seed=0, options={"sample_id": 0})
    assert required <= info.keys()
    assert info["target_rel_area"] == pytest.approx(80 * 70 / (960 * 720))
    assert info["target_scale_bin"] == "small"
    _, _, _, _, info = env.step("<crop>[0, 0, 200, 200]</crop>")
    assert required <= info.keys() and info["crop_scale_bin"] in ("small", "medium", "large")
    # actions refer to the current view here: after a crop, the crop now shown
    assert (info["action_frame_box"], info["action_frame_size"]) == (
        info["view_box"],
        info["view_size"],
    )
    assert [m["role"] for m in info["messages"]] == ["system", "user", "assistant", "user"]


def test_render_draws_boxes(toy_dataset):
    env = make_env(toy_dataset, render_mode="rgb_array", coord_frame="original")
    env.reset(seed=0, options={"sample_id": "toy-0"})
    env.step("<crop>[50, 50, 400, 300]</crop>")
    frame = env.render()
    assert frame.dtype == np.uint8 and frame.shape == (720, 960, 3)
    assert tuple(frame[80, 120]) == (0, 200, 0)  # ground-truth outline (top edge at y=80)
    assert tuple(frame[50, 200]) == (255, 140, 0)  # crop outline (top edge at y=50)


def test_bad_kwargs_have_clear_errors(toy_dataset):
    with pytest.raises(ValueError, match="Did you mean 'view'"):
        make_env(toy_dataset, coord_frame="veiw")
    with pytest.raises(ValueError, match="invalid_box"):
        make_env(toy_dataset, invalid_box="drop")
    with pytest.raises(ValueError, match="max_turns"):
        make_env(toy_dataset, max_turns=0)
    with pytest.raises(ValueError, match="Unknown dataset"):
        GroundedVQAEnv("synthetic-hrr")
    env = make_env(toy_dataset)
    with pytest.raises(ValueError, match="Unknown sample_id"):
        env.reset(options={"sample_id": "nope"})


def test_string_sample_id_on_a_large_lazy_dataset_builds_one_sample(monkeypatch):
    import grounding_gym.data.synthetic.dataset as synthetic

    built = []
    make_sample = synthetic._make_sample
    monkeypatch.setattr(
        synthetic, "_make_sample", lambda data, i: built.append(i) or make_sample(data, i)
    )
    env = GroundedVQAEnv("synthetic-hr", dataset_kwargs={"num_samples": 100_000, "image_size": 256})
    _, info = env.reset(seed=0, options={"sample_id": "synthetic-hr-0-77777"})
    assert info["sample_id"] == "synthetic-hr-0-77777" and built == [77_777]
    with pytest.raises(ValueError, match="Unknown sample_id"):
        env.reset(options={"sample_id": "synthetic-hr-0-100000"})


@pytest.mark.parametrize("vector_cls", ["sync", "async"])
def test_vector_envs_step_with_text(toy_dataset, vector_cls):
    fns = [lambda: make_env(toy_dataset) for _ in range(4)]
    venv = (
        gym.vector.SyncVectorEnv(fns)
        if vector_cls == "sync"
        else gym.vector.AsyncVectorEnv(fns, shared_memory=False)
    )
    try:
        obs, infos = venv.reset(seed=0)
        assert len(obs["image"]) == 4 and all(img.dtype == np.uint8 for img in obs["image"])
        actions = [
            "<crop>[0, 0, 100, 100]</crop>",
            "<answer>A</answer>",
            "junk",
            "<answer>B</answer>",
        ]
        obs, rewards, terminated, truncated, infos = venv.step(actions)
        assert rewards.shape == (4,) and terminated.tolist() == [False, True, False, True]
        assert list(infos["action_kind"]) == ["crop", "answer", "invalid", "answer"]
    finally:
        venv.close()
