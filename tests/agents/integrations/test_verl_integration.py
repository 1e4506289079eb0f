"""verl adapter: a 3-turn scripted episode through the agent loop (token-in/token-out, masks,
images, rewards), the loop and estimators found through verl's registries, SRPO advantages equal
to ours, and the recipe's configs."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("verl")

import hydra  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402
from transformers import AutoProcessor  # noqa: E402
from verl.experimental.agent_loop.agent_loop import DictConfigWrap, _agent_loop_registry  # noqa: E402
from verl.trainer.ppo import core_algos  # noqa: E402
from verl.workers.rollout.replica import TokenOutput  # noqa: E402

from agents.algos import srpo, srpo_target  # noqa: E402
from agents.integrations import verl as gg_verl  # noqa: E402
from agents.policies.tiny_qwen import tiny_env_kwargs, tiny_qwen25vl_path  # noqa: E402
from grounding_gym.envs.grounded_vqa import message_images  # noqa: E402

RECIPE = Path(__file__).resolve().parents[3] / "examples" / "verl"
ENV_KWARGS = tiny_env_kwargs(
    max_turns=3, dataset_kwargs={"num_samples": 2, "image_size": (256, 512), "seed": 3}
)
ACTIONS = ("<crop>[0, 0, 40, 48]</crop>", "<crop>[4, 4, 36, 40]</crop>", "<answer>A</answer>")
RESPONSE_LENGTH = 1024


@pytest.fixture(scope="module")
def processor():
    """The tiny processor as verl's ``hf_processor`` prepares a Qwen2.5-VL one: the model's
    ``get_rope_index`` bound to it, so the worker computes M-RoPE position ids. (verl matches
    the class name ``Qwen2_5_VLProcessor``; the tiny checkpoint's image-only subclass has
    another name, so the binding is repeated here.)"""
    import types

    from transformers import AutoConfig
    from transformers.models.qwen2_5_vl import Qwen2_5_VLModel

    path = tiny_qwen25vl_path()
    processor = AutoProcessor.from_pretrained(path)
    processor.config = AutoConfig.from_pretrained(path)
    for name in ("get_rope_index", "get_vision_position_ids"):
        if hasattr(Qwen2_5_VLModel, name):
            setattr(processor, name, types.MethodType(getattr(Qwen2_5_VLModel, name), processor))
    return processor


class ScriptedServer:
    """Stand-in for verl's server manager: returns scripted token ids (and log-probs) turn by
    turn, at most ``sampling_params["max_tokens"]`` of them as vLLM would, and records what it
    was asked (the prompt ids, images and sampling params the "model" saw)."""

    def __init__(self, turns: list[list[int]]):
        self.turns, self.calls = turns, []

    async def generate(self, request_id, *, prompt_ids, sampling_params, image_data=None, **kwargs):
        k = len(self.calls)
        self.calls.append(
            {
                "prompt_ids": list(prompt_ids),
                "images": list(image_data or []),
                "sampling_params": dict(sampling_params),
                **kwargs,
            }
        )
        ids = self.turns[k][: sampling_params.get("max_tokens")]
        return TokenOutput(token_ids=ids, log_probs=[-0.5 - k - i / 100 for i in range(len(ids))])


def charwise_ids(tokenizer, text: str) -> list[int]:
    """`text` tokenised one character at a time, then <|im_end|>: ids a model may emit but a
    re-tokenisation of the decoded text would not give back."""
    ids = [i for ch in text for i in tokenizer.encode(ch, add_special_tokens=False)]
    assert ids != tokenizer.encode(
        text, add_special_tokens=False
    )  # otherwise the test proves nothing
    return ids + [tokenizer.convert_tokens_to_ids("<|im_end|>")]


def make_loop(processor, server, response_length=RESPONSE_LENGTH, **entry_kwargs):
    config = OmegaConf.create(
        {
            "actor_rollout_ref": {
                "rollout": {"prompt_length": 4096, "response_length": response_length}
            }
        }
    )
    entry = {
        **_agent_loop_registry[gg_verl.AGENT_LOOP_NAME],
        "env_kwargs": ENV_KWARGS,
        **entry_kwargs,
    }
    return hydra.utils.instantiate(
        config=entry,
        trainer_config=DictConfigWrap(config),
        server_manager=server,
        tokenizer=processor.tokenizer,
        processor=processor,
        hf_model_type="qwen2_5_vl",
        dataset_cls=None,
        data_config=DictConfigWrap(OmegaConf.create({})),
    )


def play(loop, coroutine):
    """Run an agent-loop coroutine on the event loop the agent loop was built with (verl's)."""
    return loop.loop.run_until_complete(coroutine)


def render(processor, messages, generation_prompt: bool) -> list[int]:
    """Token ids of `messages` as the processor renders them (image pads expanded)."""
    text = processor.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=generation_prompt
    )
    images = message_images(messages) or None
    return [int(i) for i in processor(text=[text], images=images)["input_ids"][0]]


def reference_episode(sample_id):
    """The same episode stepped in a fresh env: observations, rewards and infos."""
    import gymnasium as gym

    env = gym.make("GroundedVQA-HR-v0", **ENV_KWARGS).unwrapped
    obs, info = env.reset(options={"sample_id": sample_id})
    steps = [(obs, 0.0, info)]
    for action in ACTIONS:
        obs, reward, terminated, truncated, info = env.step(action)
        steps.append((obs, reward, info))
    assert terminated and not truncated
    return steps


def test_agent_loop_is_in_verl_registry():
    entry = _agent_loop_registry[gg_verl.AGENT_LOOP_NAME]
    assert hydra.utils.get_class(entry["_target_"]) is gg_verl.GroundingGymAgentLoop


def test_three_turn_episode_token_in_token_out(processor):
    tok = processor.tokenizer
    scripted = [charwise_ids(tok, a) for a in ACTIONS]
    server = ScriptedServer(scripted)
    loop = make_loop(processor, server)
    out = play(
        loop,
        loop.run(
            {"temperature": 1.0}, priority=np.int64(7), raw_prompt=[], extra_info={"sample_id": 1}
        ),
    )
    # verl's per-row priority and the processor kwargs go with every request, as in its loops
    assert [c["priority"] for c in server.calls] == [7, 7, 7]
    assert all(c["mm_processor_kwargs"] == {} for c in server.calls)

    steps = reference_episode(1)
    final_messages = steps[-1][2]["messages"]  # system, user, (assistant, user) x 2, assistant
    assert [m["role"] for m in final_messages] == [
        "system",
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
        "assistant",
    ]

    # prompt: the env's first two messages, rendered once by the processor
    assert out.prompt_ids == render(processor, final_messages[:2], True)
    # response: generated ids as generated (mask 1); between them each env turn, rendered as the
    # chat template continues the dialogue ("\n" closing the assistant turn, user turn with its
    # crop's image pads, assistant header), mask 0
    newline = tok.encode("\n", add_special_tokens=False)
    expected_ids, expected_mask, expected_logprobs = [], [], []
    for k, ids in enumerate(scripted):
        expected_ids += ids
        expected_mask += [1] * len(ids)
        expected_logprobs += [-0.5 - k - i / 100 for i in range(len(ids))]
        if k < 2:
            upto_assistant = final_messages[: 3 + 2 * k]
            full = render(processor, final_messages[: 4 + 2 * k], True)
            context = newline + full[len(render(processor, upto_assistant, False)) :]
            expected_ids += context
            expected_mask += [0] * len(context)
            expected_logprobs += [0.0] * len(context)
    assert out.response_ids == expected_ids
    assert out.response_mask == expected_mask
    assert out.response_logprobs == pytest.approx(expected_logprobs)
    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    assert all(
        m == 0 for t, m in zip(out.response_ids, out.response_mask, strict=True) if t == image_pad
    )

    # what the model saw at each call: everything so far, and the images so far
    sequence = out.prompt_ids + out.response_ids
    starts = [
        i
        for i in range(len(expected_mask))
        if expected_mask[i] and (i == 0 or not expected_mask[i - 1])
    ]
    assert [c["prompt_ids"] for c in server.calls] == [
        sequence[: len(out.prompt_ids) + s] for s in starts
    ]
    assert [len(c["images"]) for c in server.calls] == [1, 2, 3]
    # each turn may generate what is left of response_length
    assert [c["sampling_params"]["max_tokens"] for c in server.calls] == [
        RESPONSE_LENGTH - s for s in starts
    ]

    # images: first view, then each crop, pixel-equal to the env's observations
    views = [obs["image"] for obs, _, _ in steps[:3]]
    images = out.multi_modal_data["images"]
    assert len(images) == 3
    for image, view in zip(images, views, strict=True):
        np.testing.assert_array_equal(np.asarray(image), view)

    # rewards and scale metadata
    infos = [info for _, _, info in steps]
    assert out.reward_score == pytest.approx(sum(r for _, r, _ in steps))
    extra = out.extra_fields["reward_extra_info"]
    assert set(extra) == set(gg_verl.EPISODE_FIELDS)
    for term in ("answer", "format", "grounding"):
        assert extra[term] == pytest.approx(sum(i["reward_terms"][term] for i in infos[1:]))
    assert extra["rel_areas"] == pytest.approx(infos[1]["crop_rel_area"])
    assert extra["target_rel_areas"] == pytest.approx(infos[0]["target_rel_area"])
    assert extra["num_crops"] == 2.0 and extra["correct"] == float(bool(infos[-1]["correct"]))
    assert out.num_turns == 7
    assert out.metrics.generate_sequences > 0


def postprocess_worker(processor, response_length):
    """verl's AgentLoopWorker without Ray: only the attributes its post-processing reads, as
    verl 0.9.1 names them."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopWorker

    worker = AgentLoopWorker.__new__(AgentLoopWorker)
    worker.rollout_config = OmegaConf.create(
        {"prompt_length": 4096, "response_length": response_length}
    )
    worker.tokenizer, worker.processor, worker.mm_processor_kwargs = (
        processor.tokenizer,
        processor,
        {},
    )
    worker.reward_loop_worker_handles, worker.distillation_enabled = None, False
    return worker


@pytest.fixture(scope="module")
def full_episode(processor):
    """The scripted 3-turn episode of sample 0 with room to spare, and its scripted turns."""
    scripted = [charwise_ids(processor.tokenizer, a) for a in ACTIONS]
    loop = make_loop(processor, ScriptedServer(scripted))
    return play(loop, loop.run({}, raw_prompt=[], extra_info={"sample_id": 0})), scripted


CUTS = ("before_crop_image", "inside_image_pads", "after_image_pads", "after_env_turn")


def cut_length(out, scripted, pad_id: int, where: str) -> int:
    """A response_length that cuts the full episode's first env turn (the first crop) at `where`."""
    first_gen = len(scripted[0])
    env_end = out.response_mask.index(1, first_gen)  # the second generation starts here
    pad = out.response_ids.index(pad_id, first_gen)
    pads = out.response_ids[pad:env_end].count(pad_id)
    assert pads >= 4 and out.response_ids[pad : pad + pads] == [pad_id] * pads
    return {
        "before_crop_image": first_gen + 2,  # in the user turn's text, before <|vision_start|>
        "inside_image_pads": pad + pads // 2,
        "after_image_pads": pad + pads + 1,  # the pads kept, <|vision_end|> cut
        "after_env_turn": env_end + 3,  # the env turn whole, 3 tokens of the next generation
    }[where]


@pytest.mark.parametrize(
    "device", ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)], ids=["cpu", "cuda"]
)
@pytest.mark.parametrize("where", CUTS)
def test_cut_episode_feeds_verl_postprocess_and_model_forward(
    processor, full_episode, where, device
):
    """An episode cut at response_length, wherever the cut falls, goes through verl's worker
    post-processing and the tiny Qwen2.5-VL's forward: an env turn that would overflow is
    dropped whole (as ToolAgentLoop does), so image pads and images stay aligned. A slice of
    the merged sequence cut inside the pads made the forward raise 'Image features and image
    tokens do not match'."""
    from transformers import AutoModelForImageTextToText

    if device == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    full, scripted = full_episode
    length = cut_length(full, scripted, pad_id, where)
    server = ScriptedServer(scripted)
    loop = make_loop(processor, server, response_length=length)
    out = play(loop, loop.run({}, raw_prompt=[], extra_info={"sample_id": 0}))

    assert out.prompt_ids == full.prompt_ids
    assert out.extra_fields["reward_extra_info"]["cut"] == 1.0
    # each turn may generate at most what is left of the budget
    assert [c["sampling_params"]["max_tokens"] for c in server.calls][0] == length
    if where == "after_env_turn":  # the env turn fits: kept, then the next generation is cut
        assert server.calls[1]["sampling_params"]["max_tokens"] == 3
        assert out.response_ids == full.response_ids[:length]
        assert out.response_mask == full.response_mask[:length]
        kept_images = 2
    else:  # the env turn does not fit: dropped whole with its image; the episode ends
        assert len(server.calls) == 1
        assert out.response_ids == scripted[0] and out.response_mask == [1] * len(scripted[0])
        kept_images = 1
    images = out.multi_modal_data["images"]
    assert len(images) == kept_images
    for image, full_image in zip(images, full.multi_modal_data["images"], strict=False):
        np.testing.assert_array_equal(np.asarray(image), np.asarray(full_image))

    worker = postprocess_worker(processor, length)
    data = worker._postprocess(
        [play(loop, worker._agent_loop_postprocess(out, False, raw_prompt=[]))]
    )
    (inputs,) = data.non_tensor_batch["multi_modal_inputs"]
    assert inputs["image_grid_thw"].shape[0] == kept_images
    merged_patches = int(inputs["image_grid_thw"].prod(-1).sum()) // 4  # spatial merge 2x2
    assert merged_patches == int((data.batch["input_ids"][0] == pad_id).sum())

    model = AutoModelForImageTextToText.from_pretrained(tiny_qwen25vl_path()).to(device).eval()
    batch = data.batch
    with torch.no_grad():
        logits = model(
            input_ids=batch["input_ids"].to(device),
            attention_mask=batch["attention_mask"].to(device),
            position_ids=batch["position_ids"].transpose(0, 1).to(device),  # (4, bs, L), as verl
            pixel_values=inputs["pixel_values"].to(device),
            image_grid_thw=inputs["image_grid_thw"].to(device),
        ).logits
    assert logits.shape[:2] == batch["input_ids"].shape and torch.isfinite(logits).all()


def test_verl_worker_postprocessing_keeps_images_and_scales(processor):
    """Two episodes through verl's own AgentLoopWorker post-processing (padding, the processor
    re-run on the decoded sequence with our images, batching): every image pad has its pixels,
    the env's return is the score and its scale reaches non_tensor_batch."""
    tok = processor.tokenizer
    scripted = [charwise_ids(tok, a) for a in ACTIONS]
    worker = postprocess_worker(processor, RESPONSE_LENGTH)
    padded = []
    for sample_id in (0, 1):
        loop = make_loop(processor, ScriptedServer(scripted))
        out = play(loop, loop.run({}, raw_prompt=[], extra_info={"sample_id": sample_id}))
        padded.append(play(loop, worker._agent_loop_postprocess(out, False, raw_prompt=[])))
    data = worker._postprocess(padded)

    image_pad = tok.convert_tokens_to_ids("<|image_pad|>")
    for row, inputs in enumerate(data.non_tensor_batch["multi_modal_inputs"]):
        assert inputs["image_grid_thw"].shape[0] == 3  # first view + 2 crops
        merged_patches = int(inputs["image_grid_thw"].prod(-1).sum()) // 4  # spatial merge 2x2
        assert merged_patches == int((data.batch["input_ids"][row] == image_pad).sum())
    returns = [reference_episode(s) for s in (0, 1)]
    rewards = [sum(r for _, r, _ in steps) for steps in returns]
    assert data.batch["rm_scores"].sum(-1).tolist() == pytest.approx(rewards)
    rel_areas = [steps[1][2]["crop_rel_area"] for steps in returns]
    assert data.non_tensor_batch["rel_areas"].tolist() == pytest.approx(rel_areas)
    assert set(gg_verl.EPISODE_FIELDS) <= set(data.meta_info["reward_extra_keys"])


@pytest.fixture(scope="module")
def transfer_queue():
    """A real TransferQueue (controller and one storage unit as Ray actors on a local Ray), as
    verl's v1 trainer starts it; shut down after the module."""
    ray = pytest.importorskip("ray")
    tq = pytest.importorskip("transfer_queue")
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    try:
        tq.init(OmegaConf.create({"backend": {"SimpleStorage": {"num_data_storage_units": 1}}}))
        yield tq
    finally:
        tq.close()
        ray.shutdown()


def recipe_config(estimator: str):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(RECIPE), version_base=None):
        return compose(
            config_name="grounding_gym", overrides=[f"algorithm.adv_estimator={estimator}"]
        )


@pytest.mark.parametrize("estimator", ["srpo", "grpo"])
def test_v1_trainer_hands_rollout_scales_to_srpo(processor, transfer_queue, estimator):
    """verl's default (v1) trainer path end to end on CPU: episodes of our agent loop go through
    verl's v1 AgentLoopWorkerTQ post-processing into a real TransferQueue; the recipe's trainer
    (trainer.v1.trainer_mode = grounding_gym_sync) computes advantages from it. SRPO gets each
    rollout's crop scale and equals agents.algos.srpo; GRPO stays verl's own."""
    from transfer_queue import KVBatchMeta
    from verl.trainer.ppo.v1 import AgentLoopWorkerTQ, get_trainer_cls

    tok = processor.tokenizer
    worker_cls = (
        AgentLoopWorkerTQ.__ray_metadata__.modified_class.__ray_actor_class__
    )  # @ray.remote
    worker = worker_cls.__new__(worker_cls)  # the attributes its postprocess reads
    worker.tokenizer, worker.processor, worker.mm_processor_kwargs = tok, processor, {}
    worker.reward_loop_worker_handles, worker.distillation_enabled = None, False
    partition, keys, uid = "train", [], f"q{estimator}"
    for session, sample_id in enumerate((0, 1)):
        scripted = [charwise_ids(tok, a) for a in ACTIONS]
        loop = make_loop(processor, ScriptedServer(scripted))
        out = play(loop, loop.run({}, raw_prompt=[], extra_info={"sample_id": sample_id}))
        kwargs = {"uid": uid, "session_id": str(session), "global_steps": 1}
        play(loop, worker._agent_loop_postprocess(out, False, **kwargs))
        keys.append(f"{uid}_{session}_0")

    # the actor's recomputed log-probs, which the trainer stores before advantages (on-policy:
    # equal to the rollout's)
    from tensordict import TensorDict

    logprobs = transfer_queue.kv_batch_get(
        keys=keys, partition_id=partition, select_fields=["rollout_log_probs"]
    )["rollout_log_probs"]
    transfer_queue.kv_batch_put(
        keys=keys,
        partition_id=partition,
        fields=TensorDict({"old_log_probs": logprobs}, batch_size=len(keys)),
    )

    config = recipe_config(estimator)
    mode = config.trainer.v1.trainer_mode
    assert config.trainer.use_v1 is True and mode == "grounding_gym_sync"
    trainer = get_trainer_cls(mode).__new__(get_trainer_cls(mode))
    trainer.config = config
    batch = KVBatchMeta(keys=keys, tags=[{} for _ in keys], partition_id=partition)
    trainer._compute_advantage(batch, metrics={})
    got = transfer_queue.kv_batch_get(
        keys=keys, partition_id=partition, select_fields=["advantages", "response_mask"]
    )
    padded = got.to_padded_tensor()  # as verl's trainer reads it
    mask, advantages = padded["response_mask"].float(), padded["advantages"]

    returns = [reference_episode(s) for s in (0, 1)]
    rewards = [sum(r for _, r, _ in steps) for steps in returns]
    if estimator == "srpo":
        rel_areas = [steps[1][2]["crop_rel_area"] for steps in returns]
        expected = srpo(rewards, [uid, uid], rel_areas=rel_areas)
        assert expected.abs().sum() > 0
        torch.testing.assert_close(advantages, expected[:, None] * mask)
    else:
        token_rewards = torch.zeros_like(mask)
        token_rewards[torch.arange(2), mask.sum(-1).long() - 1] = torch.tensor(rewards)
        expected, _ = core_algos.compute_grpo_outcome_advantage(
            token_rewards, mask, np.array([uid, uid], dtype=object)
        )
        torch.testing.assert_close(advantages, expected)


def test_env_make_and_reset_run_off_the_event_loop(processor, monkeypatch):
    """gym.make and env.reset render images (~0.5 s each on 4K sources): they run in an executor
    thread, never on the worker's event loop that all its episodes share."""
    import threading

    from grounding_gym.envs.grounded_vqa import GroundedVQAEnv

    threads: dict[str, int] = {}
    init, reset = GroundedVQAEnv.__init__, GroundedVQAEnv.reset

    def recording_init(self, *args, **kwargs):
        threads["make"] = threading.get_ident()
        init(self, *args, **kwargs)

    def recording_reset(self, *args, **kwargs):
        threads["reset"] = threading.get_ident()
        return reset(self, *args, **kwargs)

    monkeypatch.setattr(GroundedVQAEnv, "__init__", recording_init)
    monkeypatch.setattr(GroundedVQAEnv, "reset", recording_reset)
    scripted = [charwise_ids(processor.tokenizer, a) for a in ACTIONS]
    # env kwargs no other test uses: the pool has no such env yet, so this episode makes one
    loop = make_loop(processor, ScriptedServer(scripted), env_kwargs={**ENV_KWARGS, "max_turns": 4})
    play(loop, loop.run({}, raw_prompt=[], extra_info={"sample_id": 0}))
    event_loop_thread = threading.get_ident()  # play() runs the loop in this thread
    assert set(threads) == {"make", "reset"}
    assert event_loop_thread not in threads.values()


def test_remote_env_episodes_equal_local(processor):
    """The agent loop with env_url against a real `grounding-gym serve` on loopback: 3 episodes
    give the same ids, masks, log-probs, images, rewards and scale fields as in process."""
    from grounding_gym.remote import serve_subprocess

    env_kwargs = {
        **ENV_KWARGS,
        "dataset_kwargs": {**ENV_KWARGS["dataset_kwargs"], "num_samples": 3},
    }
    scripted = [charwise_ids(processor.tokenizer, a) for a in ACTIONS]
    with serve_subprocess("GroundedVQA-HR-v0", env_kwargs) as url:
        for sample_id in (0, 1, 2):
            outs = []
            for where in ({"env_kwargs": env_kwargs}, {"env_kwargs": {}, "env_url": url}):
                loop = make_loop(processor, ScriptedServer(scripted), **where)
                row = {"raw_prompt": [], "extra_info": {"sample_id": sample_id}}
                outs.append(play(loop, loop.run({}, **row)))
            local, remote = outs
            for field in ("prompt_ids", "response_ids", "response_mask", "response_logprobs"):
                assert getattr(remote, field) == getattr(local, field)
            assert remote.reward_score == local.reward_score
            np.testing.assert_equal(
                remote.extra_fields["reward_extra_info"], local.extra_fields["reward_extra_info"]
            )
            images = [m.multi_modal_data["images"] for m in outs]
            assert len(images[0]) == len(images[1]) == 3
            for a, b in zip(*images, strict=True):
                np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match="serves"):  # a server of another id: a clear error
        with serve_subprocess("GroundedVQA-v0") as url:
            loop = make_loop(processor, ScriptedServer(scripted), env_kwargs={}, env_url=url)
            play(loop, loop.run({}, raw_prompt=[], extra_info={"sample_id": 0}))


def test_row_without_sample_id_is_a_clear_error(processor):
    loop = make_loop(processor, ScriptedServer([]))
    with pytest.raises(ValueError, match="sample_id"):
        play(loop, loop.run({}, raw_prompt=[], extra_info={"index": 3}))


# ------------------------------------------------------------------------------ estimators


def random_batch(seed: int = 0, groups: int = 3, size: int = 4, length: int = 9):
    rng = np.random.default_rng(seed)
    bs = groups * size
    lengths = rng.integers(1, length + 1, bs)
    mask = torch.tensor(np.arange(length)[None, :] < lengths[:, None], dtype=torch.float32)
    rewards = rng.integers(0, 3, bs).astype(np.float32) / 2
    token_rewards = torch.zeros(bs, length)
    token_rewards[torch.arange(bs), torch.as_tensor(lengths - 1)] = torch.as_tensor(rewards)
    uid = np.array([f"q{g}" for g in range(groups) for _ in range(size)], dtype=object)
    rel = rng.choice([0.02, 0.05, 0.2, 0.5, math.nan], bs)
    target = np.repeat(rng.choice([5e-4, 5e-3, 5e-2], groups), size)
    non_tensor = {"uid": uid, "rel_areas": rel.astype(object), "target_rel_areas": target}
    return token_rewards, mask, rewards, lengths, non_tensor


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_srpo_from_verl_registry_equals_ours(seed):
    token_rewards, mask, rewards, _, nt = random_batch(seed)
    fn = core_algos.get_adv_estimator_fn("srpo")
    assert fn.__name__ == "verl_srpo"
    adv, returns = fn(
        token_level_rewards=token_rewards, response_mask=mask, index=nt["uid"], non_tensor_batch=nt
    )
    ref = srpo(rewards, list(nt["uid"]), rel_areas=nt["rel_areas"].astype(float))
    torch.testing.assert_close(adv, ref[:, None] * mask)
    torch.testing.assert_close(returns, adv)
    assert ref.abs().sum() > 0  # a batch where SRPO gives non-zero advantages


def test_srpo_options_from_algorithm_config():
    token_rewards, mask, rewards, _, nt = random_batch(4)
    config = OmegaConf.create({"srpo_kwargs": {"no_box": "exclude", "bin_edges": [0.03, 0.3]}})
    adv, _ = core_algos.get_adv_estimator_fn("srpo")(
        token_rewards, mask, nt["uid"], config=config, non_tensor_batch=nt
    )
    ref = srpo(
        rewards,
        list(nt["uid"]),
        rel_areas=nt["rel_areas"].astype(float),
        no_box="exclude",
        bin_edges=(0.03, 0.3),
    )
    torch.testing.assert_close(adv, ref[:, None] * mask)
    with pytest.raises(ValueError, match="no_bx"):
        core_algos.get_adv_estimator_fn("srpo")(
            token_rewards,
            mask,
            nt["uid"],
            config={"srpo_kwargs": {"no_bx": 1}},
            non_tensor_batch=nt,
        )


def test_srpo_target_from_verl_registry_equals_ours():
    token_rewards, mask, rewards, lengths, nt = random_batch(5)
    adv, _ = core_algos.get_adv_estimator_fn("srpo_target")(
        token_rewards, mask, nt["uid"], non_tensor_batch=nt
    )
    ref = srpo_target(
        rewards, list(nt["uid"]), target_rel_areas=nt["target_rel_areas"], lengths=lengths
    )
    torch.testing.assert_close(adv, ref[:, None] * mask)


def test_missing_rollout_field_is_a_clear_error():
    token_rewards, mask, _, _, nt = random_batch(0)
    with pytest.raises(ValueError, match="rel_areas.*trainer_mode=grounding_gym_"):
        core_algos.get_adv_estimator_fn("srpo")(
            token_rewards, mask, nt["uid"], non_tensor_batch={"uid": nt["uid"]}
        )


# ------------------------------------------------------------------------------ recipe


@pytest.mark.slow
@pytest.mark.parametrize("estimator", ["grpo", "srpo", "srpo_target"])
def test_recipe_config_composes_and_validates(estimator):
    from hydra import compose, initialize_config_dir
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import omega_conf_to_dataclass, validate_config

    with initialize_config_dir(config_dir=str(RECIPE), version_base=None):
        cfg = compose(
            config_name="grounding_gym", overrides=[f"algorithm.adv_estimator={estimator}"]
        )
    validate_config(
        config=cfg, use_reference_policy=need_reference_policy(cfg), use_critic=need_critic(cfg)
    )
    rollout = omega_conf_to_dataclass(cfg.actor_rollout_ref.rollout)
    assert rollout.agent.default_agent_loop == gg_verl.AGENT_LOOP_NAME
    assert rollout.multi_turn.enable and rollout.n > 1  # groups to compare within
    assert callable(core_algos.get_adv_estimator_fn(estimator))  # grpo: verl's own
    # verl's default (v1) trainer, never the deprecated legacy one; our variant of its sync mode
    assert cfg.trainer.use_v1 is True
    assert cfg.trainer.v1.trainer_mode == "grounding_gym_sync"
    (entry,) = OmegaConf.load(RECIPE / "agent_loop.yaml")
    assert rollout.limit_images == entry.env_kwargs.max_turns  # first view + a crop per turn
    hook = cfg.ray_kwargs.ray_init.runtime_env.worker_process_setup_hook
    assert hydra.utils.get_method(hook) is gg_verl.setup_ray_worker


def test_recipe_agent_loop_entry_and_rows_drive_the_env(tmp_path):
    import runpy

    import gymnasium as gym
    import pyarrow.parquet as pq

    (entry,) = OmegaConf.load(RECIPE / "agent_loop.yaml")
    assert entry.name == gg_verl.AGENT_LOOP_NAME
    assert hydra.utils.get_class(entry._target_) is gg_verl.GroundingGymAgentLoop
    prepare_data = runpy.run_path(str(RECIPE / "prepare_data.py"))["main"]
    prepare_data(
        [
            "--out",
            str(tmp_path),
            "--train-kwargs",
            '{"num_samples": 3, "seed": 0}',
            "--val-kwargs",
            '{"num_samples": 2, "seed": 1}',
        ]
    )
    rows = pq.read_table(tmp_path / "train.parquet").to_pylist()
    assert len(rows) == 3 and all(r["agent_name"] == gg_verl.AGENT_LOOP_NAME for r in rows)
    extra = rows[2]["extra_info"]
    env = gym.make(
        entry.env_id, **{**OmegaConf.to_container(entry.env_kwargs), **extra["env_kwargs"]}
    ).unwrapped
    _, info = env.reset(options={"sample_id": extra["sample_id"]})
    assert (
        info["sample_id"] == extra["sample_id"]
        and rows[2]["reward_model"]["ground_truth"] == env.sample.answer
    )
