"""TRL adapter: replayed rewards, SRPO-as-reward, prompt alignment, and a 2-step GRPOTrainer run."""

from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
trl = pytest.importorskip("trl")
pytest.importorskip("datasets")

from agents.integrations.trl import TRLEnvAdapter, completion_text  # noqa: E402
from agents.policies.hf import HFPolicy  # noqa: E402
from agents.policies.tiny_qwen import (  # noqa: E402
    TINY_MAX_PIXELS,
    TINY_MIN_PIXELS,
    tiny_env_kwargs,
    tiny_qwen25vl_path,
)
from tests.agents.policies.test_hf_policy import ExploringHFPolicy  # noqa: E402

ENV_KWARGS = tiny_env_kwargs(
    max_turns=2, dataset_kwargs={"num_samples": 4, "image_size": (256, 512), "seed": 3}
)


@pytest.fixture(scope="module")
def tiny_path() -> str:
    return tiny_qwen25vl_path()


@pytest.fixture(scope="module")
def adapter() -> TRLEnvAdapter:
    return TRLEnvAdapter("GroundedVQA-HR-v0", env_kwargs=ENV_KWARGS)


def gt_crop_text(adapter: TRLEnvAdapter, sample_id: str) -> str:
    """A crop exactly on the ground-truth box, in view px of the first view."""
    env = adapter._envs[0]
    _, info = env.reset(options={"sample_id": sample_id})
    (x1, y1, x2, y2), (vx1, vy1, vx2, vy2) = info["gt_boxes"][0], info["view_box"]
    w, h = info["view_size"]
    sx, sy = w / (vx2 - vx1), h / (vy2 - vy1)
    box = [(x1 - vx1) * sx, (y1 - vy1) * sy, (x2 - vx1) * sx, (y2 - vy1) * sy]
    return "<crop>[" + ", ".join(f"{v:.2f}" for v in box) + "]</crop>"


def test_completion_text_forms():
    assert completion_text("<answer>A</answer>") == "<answer>A</answer>"
    assert completion_text([{"role": "assistant", "content": "x"}]) == "x"
    assert (
        completion_text([{"role": "assistant", "content": [{"type": "text", "text": "y"}]}]) == "y"
    )


def test_rows_are_the_env_first_observation(adapter):
    rows = adapter.rows([0, 1])
    assert [r["sample_id"] for r in rows] == [adapter._envs[0].dataset[i].id for i in (0, 1)]
    system, user = rows[0]["prompt"]
    assert system["role"] == "system" and user["role"] == "user"
    assert "Question:" in user["content"]
    assert rows[0]["image"].width * rows[0]["image"].height <= TINY_MAX_PIXELS


def test_replayed_rewards_single_turn(adapter):
    sid = adapter.rows([0])[0]["sample_id"]
    sample = next(s for s in adapter._envs[0].dataset if s.id == sid)
    completions = [
        [{"role": "assistant", "content": gt_crop_text(adapter, sid)}],
        [{"role": "assistant", "content": f"<answer>{sample.answer}</answer>"}],
        [{"role": "assistant", "content": "no action here"}],
    ]
    ids = [sid] * 3
    grounding = adapter.grounding_reward(completions, sample_id=ids)
    env = adapter._envs[0]
    env.reset(options={"sample_id": sid})
    *_, info = env.step(completions[0][0]["content"])
    assert grounding[0] == pytest.approx(info["crop_iou"]) and grounding[0] > 0.1
    assert grounding[1:] == [0.0, 0.0]
    assert adapter.answer_reward(completions, sample_id=ids) == [0.0, 1.0, 0.0]
    assert adapter.format_reward(completions, sample_id=ids) == [1.0, 1.0, 0.0]
    rewards = adapter.env_reward(completions, sample_id=ids)
    assert rewards[1] > rewards[2] and rewards[0] > rewards[2]
    # episode fields from the rollout function take precedence over replay
    assert adapter.env_reward(completions, sample_id=ids, episode_reward=[0.5, 0.25, 0.0]) == [
        0.5,
        0.25,
        0.0,
    ]


def test_srpo_reward_is_the_srpo_advantage_with_zero_group_mean(adapter):
    from agents.algos import srpo

    rewards = [1.0, 0.0, 1.1, 0.1, 0.0, 1.0, 0.0, 0.0]
    areas = [0.05, 0.05, 0.2, float("nan"), 0.5, 0.02, 0.02, 0.4]
    ids = ["a"] * 4 + ["b"] * 4
    completions = [[{"role": "assistant", "content": ""}]] * 8
    kwargs = {"sample_id": ids, "episode_reward": rewards, "episode_rel_area": areas}
    with pytest.raises(ValueError, match="num_generations"):
        adapter.srpo_reward(completions, **kwargs)
    adapter.num_generations = 4
    got = adapter.srpo_reward(completions, **kwargs)
    want = srpo(rewards, [0] * 4 + [1] * 4, rel_areas=areas).tolist()
    np.testing.assert_allclose(got, want, atol=1e-6)
    # TRL with scale_rewards="none" uses r - group mean: equal to the SRPO advantage
    for group in (slice(0, 4), slice(4, 8)):
        assert abs(np.mean(got[group])) < 1e-6
    # the same sample drawn twice in one generation batch is two TRL groups, not one
    got = adapter.srpo_reward(completions, **{**kwargs, "sample_id": ["a"] * 8})
    np.testing.assert_allclose(got, want, atol=1e-6)
    adapter.num_generations = 2  # blocks of 2 ...
    with pytest.raises(ValueError, match="not whole TRL groups"):
        adapter.srpo_reward(completions[:7], **{k: v[:7] for k, v in kwargs.items()})
    adapter.num_generations = 8  # ... or 8 that mix samples: not the trainer's setting
    with pytest.raises(ValueError, match="not the trainer's"):
        adapter.srpo_reward(completions, **kwargs)
    adapter.num_generations = None


def test_prompt_ids_match_trl_processing(adapter, tiny_path):
    from trl.data_utils import apply_chat_template, prepare_multimodal_messages

    policy = HFPolicy(tiny_path, image_min_pixels=TINY_MIN_PIXELS, image_max_pixels=TINY_MAX_PIXELS)
    row = adapter.rows([2])[0]
    prompt = prepare_multimodal_messages(row["prompt"], images=[row["image"]])
    text = apply_chat_template({"prompt": prompt}, policy.processor)["prompt"]
    trl_ids = policy.processor(images=[row["image"]], text=[text], return_tensors="pt")[
        "input_ids"
    ][0].tolist()
    assert adapter.sample_of(prompt) == row["sample_id"]
    env = adapter._envs[0]
    _, info = env.reset(options={"sample_id": row["sample_id"]})
    assert policy.prompt_token_ids(info["messages"]) == trl_ids


@pytest.mark.slow
def test_grpo_trainer_two_steps_with_rollout_func(tiny_path, tmp_path, monkeypatch):
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(0)
    model = AutoModelForImageTextToText.from_pretrained(tiny_path)
    processor = AutoProcessor.from_pretrained(tiny_path, padding_side="left")
    adapter = TRLEnvAdapter(
        "GroundedVQA-HR-v0", env_kwargs=ENV_KWARGS, policy_cls=ExploringHFPolicy
    )
    args = GRPOConfig(
        output_dir=str(tmp_path),
        per_device_train_batch_size=4,
        num_generations=4,
        max_completion_length=8,
        max_steps=2,
        learning_rate=1e-2,
        logging_steps=1,
        report_to="none",
        use_cpu=True,
        bf16=False,
        save_strategy="no",
        gradient_checkpointing=False,
        dataloader_num_workers=0,
        seed=0,
        disable_tqdm=True,
    )
    trainer = GRPOTrainer(
        model=model,
        processing_class=processor,
        reward_funcs=adapter.reward_funcs("env_reward", "format_reward"),
        rollout_func=adapter.rollout_func,
        args=args,
        train_dataset=adapter.dataset(range(4)),
    )
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()
    logs = [h for h in trainer.state.log_history if "rewards/env_reward/mean" in h]
    assert len(logs) == 2
    assert any(h["rewards/env_reward/std"] > 0 for h in logs)
    assert all(np.isfinite(h["loss"]) for h in logs)
    moved = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert moved, "no parameter changed in two TRL steps"
    assert not os.path.exists(tmp_path / "checkpoint-2")
