"""Counterfactual views (blank / shuffle / no-tool) and the tool's gain / harm per scale bin."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.actions import format_answer
from grounding_gym.envs.grounded_vqa import message_images
from grounding_gym.eval import evaluate, read_records
from grounding_gym.eval.agents import crop_action_text
from grounding_gym.geometry import Box
from grounding_gym.views import ImageHandle, render_view_image
from grounding_gym.wrappers import (
    BlankCrops,
    NoTool,
    ShuffleCrops,
    make_counterfactual,
)
from grounding_gym.wrappers.counterfactual import NO_TOOL_MESSAGE

SMALL_HR = {
    "dataset_kwargs": {"num_samples": 24, "image_size": 1024, "target_rel_area": [2e-4, 2e-1]},
    "env_kwargs": {"max_pixels": 512 * 512},
}


def _env() -> gym.Env:
    return gym.make(
        "GroundedVQA-HR-v0",
        disable_env_checker=True,
        dataset_kwargs=SMALL_HR["dataset_kwargs"],
        **SMALL_HR["env_kwargs"],
    )


def _crop_text(info: dict, box: Box) -> str:
    return crop_action_text(box, Box(*info["view_box"]), tuple(info["view_size"]), "view")


QUARTER = Box(256.0, 256.0, 512.0, 512.0)  # original px of a 1024 px image


def test_blank_returns_the_first_views_mean_colour_in_obs_and_messages():
    env = BlankCrops(_env())
    obs, info = env.reset(seed=0, options={"sample_id": 3})
    colour = np.round(obs["image"].reshape(-1, 3).astype(float).mean(axis=0))
    obs2, _, _, _, info2 = env.step(_crop_text(info, QUARTER))
    assert info2["crop_box"] is not None and info2["counterfactual"] == "blank"
    image = obs2["image"]
    assert image.dtype == np.uint8 and image.shape[2] == 3
    assert (image == colour.astype(np.uint8)).all()
    shown = message_images(info2["messages"])
    assert len(shown) == 2 and np.array_equal(np.asarray(shown[1]), image)
    assert not np.array_equal(np.asarray(shown[0]), image)  # the first view is untouched
    real = _env()
    real.reset(seed=0, options={"sample_id": 3})
    real_obs, *_ = real.step(_crop_text(info, QUARTER))
    assert real_obs["image"].shape == image.shape and not (real_obs["image"] == image).all()


def test_shuffle_shows_the_same_relative_box_of_another_sample_seeded():
    env, again = ShuffleCrops(_env(), seed=1), ShuffleCrops(_env(), seed=1)
    _, info = env.reset(seed=0, options={"sample_id": 5})
    again.reset(seed=0, options={"sample_id": 5})
    action = _crop_text(info, QUARTER)
    obs, _, _, _, info2 = env.step(action)
    obs_again, *_ = again.step(action)
    assert np.array_equal(obs["image"], obs_again["image"])  # seeded: reruns show the same
    other = env.other_index(info2["sample_id"], info2["turn"])
    assert other != 5
    sample = env.unwrapped.dataset[other]
    handle = ImageHandle(sample.image)
    (w, h), (ow, oh) = info2["image_size"], handle.size
    crop = Box(*info2["crop_box"])
    box = Box(crop.x1 * ow / w, crop.y1 * oh / h, crop.x2 * ow / w, crop.y2 * oh / h)
    size = (obs["image"].shape[1], obs["image"].shape[0])
    expected = np.asarray(render_view_image(handle.image(), box, size, original_size=(ow, oh)))
    assert np.array_equal(obs["image"], expected)
    assert np.array_equal(np.asarray(message_images(info2["messages"])[1]), expected)
    picks = {env.other_index(f"id-{k}", 1) for k in range(50)}
    assert len(picks) > 5  # spread over the dataset, not one fixed sample


def test_no_tool_refuses_crops_keeps_the_first_view_and_the_agents_text():
    env = NoTool(_env())
    obs, info = env.reset(seed=0, options={"sample_id": 2})
    action = _crop_text(info, QUARTER)
    obs2, _, terminated, truncated, info2 = env.step(action)
    assert not terminated and not truncated
    assert np.array_equal(obs2["image"], obs["image"])
    assert info2["view_box"] == info["view_box"] and info2["crop_box"] is None
    assert info2["action_kind"] == "crop" and info2["action_error"] == NO_TOOL_MESSAGE
    assert obs2["dialogue"] == NO_TOOL_MESSAGE and info2["turn"] == 1
    texts = [p["text"] for m in info2["messages"][-2:] for p in m["content"]]
    assert texts == [action, NO_TOOL_MESSAGE]
    assert len(message_images(info2["messages"])) == 1
    gold = env.unwrapped.sample.answer
    *_, info3 = env.step(format_answer(gold))
    assert info3["correct"] is True and info3["turn"] == 2
    assert [p["text"] for p in info3["messages"][-3]["content"]] == [action]  # kept in history


def test_make_counterfactual_names_and_errors():
    assert isinstance(make_counterfactual(_env(), "no-tool"), NoTool)
    with pytest.raises(ValueError, match="Did you mean 'blank'"):
        make_counterfactual(_env(), "blnk")


def _correct_by_sample(path) -> dict[str, bool]:
    return {r["sample_id"]: r["correct"] for r in read_records(path / "episodes.jsonl")}


def test_eval_under_counterfactuals_oracle_reads_nothing_from_blank_and_equals_no_crop_without_tool(
    tmp_path,
):
    common = {"n": 24, "progress": False, "plots": False, **SMALL_HR}
    runs = {
        "blank": evaluate(
            "oracle-crop", out_dir=tmp_path / "blank", counterfactual="blank", **common
        ),
        "no-tool": evaluate(
            "oracle-crop", out_dir=tmp_path / "no-tool", counterfactual="no-tool", **common
        ),
        "no-crop": evaluate("no-crop", out_dir=tmp_path / "no-crop", **common),
    }
    assert runs["blank"]["meta"]["counterfactual"] == "blank"
    assert runs["blank"]["meta"]["label"] == "oracle-crop+blank"
    assert runs["no-crop"]["meta"]["counterfactual"] is None
    # blank: the reader finds nothing in a uniform crop, so the agent guesses "A" every time
    blank = read_records(tmp_path / "blank" / "episodes.jsonl")
    assert all(r["answer"] == "A" for r in blank)
    assert all(r["correct"] == (r["gt_answer"] == "A") for r in blank)
    # no-tool: the refused crop leaves the first view, so oracle-crop answers as no-crop does
    assert _correct_by_sample(tmp_path / "no-tool") == _correct_by_sample(tmp_path / "no-crop")
    assert runs["no-tool"]["overall"]["crop_rate"] == 0.0
    assert runs["no-tool"]["overall"]["invalid_action_rate"] > 0.0
