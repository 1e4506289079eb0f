"""Counterfactual views (blank / shuffle / no-tool) and the tool's gain / harm per scale bin."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.actions import crop_action_text, format_answer
from grounding_gym.envs.grounded_vqa import message_images
from grounding_gym.eval import evaluate, read_records
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
    assert info2["action_kind"] == "invalid" and info2["action_error"] == NO_TOOL_MESSAGE
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


# ---------------------------------------------------------------- gain / harm per bin


def _records(correct: dict[str, bool], areas: dict[str, float]) -> list[dict]:
    return [
        {"episode": i, "sample_id": k, "correct": v, "target_rel_area": areas[k]}
        for i, (k, v) in enumerate(correct.items())
    ]


def test_tool_contribution_counts_gain_harm_and_survival_by_hand():
    from grounding_gym.eval.contribution import contribution_table, tool_contribution

    areas = {f"s{k}": 1e-4 for k in range(6)} | {f"l{k}": 0.5 for k in range(4)}
    real = {
        "s0": 1,
        "s1": 1,
        "s2": 1,
        "s3": 0,
        "s4": 0,
        "s5": 1,
        "l0": 1,
        "l1": 1,
        "l2": 0,
        "l3": 1,
    }
    cf = {"s0": 0, "s1": 0, "s2": 1, "s3": 1, "s4": 0, "s5": 0, "l0": 1, "l1": 1, "l2": 0, "l3": 1}
    rows = {
        r.group: r
        for r in tool_contribution(
            _records({k: bool(v) for k, v in real.items()}, areas),
            _records({k: bool(v) for k, v in cf.items()}, areas),
            (1e-3, 1e-2),
        )
    }
    assert list(rows) == ["all", "small", "large"]  # no medium sample: left out
    small, large, overall = rows["small"], rows["large"], rows["all"]
    # small: gains s0, s1, s5; harm s3; real right 4 (s0 s1 s2 s5), of which s2 survives
    assert (small.n, small.gain, small.harm) == (6, 3, 1)
    assert small.gain_rate == pytest.approx(3 / 6) and small.harm_rate == pytest.approx(1 / 6)
    assert small.acc_real == pytest.approx(4 / 6) and small.acc_cf == pytest.approx(2 / 6)
    assert small.delta.mean == pytest.approx(2 / 6) and small.survival == pytest.approx(1 / 4)
    assert small.gain_ci[0] < small.gain_rate < small.gain_ci[1]
    assert (large.gain, large.harm, large.survival) == (0, 0, 1.0)
    assert (overall.n, overall.gain, overall.harm) == (10, 3, 1)
    table = contribution_table(list(rows.values()), "real", "cf")
    z2 = 1.959964**2 / 4  # Wilson upper bound of 0 of 4: (z^2/n) / (1 + z^2/n)
    assert "note: large: gain 0 of 4: the bootstrap interval collapses" in table
    assert f"[0.0, {100 * z2 / (1 + z2):.1f}]" in table


def test_compare_prints_gain_and_harm_of_a_counterfactual_run(tmp_path, capsys):
    from grounding_gym.eval.compare_cli import compare_main

    common = {"n": 12, "progress": False, "plots": False, **SMALL_HR}
    evaluate("oracle-crop", out_dir=tmp_path / "real", **common)
    evaluate("oracle-crop", out_dir=tmp_path / "blank", counterfactual="blank", **common)
    plot = tmp_path / "cmp.png"
    code = compare_main([str(tmp_path / "real"), str(tmp_path / "blank"), "--plot", str(plot)])
    out = capsys.readouterr().out
    assert code == 0
    assert "Tool contribution: oracle-crop (real crops) vs oracle-crop+blank" in out
    assert "gain %" in out and "harm %" in out and "survival %" in out
    real = read_records(tmp_path / "real" / "episodes.jsonl")
    blank = {
        r["sample_id"]: r["correct"] for r in read_records(tmp_path / "blank" / "episodes.jsonl")
    }
    gain = sum(1 for r in real if r["correct"] and not blank[r["sample_id"]])
    line = next(x for x in out.splitlines() if x.startswith("all "))
    assert line.split()[1:2] == ["12"] and f" {gain} " in line
    assert (tmp_path / "cmp_contribution_oracle-crop+blank.png").read_bytes()[:4] == b"\x89PNG"


def test_eval_cli_counterfactual_flag_is_recorded(tmp_path, capsys):
    import json

    from grounding_gym.eval.cli import eval_main

    args = ["--agent", "no-crop", "-n", "2", "--no-progress", "--no-plots"]
    args += ["--dataset-kwargs", json.dumps(SMALL_HR["dataset_kwargs"])]
    args += ["--env-kwargs", json.dumps(SMALL_HR["env_kwargs"])]
    assert eval_main([*args, "--counterfactual", "no-tool", "--out", str(tmp_path / "a")]) == 0
    summary = json.loads((tmp_path / "a" / "summary.json").read_text(encoding="utf-8"))
    assert summary["meta"]["counterfactual"] == "no-tool"
    assert json.loads((tmp_path / "a" / "config.json").read_text())["counterfactual"] == "no-tool"
    with pytest.raises(SystemExit):
        eval_main([*args, "--counterfactual", "blnk"])
    assert "invalid choice: 'blnk'" in capsys.readouterr().err
