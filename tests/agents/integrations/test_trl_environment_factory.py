"""TRL `environment_factory`: the tool env, its rewards, the example script, and crop images in
the training forward pass of `GRPOTrainer`."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("trl")
pytest.importorskip("datasets")

from agents.integrations.trl_environment import (  # noqa: E402
    TOOL_REWARDS,
    TOOL_SYSTEM_PROMPT,
    GroundingToolEnv,
    make_srpo_reward,
    tool_calling_processor,
    tool_dataset,
    tool_reward_funcs,
)
from agents.policies.tiny_qwen import tiny_env_kwargs  # noqa: E402
from grounding_gym.geometry import from_original  # noqa: E402

ROOT = Path(__file__).resolve().parents[3]
ENV_KWARGS = tiny_env_kwargs(
    max_turns=3, dataset_kwargs={"num_samples": 4, "image_size": (256, 512), "seed": 3}
)


@pytest.fixture()
def tool_env() -> GroundingToolEnv:
    return GroundingToolEnv("GroundedVQA-HR-v0", ENV_KWARGS)


def gt_crop_args(env: GroundingToolEnv) -> dict[str, float]:
    """The ground-truth box in the current view's frame, as crop tool arguments."""
    inner = env.env
    box = from_original(
        inner.sample.gt_boxes[0], inner.coord_frame, inner.view_box, inner.view_size
    )
    return dict(zip(("x1", "y1", "x2", "y2"), box.as_tuple(), strict=True))


def test_reset_returns_the_first_user_text(tool_env):
    text = tool_env.reset(sample_id=1, prompt=[], image=None)
    assert text.startswith("Question:") and "Options:" in text
    assert tool_env.sample_id == tool_env.env.sample.id and not tool_env.done
    assert tool_env.env.messages[0]["content"][0]["text"] == TOOL_SYSTEM_PROMPT
    with pytest.raises(ValueError, match="sample_id"):
        tool_env.reset(prompt=[])


def test_crop_returns_the_env_view_as_an_image_and_answer_ends(tool_env):
    tool_env.reset(sample_id=0)
    first_view = np.asarray(tool_env.views[0])
    result = tool_env.crop(**gt_crop_args(tool_env))
    image, text = result
    assert image["type"] == "image" and text["type"] == "text"
    assert text["text"].startswith("Zoomed in on")
    crop_view = np.asarray(image["image"])
    assert crop_view.shape != first_view.shape or not np.array_equal(crop_view, first_view)
    np.testing.assert_array_equal(crop_view, np.asarray(tool_env.views[1]))  # what the env shows
    iou = tool_env.step_infos[-1]["crop_iou"]
    assert iou > 0
    assert tool_env.crop_rel_area == pytest.approx(tool_env.step_infos[-1]["crop_rel_area"])

    answer = tool_env.env.sample.answer
    assert tool_env.answer(answer) == f"Answer {answer!r} recorded; the episode is over."
    assert tool_env.done
    terms = tool_env.reward_terms
    assert terms["answer"] == 1.0 and terms["format"] == 1.0  # crop + answer, both well formed
    assert terms["grounding"] == pytest.approx(iou)
    weights = tool_env.env.reward_weights
    assert tool_env.episode_return == pytest.approx(
        sum(weights[k] * terms[k] for k in ("answer", "format", "grounding"))
    )
    assert tool_env.crop(1, 2, 3, 4).startswith("Error: the episode is over (an answer was given)")


def test_bad_tool_arguments_return_messages_not_exceptions(tool_env):
    tool_env.reset(sample_id=2)
    assert tool_env.crop("left", 0, 10, 10).startswith("Error: crop needs four numbers")
    assert tool_env.crop([1, 2], 0, 10, 10).startswith("Error: crop needs four numbers")
    assert tool_env.step_infos == []  # no env step was taken
    assert "not a valid action" in tool_env.answer("")  # the env's own message; the episode goes on
    assert not tool_env.done and tool_env.reward_terms["format"] == 0.0
    refusing = GroundingToolEnv("GroundedVQA-HR-v0", {**ENV_KWARGS, "invalid_box": "reject"})
    refusing.reset(sample_id=2)
    message = refusing.crop(50, 50, 10, 10)  # inverted box: refused, no new view
    assert isinstance(message, str) and "not a valid action" in message
    assert len(refusing.views) == 1


def test_turn_budget_ends_the_episode(tool_env):
    tool_env.reset(sample_id=3)
    for _ in range(3):
        assert isinstance(tool_env.crop(0, 0, 56, 56), list)
    assert tool_env.done and tool_env.reward_terms["answer"] == 0.0
    assert "no turns are left" in tool_env.answer("A")


def test_reward_functions_read_the_environments():
    envs = [GroundingToolEnv("GroundedVQA-HR-v0", ENV_KWARGS) for _ in range(4)]
    for env in envs:
        env.reset(sample_id=0)
    envs[0].crop(**gt_crop_args(envs[0]))
    envs[1].crop(0, 0, 30, 30)
    envs[2].crop(0, 0, 30, 30)
    for env, letter in zip(envs[:3], "ABC", strict=False):
        env.answer(letter)
    # envs[3] never calls a tool: no terms at all, no crop area
    completions = [[{"role": "assistant", "content": ""}]] * 4
    funcs = {**TOOL_REWARDS, "srpo_reward": make_srpo_reward(num_generations=4)}
    with pytest.warns(UserWarning, match="3 of 4 episodes lost 6 tool result"):
        rewards = {name: f(completions, environments=envs) for name, f in funcs.items()}
    answer = envs[0].env.sample.answer
    assert rewards["answer_reward"] == [float(answer == letter) for letter in "ABC"] + [0.0]
    assert rewards["format_reward"] == [1.0, 1.0, 1.0, 0.0]  # the mean over turns
    weights = envs[0].env.reward_weights
    assert rewards["env_reward"] == [
        pytest.approx(
            sum(weights[k] * env.reward_terms[k] for k in ("answer", "format", "grounding"))
        )
        for env in envs
    ]
    assert rewards["grounding_reward"][0] > 0 and rewards["grounding_reward"][3] == 0.0
    assert rewards["grounding_reward"][0] == pytest.approx(envs[0].step_infos[0]["crop_iou"])
    assert rewards["crop_rel_area"][3] is None and all(a > 0 for a in rewards["crop_rel_area"][:3])
    assert rewards["target_rel_area"] == [pytest.approx(envs[0].target_rel_area)] * 4

    from agents.algos import srpo

    areas = [env.crop_rel_area for env in envs]
    want = srpo([env.episode_return for env in envs], [0] * 4, rel_areas=areas).tolist()
    np.testing.assert_allclose(rewards["srpo_reward"], want, atol=1e-6)
    assert abs(np.mean(rewards["srpo_reward"])) < 1e-6  # TRL's r - mean(r) is the SRPO advantage
    edges = (1e-3, 1e-2)
    np.testing.assert_allclose(
        make_srpo_reward(4, bin_edges=edges)(completions, environments=envs),
        srpo([env.episode_return for env in envs], [0] * 4, rel_areas=areas, bin_edges=edges),
        atol=1e-6,
    )
    names = tool_reward_funcs("env_reward", "srpo_reward", num_generations=4)
    assert [f.__name__ for f in names] == ["env_reward", "srpo_reward"]
    with pytest.raises(ValueError, match="num_generations"):
        tool_reward_funcs("srpo_reward")
    other = GroundingToolEnv("GroundedVQA-HR-v0", ENV_KWARGS)
    other.reset(sample_id=1)
    with pytest.raises(ValueError, match="not the trainer's"):  # 2 blocks of 2 mix samples
        make_srpo_reward(2)(completions, environments=[*envs[:3], other])
    with pytest.raises(ValueError, match="choose from"):
        tool_reward_funcs("iou_reward")
    with pytest.raises(ValueError, match="environments"):
        TOOL_REWARDS["env_reward"](completions)


def test_dropped_tool_results_are_counted_against_the_completion(recwarn):
    """A tool result TRL dropped for the completion budget is missing from the completion's
    messages while the env counted the call; complete completions warn about nothing."""
    from agents.integrations.trl_environment import dropped_tool_results

    env = GroundingToolEnv("GroundedVQA-HR-v0", ENV_KWARGS)
    env.reset(sample_id=0)
    env.crop(0, 0, 40, 40)
    env.answer("A")
    call = {"role": "assistant", "content": "", "tool_calls": []}
    complete = [call, {"role": "tool", "content": []}, call, {"role": "tool", "content": "ok"}]
    assert env.tool_calls == 2
    assert dropped_tool_results(complete, env) == 0
    assert dropped_tool_results(complete[:3], env) == 1  # the answer's result was dropped
    TOOL_REWARDS["env_reward"]([complete], environments=[env])
    assert not [w for w in recwarn if "tool result" in str(w.message)]


def test_dataset_rows_and_tool_schema(tool_env):
    from transformers.utils import get_json_schema

    rows = tool_dataset(tool_env, range(2))
    assert rows["sample_id"] == [tool_env.env.dataset[i].id for i in range(2)]
    system, user = rows[0]["prompt"]
    assert system == {"role": "system", "content": TOOL_SYSTEM_PROMPT} and user == {
        "role": "user",
        "content": "",
    }
    tool_env.reset(sample_id=rows[0]["sample_id"])
    np.testing.assert_array_equal(np.asarray(rows[0]["image"]), np.asarray(tool_env.views[0]))
    crop = get_json_schema(tool_env.crop)["function"]
    assert crop["parameters"]["required"] == ["x1", "y1", "x2", "y2"]
    assert {p["type"] for p in crop["parameters"]["properties"].values()} == {"number"}
    assert "frame the question states" in crop["description"]  # the model sees how coordinates work
    assert (
        get_json_schema(tool_env.answer)["function"]["parameters"]["properties"]["choice"]["type"]
        == "string"
    )


def test_tool_calling_processor_swaps_only_qwen25vl_template():
    from trl.chat_template_utils import (
        qwen2_5_vl_chat_template,
        qwen3_vl_chat_template,
        supports_tool_calling,
    )

    from agents.policies.hf import load_processor
    from agents.policies.tiny_qwen import tiny_qwen25vl_path

    processor = load_processor(tiny_qwen25vl_path())
    assert processor.chat_template == qwen2_5_vl_chat_template and not supports_tool_calling(
        processor
    )
    assert tool_calling_processor(processor) is processor
    assert processor.chat_template == qwen3_vl_chat_template and supports_tool_calling(processor)
    image = Image.new("RGB", (112, 84))
    fields = processor.image_processor(images=[image])
    assert isinstance(fields["pixel_values"], torch.Tensor) and isinstance(
        fields["image_grid_thw"], torch.Tensor
    )
    processor.chat_template = "{{ messages[0]['content'] }}"
    with pytest.raises(ValueError, match="cannot render tool calls"):
        tool_calling_processor(processor)


# ---------------------------------------------------------------------- GRPOTrainer runs
def _load_example():
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "trl_environment_factory", ROOT / "examples/trl_environment_factory.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_example_script_runs_two_steps(tmp_path):
    args = [
        "--max-steps",
        "2",
        "--num-samples",
        "4",
        "--num-generations",
        "2",
        "--max-completion-length",
        "32",
    ]
    env = {**os.environ, "TRL_EXPERIMENTAL_SILENCE": "1"}
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "examples/trl_environment_factory.py"),
            *args,
            "--output-dir",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    logs = [
        line for line in out.stdout.splitlines() if line.startswith("{'loss'")
    ]  # TRL's per-step logs
    assert len(logs) == 2 and all(
        "'rewards/env_reward/mean'" in line and "'tools/call_frequency'" in line for line in logs
    )


CROP_CALL = (
    '<tool_call>\n{"name": "crop", "arguments": {"x1": 0, "y1": 0, "x2": 56, "y2": '
    "56}}\n</tool_call>"
)
ANSWER_CALL = '<tool_call>\n{{"name": "answer", "arguments": {{"choice": "{}"}}}}\n</tool_call>'


class _ScriptedTurns:
    """Logits processor forcing each row's new tokens to a scripted text, then end-of-turn."""

    def __init__(self, scripts: list[list[int]], prompt_length: int, eos_id: int):
        self.scripts, self.prompt_length, self.eos_id = scripts, prompt_length, eos_id

    def __call__(self, input_ids, scores):
        step = input_ids.shape[1] - self.prompt_length
        forced = torch.full_like(scores, -math.inf)
        for row, script in enumerate(self.scripts):
            forced[row, script[step] if step < len(script) else self.eos_id] = 0.0
        return forced


def script_generation(trainer, tokenizer) -> None:
    """Make the model's `generate` follow a script, whatever the random weights say: in the first
    training step every episode answers at once (an answer tool call, A, B, C, D by row); in
    later steps even rows first call crop, then answer after the crop's result, odd rows answer
    at once; after the answer's result, a short closing text."""
    from transformers import LogitsProcessorList

    model = trainer.model
    generate = model.generate

    def script(turn: int, row: int) -> str:
        calls = [CROP_CALL] if trainer.state.global_step > 0 and row % 2 == 0 else []
        calls.append(ANSWER_CALL.format("ABCD"[row % 4]))
        return calls[turn] if turn < len(calls) else "Done."

    def scripted_generate(*args, **kwargs):
        input_ids = kwargs["input_ids"]
        scripts = []
        for row, text in enumerate(tokenizer.batch_decode(input_ids)):
            scripts.append(
                tokenizer.encode(
                    script(text.count("<tool_response>"), row), add_special_tokens=False
                )
            )
        processor = _ScriptedTurns(
            scripts, input_ids.shape[1], tokenizer.convert_tokens_to_ids("<|im_end|>")
        )
        return generate(*args, logits_processor=LogitsProcessorList([processor]), **kwargs)

    model.generate = scripted_generate


@pytest.mark.slow
def test_crop_images_of_later_turns_reach_the_training_forward(tmp_path):
    """The tiny random model almost never writes a valid tool call, so its generation is
    SCRIPTED: `model.generate` gets a logits processor that forces the tool calls (the only
    change: which tokens are sampled; TRL parses them, runs the tools, builds the next turn's
    prompt with the crop image, and trains as usual). Step 1: every episode calls `answer`
    at once (text-only tool results: the path that needs `tool_calling_processor`'s image
    tensors). Step 2, a mixed batch: episodes 0 and 2 call `crop` on turn 1 and `answer` on
    turn 2, episodes 1 and 3 answer at once. A forward pre-hook records what the
    model receives when gradients are on (the training forward; generation runs under no_grad):
    each row's `pixel_values` (split by its image-token count) must equal exactly one episode's
    processed views, first view then crop."""
    example = _load_example()
    args = example.parse_args(
        [
            "--max-steps",
            "2",
            "--num-samples",
            "4",
            "--num-generations",
            "4",
            "--max-turns",
            "3",
            "--max-completion-length",
            "192",
            "--lr",
            "1e-2",
            "--output-dir",
            str(tmp_path),
        ]
    )
    trainer = example.build_trainer(args)
    model, processor = trainer.model, trainer.processing_class
    assert sorted(tool.__name__ for tool in trainer._env_tools[None]) == ["answer", "crop"]
    script_generation(trainer, processor.tokenizer)

    forwards = []

    def record(module, f_args, f_kwargs):
        if torch.is_grad_enabled():
            views = [env.views for env in trainer.environments]
            forwards.append(
                {
                    **{k: f_kwargs.get(k) for k in ("input_ids", "pixel_values", "image_grid_thw")},
                    "views": views,
                }
            )

    model.register_forward_pre_hook(record, with_kwargs=True)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    trainer.train()

    assert len(forwards) == 2  # one training forward per step
    image_pad = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for images_per_episode, forward in zip(([1, 1, 1, 1], [2, 1, 2, 1]), forwards, strict=True):
        episode_views = forward[
            "views"
        ]  # per episode: the first view, then the crop's view if it zoomed
        assert [len(views) for views in episode_views] == images_per_episode
        assert len(forward["image_grid_thw"]) == sum(images_per_episode)
        # TRL shuffles the rows before the forward: match each row to one episode by its pixels
        patches_per_row = (forward["input_ids"] == image_pad).sum(
            dim=1
        ) * 4  # an image token = 2x2 patches
        rows = forward["pixel_values"].split(patches_per_row.tolist())
        episodes = [
            processor.image_processor(images=views, return_tensors="pt")["pixel_values"]
            for views in episode_views
        ]
        for row in rows:
            match = next(
                (i for i, e in enumerate(episodes) if e.shape == row.shape and torch.equal(e, row)),
                None,
            )
            assert match is not None, (
                "a training row's images are not one episode's first view + crops"
            )
            episodes.pop(match)
    logs = [h for h in trainer.state.log_history if "rewards/answer_reward/mean" in h]
    assert [h["tools/call_frequency"] for h in logs] == [1.0, 1.5]
    assert all(h["tools/failure_frequency"] == 0.0 for h in logs)
    assert all(h["rewards/answer_reward/mean"] == 0.25 for h in logs)  # one of A-D is right
    assert [h["rewards/format_reward/mean"] for h in logs] == [1.0, 1.0]  # mean over turns
    assert (
        logs[0]["rewards/crop_rel_area/mean"] is None and logs[1]["rewards/crop_rel_area/mean"] > 0
    )
    moved = [n for n, p in model.named_parameters() if not torch.equal(before[n], p.detach())]
    assert moved, "no parameter changed in two TRL steps"


def test_remote_env_episodes_equal_local():
    """GroundingToolEnv(env_url=...) against a real `grounding-gym serve` on loopback: 3 episodes
    give the same tool results (texts, images), rewards, reward terms and scale metadata as the
    in-process env."""
    from agents.integrations.trl_environment import tool_env_kwargs
    from grounding_gym.remote import serve_subprocess

    with pytest.raises(ValueError, match="env_kwargs"):
        GroundingToolEnv("GroundedVQA-HR-v0", ENV_KWARGS, env_url="http://127.0.0.1:9")
    with serve_subprocess("GroundedVQA-HR-v0", tool_env_kwargs(ENV_KWARGS)) as url:
        remote = GroundingToolEnv("GroundedVQA-HR-v0", env_url=url)
        local = GroundingToolEnv("GroundedVQA-HR-v0", ENV_KWARGS)
        with pytest.raises(ValueError, match="serves 'GroundedVQA-HR-v0'"):
            GroundingToolEnv("GroundedVQA-v0", env_url=url)
        for sample_id in (0, 1, 2):
            texts = [env.reset(sample_id=sample_id) for env in (local, remote)]
            crops = [gt_crop_args(local), {"x1": 0, "y1": 0, "x2": 40, "y2": 48}]
            results = [texts]
            for args in crops:
                results.append([env.crop(**args) for env in (local, remote)])
            answer = local.env.sample.answer
            results.append([env.answer(answer) for env in (local, remote)])
            for local_result, remote_result in results:
                if isinstance(local_result, str):
                    assert remote_result == local_result
                    continue
                (local_image, local_text), (remote_image, remote_text) = local_result, remote_result
                assert remote_text == local_text
                np.testing.assert_array_equal(
                    np.asarray(remote_image["image"]), np.asarray(local_image["image"])
                )
            assert remote.done and local.done and remote.sample_id == local.sample_id
            assert remote.episode_return == local.episode_return
            assert remote.reward_terms == local.reward_terms
            assert remote.crop_rel_area == local.crop_rel_area
            assert remote.target_rel_area == local.target_rel_area
            assert len(remote.views) == len(local.views) == 3
        remote.env.close()
