"""Scripted baselines (exact oracle crops, honest tiling, fallbacks) and SB3 PPO through the
wrappers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageDraw

import grounding_gym  # noqa: F401  (registers the ids)
from agents.baselines.heuristic import (
    NoCropAgent,
    OracleCropAgent,
    RandomCropAgent,
    SlidingWindowAgent,
    saliency_map,
)
from grounding_gym.actions import parse_action
from grounding_gym.data import Sample
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.eval import evaluate, read_records
from grounding_gym.eval.harness import make_eval_env
from grounding_gym.geometry import FRAMES, Box, coverage
from tests.conftest import toy_samples

SMALL = {
    "dataset_kwargs": {"num_samples": 32, "image_size": 768, "target_rel_area": [5e-4, 5e-3]},
    "env_kwargs": {"max_pixels": 256 * 256},
}


def run_episode(env, agent, sample_index):
    obs, info = env.reset(seed=0, options={"sample_id": sample_index})
    infos = [info]
    for _ in range(env.unwrapped.max_turns):
        action = agent.act([obs], [{**info, "episode": 0, "sample_index": sample_index}])[0]
        obs, _, terminated, truncated, info = env.step(action)
        infos.append(info)
        if terminated or truncated:
            break
    return infos


@pytest.mark.parametrize("frame", FRAMES)
@pytest.mark.parametrize("decimals", [0, 2])
def test_oracle_crop_covers_the_target_exactly_in_every_frame(frame, decimals):
    env = GroundedVQAEnv(
        toy_samples(3), coord_frame=frame, max_pixels=320 * 240, invalid_box="reject"
    )
    agent = OracleCropAgent(env, decimals=decimals)
    for index in range(3):
        infos = run_episode(env, agent, index)
        crop = infos[1]
        assert crop["action_kind"] == "crop" and crop["action_error"] is None
        assert crop["crop_coverage"] == 1.0
        assert crop["crop_iou"] > (0.995 if decimals == 2 else 0.7)  # outward rounding only
        assert infos[-1]["action_kind"] == "answer"


def test_oracle_grows_targets_below_min_crop():
    image = Image.new("RGB", (400, 300), (90, 90, 90))
    tiny = Box(200, 100, 210, 108)  # 10 x 8 px < min_crop 28
    sample = Sample("tiny", image, "q?", "A", ("a", "b"), (tiny,))
    env = GroundedVQAEnv([sample], invalid_box="reject")
    infos = run_episode(env, OracleCropAgent(env), 0)
    crop = Box(*infos[1]["crop_box"])
    assert crop.width >= 28 and crop.height >= 28 and coverage(tiny, crop) == 1.0
    assert infos[1]["crop_iou"] == pytest.approx(tiny.area / crop.area)


def test_fallback_answer_without_a_reader():
    env = GroundedVQAEnv(toy_samples(2), max_pixels=320 * 240)
    infos = run_episode(env, NoCropAgent(env, guess="C"), 1)
    assert len(infos) == 2 and infos[-1]["answer"] == "C"


def test_zooming_is_what_makes_small_targets_legible():
    env, _, _ = make_eval_env(
        "GroundedVQA-HR-v0",
        dataset_kwargs={"num_samples": 40, "image_size": 1024, "target_rel_area": [3e-4, 3e-3]},
        env_kwargs={"max_pixels": 256 * 256},
    )
    oracle, no_crop = OracleCropAgent(env.unwrapped), NoCropAgent(env.unwrapped)
    right_oracle = sum(bool(run_episode(env, oracle, i)[-1]["correct"]) for i in range(12))
    right_no_crop = sum(bool(run_episode(env, no_crop, i)[-1]["correct"]) for i in range(12))
    assert right_oracle >= 10 and right_no_crop <= 7  # 10-30 px targets in a 256 px first view


def test_random_crop_is_reproducible_and_inside_the_view(tmp_path):
    a = evaluate(
        "random-crop",
        "GroundedVQA-HR-v0",
        n=5,
        out_dir=tmp_path / "a",
        progress=False,
        plots=False,
        agent_kwargs={"seed": 3},
        **SMALL,
    )
    b = evaluate(
        "random-crop",
        "GroundedVQA-HR-v0",
        n=5,
        out_dir=tmp_path / "b",
        progress=False,
        plots=False,
        agent_kwargs={"seed": 3},
        **SMALL,
    )
    ra, rb = (read_records(tmp_path / x / "episodes.jsonl") for x in "ab")
    assert [r["crop_boxes"] for r in ra] == [r["crop_boxes"] for r in rb]
    assert a["overall"]["crop_rate"] == 1.0 and b["overall"]["invalid_action_rate"] == 0.0
    for r in ra:
        w, h = r["image_size"]
        x1, y1, x2, y2 = r["crop_boxes"][0]
        assert 0 <= x1 < x2 <= w and 0 <= y1 < y2 <= h and not r["crop_adjusted"][0]


def test_saliency_prefers_the_named_colour():
    view = np.full((60, 80, 3), 120, np.uint8)
    view[10:20, 10:20] = (225, 25, 30)  # red
    view[40:50, 60:70] = (25, 65, 235)  # blue
    red_hue = 0.99  # PIL's HSV hue of (225, 25, 30), as a fraction
    assert saliency_map(view).sum() == 200
    red = saliency_map(view, hue=red_hue)
    assert red[10:20, 10:20].all() and not red[40:50, 60:70].any()


def test_sliding_window_descends_towards_the_named_colour_without_ground_truth():
    image = Image.new("RGB", (2400, 1800), (110, 110, 110))
    ring = Box(1900, 1300, 1960, 1360)
    ImageDraw.Draw(image).ellipse(ring.as_tuple(), outline=(225, 25, 30), width=8)
    ImageDraw.Draw(image).ellipse((300, 300, 360, 360), outline=(25, 65, 235), width=8)
    decoy_gt = Box(100, 100, 150, 150)  # the agent must not use gt_boxes to choose crops
    sample = Sample("s", image, "What is inside the red ring?", "A", ("a", "b"), (decoy_gt,))
    env = GroundedVQAEnv([sample], max_pixels=300 * 300)
    infos = run_episode(env, SlidingWindowAgent(env), 0)
    crops = [Box(*i["crop_box"]) for i in infos if i.get("crop_box") is not None]
    assert len(crops) >= 2 and all(coverage(ring, c) == 1.0 for c in crops)
    assert crops[-1].area < crops[0].area and infos[-1]["action_kind"] == "answer"
    last_view = Box(*infos[-2]["view_box"])
    assert infos[-2]["view_size"][0] / last_view.width >= 0.9 or len(infos) - 1 == env.max_turns


def test_heuristic_actions_parse_cleanly(tmp_path):
    for name in ("no-crop", "random-crop", "sliding-window", "oracle-crop"):
        evaluate(
            name,
            "GroundedVQA-HR-v0",
            n=3,
            out_dir=tmp_path / name,
            progress=False,
            plots=False,
            **SMALL,
        )
        for record in read_records(tmp_path / name / "episodes.jsonl"):
            assert record["invalid_actions"] == 0 and record["answered"]
            assert all(parse_action(a).format_ok for a in record["actions"])


def test_random_crop_rejects_bad_scales():
    env = GroundedVQAEnv(toy_samples(1))
    with pytest.raises(ValueError, match="scales"):
        RandomCropAgent(env, scales=(0.5, 2.0))


# ---------------------------------------------------------------- SB3 PPO


def test_sb3_ppo_trains_through_the_wrappers_and_evaluates(tmp_path, capsys):
    pytest.importorskip("stable_baselines3")
    from stable_baselines3.common.env_checker import check_env

    from agents.baselines.sb3_ppo import PPOArgs, main, make_train_env

    out = tmp_path / "ppo"
    argv = [
        "--total-timesteps",
        "64",
        "--num-envs",
        "2",
        "--n-steps",
        "32",
        "--batch-size",
        "32",
        "--n-epochs",
        "1",
        "--obs-size",
        "36",
        "--image-size",
        "160",
        "192",
        "--num-samples",
        "4",
        "--eval-episodes",
        "3",
        "--out",
        str(out),
    ]
    args = PPOArgs(
        total_timesteps=64,
        num_envs=2,
        n_steps=32,
        batch_size=32,
        n_epochs=1,
        obs_size=36,
        image_size=(160, 192),
        num_samples=4,
        out=str(out),
    )
    check_env(make_train_env(args).env, warn=True)  # the wrapped env under Monitor
    assert main(argv) == 0  # cleanrl-style smoke run: train, save, evaluate through the harness
    assert (out / "model.zip").is_file() and (out / "ppo_config.json").is_file()
    assert "# sb3-ppo on GroundedVQA-HR-v0 / synthetic-hr-small" in capsys.readouterr().out
    summary = json.loads((out / "eval" / "sb3-ppo" / "summary.json").read_text())
    assert summary["overall"]["n"] == 3 and summary["overall"]["invalid_action_rate"] == 0.0
    assert summary["meta"]["bin_edges"] == [0.01, 0.03]
    # the safe loader (policy.pth only, weights_only) acts exactly as SB3's own PPO.load
    from stable_baselines3 import PPO

    from agents.baselines.sb3_ppo import load_policy_weights

    wrapped = make_train_env(args).env
    safe = load_policy_weights(out / "model.zip", wrapped.observation_space, wrapped.action_space)
    full = PPO.load(out / "model.zip", device="cpu")  # our own file: trusted here
    obs = {k: np.stack([v] * 3) for k, v in wrapped.reset(seed=0)[0].items()}
    assert np.array_equal(
        safe.predict(obs, deterministic=True)[0], full.predict(obs, deterministic=True)[0]
    )
    with pytest.raises(ValueError, match="obs_size"):
        PPOArgs(obs_size=16)
