"""LVLM fidelity: the inputs `HFPolicy` builds for a multi-turn episode equal transformers' own.

Our other HFPolicy tests compare act-time with recomputed log-probs, but both sides use our own
input building, so a shared mistake (an image dropped from a later turn, image tokens that do
not match the features, wrong M-RoPE positions, a template rendered differently) would pass
(re-tokenised text is covered there, with non-canonical generated ids). Here the
reference is built only from transformers' public API: `processor.apply_chat_template(whole
conversation, tokenize=True)` with the release's chat template, the model's own
`get_rope_index`, and a plain forward pass. Tiny random Qwen2-VL, Qwen2.5-VL and Qwen3-VL models
(`agents.policies.tiny_qwen.build_tiny_qwen_vl`) carry their releases' processor settings.

The episode: system; user (question + full view); assistant crop; a feedback turn with crop 1;
assistant crop; a feedback turn with crop 2 (another size and aspect); assistant answer. The
feedback role is "user" (what the envs send) or "tool" (tool-calling agents). No image is a
multiple of the patch factor, so the processor's `smart_resize` changes every one of them.
It runs one env at a time and as a batch of two envs of different lengths (padding).
The corruption tests show the comparison is not vacuous: dropping an image, shifting one
position id or swapping the two crops moves the answer's log-probs by more than 1e-3.

Random init (std 0.02) gives near-uniform attention, which barely reads positions (a one-token
position shift moves Qwen2/2.5-VL log-probs by < 1e-3); a trained model's attention is sharp.
So the tiny models' attention logits are scaled by `ATTENTION_SHARPNESS` (query and key x 5)
before every test here: then positions matter as they do in a trained model.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from transformers import Qwen2_5_VLProcessor, Qwen2VLProcessor, Qwen3VLProcessor  # noqa: E402

from agents.policies.base import Trajectory, Turn  # noqa: E402
from agents.policies.hf import HFPolicy  # noqa: E402
from agents.policies.qwen_chat_templates import QWEN2_VL_CHAT_TEMPLATE, QWEN3_VL_CHAT_TEMPLATE  # noqa: E402
from agents.policies.tiny_qwen import QWEN_VL_ARCHS, build_tiny_qwen_vl  # noqa: E402

EXACT = 1e-5  # float32: recompute vs one plain forward over the reference inputs
ACT_TOL = 1e-4  # float32: act-time (KV-cached generate) vs that forward, as in test_hf_policy.py
ATTENTION_SHARPNESS = 25.0  # attention logits x 25: query and key each x 5
VISIBLE = 1e-3  # a corruption must move the log-probs by more than this

SYSTEM = (
    "You answer questions about an image. Reply <crop>[x1, y1, x2, y2]</crop> or "
    "<answer>...</answer>."
)
ACTIONS = ("<crop>[40, 30, 160, 120]</crop>", "<crop>[10, 5, 60, 80]</crop>", "<answer>B</answer>")
IMAGE_SIZES = ((230, 170), (121, 90), (70, 150))  # (w, h) px: full view, crop 1, crop 2


def noise_image(size: tuple[int, int], seed: int) -> Image.Image:
    """uint8 noise with a bright rectangle: distinct content per image, deterministic."""
    w, h = size
    pixels = np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    pixels[h // 4 : h // 2, w // 3 : w // 2] = (255, 40, 40)
    return Image.fromarray(pixels)


def episode_messages(
    images: Sequence[Image.Image | None], feedback_role: str
) -> list[dict[str, Any]]:
    """The scripted 3-turn conversation, chat-template form (`None` = a turn without its image)."""

    def turn(role: str, image: Image.Image | None, text: str) -> dict[str, Any]:
        content = [] if image is None else [{"type": "image", "image": image}]
        return {"role": role, "content": [*content, {"type": "text", "text": text}]}

    def assistant(text: str) -> dict[str, Any]:
        return {"role": "assistant", "content": [{"type": "text", "text": text}]}

    view, crop1, crop2 = images
    return [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM}]},
        turn(
            "user", view, "Question: What is inside the red ring?\nOptions:\n(A) dots\n(B) stripes"
        ),
        assistant(ACTIONS[0]),
        turn(
            feedback_role,
            crop1,
            "Zoomed in on [40, 30, 160, 120] of the original, shown at 121x90 px.",
        ),
        assistant(ACTIONS[1]),
        turn(
            feedback_role,
            crop2,
            "Zoomed in on [50, 36, 90, 100] of the original, shown at 70x150 px.",
        ),
        assistant(ACTIONS[2]),
    ]


def episode_images() -> list[Image.Image]:
    return [noise_image(size, seed) for seed, size in enumerate(IMAGE_SIZES)]


@pytest.fixture(scope="module", params=sorted(QWEN_VL_ARCHS))
def arch(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def built(arch) -> tuple[Any, Any]:
    model, processor = build_tiny_qwen_vl(arch)
    sharpen_attention(model, ATTENTION_SHARPNESS)
    return model, processor


@pytest.fixture(scope="module")
def policy(arch, built) -> HFPolicy:
    model, processor = built
    spec = QWEN_VL_ARCHS[arch]
    return HFPolicy.from_model(
        model,
        processor,
        image_min_pixels=spec.min_pixels,
        image_max_pixels=spec.max_pixels,
        max_new_tokens=4,
    )


# ------------------------------------------------------------------------------------ helpers


def sharpen_attention(model, factor: float) -> None:
    """Scale every language-model attention logit by `factor` (query and key by its root):
    on the per-head q/k norms where the architecture has them (Qwen3), else on q/k_proj."""
    root = factor**0.5
    with torch.no_grad():
        for layer in model.model.language_model.layers:
            attn = layer.self_attn
            for module in (
                (attn.q_norm, attn.k_norm)
                if hasattr(attn, "q_norm")
                else (attn.q_proj, attn.k_proj)
            ):
                for param in module.parameters():
                    param.mul_(root)


@contextmanager
def recorded_forwards(model) -> Iterator[list[dict[str, torch.Tensor]]]:
    """Record every forward call of `model`: its tensor kwargs, plus the rope `position_ids`
    its language model received (the M-RoPE positions the model actually used)."""
    calls: list[dict[str, torch.Tensor]] = []

    def outer(module, args, kwargs):
        calls.append(
            {k: v.detach().clone() for k, v in kwargs.items() if isinstance(v, torch.Tensor)}
        )

    def inner(module, args, kwargs):
        positions = kwargs["position_ids"]  # (3, B, T), or (4, B, T) in generate: text row first
        calls[-1]["rope_position_ids"] = positions[-3:].detach().clone()

    handles = [
        model.register_forward_pre_hook(outer, with_kwargs=True),
        model.model.language_model.register_forward_pre_hook(inner, with_kwargs=True),
    ]
    try:
        yield calls
    finally:
        for handle in handles:
            handle.remove()


def run_episodes(
    policy: HFPolicy, conversations: Sequence[list[dict[str, Any]]]
) -> tuple[list[Trajectory], list[dict]]:
    """Play scripted episodes through `policy.act` exactly as the trainer does: one batched
    `act` call per turn over all envs (left padding), each env's context its conversation so
    far, the actions teacher-forced. Returns the trajectories and each turn's prefill call."""
    trajs = [
        Trajectory(sample_id=f"scripted-{b}", group_id=0, messages=m)
        for b, m in enumerate(conversations)
    ]
    prefills = []
    for k, action in enumerate(ACTIONS):
        contexts = [{"messages": assistant_context(m, k)} for m in conversations]
        with recorded_forwards(policy.model) as calls:
            gens = policy.act([{}] * len(contexts), contexts, forced_texts=[action] * len(contexts))
        prefills.append(calls[0])
        for traj, gen in zip(trajs, gens, strict=True):
            assert gen.text == action
            traj.turns.append(Turn({}, gen, 0.0, {}, {}))
    return trajs, prefills


def assistant_context(messages: list[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    """The conversation before assistant turn `k` (what the policy sees when it acts)."""
    return messages[: [i for i, m in enumerate(messages) if m["role"] == "assistant"][k]]


def reference_inputs(
    processor, messages: list[dict[str, Any]], add_generation_prompt: bool
) -> dict[str, torch.Tensor]:
    """transformers' own inputs for a conversation: the processor's chat template, tokenized."""
    return processor.apply_chat_template(
        messages,
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
        add_generation_prompt=add_generation_prompt,
    )


def reference_positions(model, inputs: dict[str, torch.Tensor]) -> torch.Tensor:
    """The model's own M-RoPE position ids for `inputs`, (3, B, T)."""
    positions, _ = model.model.get_rope_index(
        inputs["input_ids"],
        mm_token_type_ids=inputs["mm_token_type_ids"],
        image_grid_thw=inputs.get("image_grid_thw"),
        attention_mask=inputs["attention_mask"],
    )
    return positions


def assistant_spans(processor, input_ids: Sequence[int]) -> list[range]:
    """Positions of each assistant turn's content + its `<|im_end|>`, found from the template's
    own role header (independent of HFPolicy's bookkeeping)."""
    tok = processor.tokenizer
    header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
    end = tok.convert_tokens_to_ids("<|im_end|>")
    ids = list(input_ids)
    spans = []
    for start in range(len(ids) - len(header) + 1):
        if ids[start : start + len(header)] == header:
            first = start + len(header)
            spans.append(range(first, ids.index(end, first) + 1))
    return spans


def reference_logprobs(
    policy: HFPolicy, model, inputs: dict[str, torch.Tensor], **forward_kwargs
) -> torch.Tensor:
    """Log-probs of every assistant token from ONE plain forward over `inputs`, by the policy's
    documented convention (suppressed ids at -inf, / temperature, float32); shape (n,)."""
    with torch.no_grad():
        logits = model(**inputs, **forward_kwargs).logits[0].float()
    logits[:, list(policy.suppress_token_ids)] = float("-inf")
    logp = torch.log_softmax(logits / policy.temperature, dim=-1)
    ids = inputs["input_ids"][0]
    positions = [p for span in assistant_spans(policy.processor, ids.tolist()) for p in span]
    return torch.stack([logp[p - 1, ids[p]] for p in positions])


def unpadded_rows(
    call: dict[str, torch.Tensor], images_per_row: Sequence[int]
) -> list[dict[str, torch.Tensor]]:
    """Split a recorded batched forward call into per-row inputs without padding, (1, T_b)."""
    rows, image, patch = [], 0, 0
    for b, n_images in enumerate(images_per_row):
        keep = call["attention_mask"][b].bool()
        grid = call["image_grid_thw"][image : image + n_images]
        n_patches = int(grid.prod(-1).sum())
        rows.append(
            {
                **{
                    k: call[k][b : b + 1, keep]
                    for k in ("input_ids", "attention_mask", "mm_token_type_ids")
                },
                "image_grid_thw": grid,
                "pixel_values": call["pixel_values"][patch : patch + n_patches],
                "rope_position_ids": call["rope_position_ids"][:, b : b + 1, keep],
            }
        )
        image, patch = image + n_images, patch + n_patches
    assert patch == call["pixel_values"].shape[0]  # no image features left over
    return rows


def assert_same_inputs(
    model, call: dict[str, torch.Tensor], refs: Sequence[dict[str, torch.Tensor]]
) -> None:
    """Each row of a recorded `HFPolicy` forward call equals its transformers reference: ids,
    masks, images, and the M-RoPE positions the language model received vs `get_rope_index`."""
    rows = unpadded_rows(call, [len(ref["image_grid_thw"]) for ref in refs])
    for ours, ref in zip(rows, refs, strict=True):
        for key in ("input_ids", "attention_mask", "mm_token_type_ids", "image_grid_thw"):
            assert torch.equal(ours[key].long(), ref[key].long()), key
        assert ours["pixel_values"].shape == ref["pixel_values"].shape
        torch.testing.assert_close(ours["pixel_values"], ref["pixel_values"], rtol=0, atol=1e-6)
        assert torch.equal(ours["rope_position_ids"], reference_positions(model, ref))


# ------------------------------------------------------------------------------------ templates


def test_templates_are_the_released_ones():
    """Our verbatim copies equal the originals TRL ships (and compares by equality)."""
    from trl.chat_template_utils import qwen2_5_vl_chat_template, qwen3_vl_chat_template

    assert QWEN2_VL_CHAT_TEMPLATE == qwen2_5_vl_chat_template
    assert QWEN3_VL_CHAT_TEMPLATE == qwen3_vl_chat_template
    for name, spec in QWEN_VL_ARCHS.items():
        assert spec.chat_template == (
            QWEN3_VL_CHAT_TEMPLATE if name == "qwen3_vl" else QWEN2_VL_CHAT_TEMPLATE
        )


def test_processor_has_the_release_settings(arch, built):
    _, processor = built
    ip = processor.image_processor
    assert (ip.patch_size, ip.merge_size, ip.temporal_patch_size) == (
        (16 if arch == "qwen3_vl" else 14),
        2,
        2,
    )
    stock = {
        "qwen2_vl": Qwen2VLProcessor,
        "qwen2_5_vl": Qwen2_5_VLProcessor,
        "qwen3_vl": Qwen3VLProcessor,
    }[arch]
    assert isinstance(processor, stock)  # the stock class's text/image processing, image-only
    # smart_resize into the budget: every episode image is resized to a multiple of the factor
    factor = QWEN_VL_ARCHS[arch].factor
    grid = ip(images=episode_images(), return_tensors="pt")["image_grid_thw"]
    for (t, gh, gw), (w, h) in zip(grid.tolist(), IMAGE_SIZES, strict=True):
        assert t == 1 and (gh * ip.patch_size, gw * ip.patch_size) != (h, w)
        assert (gh * ip.patch_size) % factor == 0 and (gw * ip.patch_size) % factor == 0
        assert ip.size.shortest_edge <= gh * gw * ip.patch_size**2 <= ip.size.longest_edge


def test_tool_turn_rendering(arch, built):
    """Qwen3-VL's template folds a tool turn (with its image) into a user turn's
    `<tool_response>`; Qwen2/2.5-VL's renders any role verbatim, so a tool turn reads
    `<|im_start|>tool`, a role those models were not trained on: send their crops as user turns
    (the envs do; docs/lvlm.md). HFPolicy renders with the processor's template either way."""
    _, processor = built
    text = processor.apply_chat_template(episode_messages(episode_images(), "tool"), tokenize=False)
    assert text.count("<|image_pad|>") == 3
    if arch == "qwen3_vl":
        assert (
            "<|im_start|>user\n<tool_response>\n<|vision_start|><|image_pad|><|vision_end|>Zoomed"
            in text
        )
        assert "<|im_start|>tool" not in text
    else:
        assert "<|im_start|>tool\n<|vision_start|><|image_pad|><|vision_end|>Zoomed" in text


# ------------------------------------------------------------------------------------ equality


@pytest.mark.slow
@pytest.mark.parametrize("feedback_role", ["user", "tool"])
def test_hf_policy_inputs_equal_the_reference(arch, built, policy, feedback_role):
    check_against_reference(policy, built, [episode_messages(episode_images(), feedback_role)])


@pytest.mark.slow
def test_batched_envs_equal_their_references(arch, built, policy):
    """Two envs of different lengths in one batch (left padding at act time, right padding in
    the recompute): every row still equals its own unpadded reference."""
    view, crop1, crop2 = episode_images()
    conversations = [
        episode_messages([view, crop1, crop2], "user"),
        episode_messages([view, crop2, crop1], "tool"),
    ]
    lengths = [len(reference_inputs(built[1], m, False)["input_ids"][0]) for m in conversations]
    assert lengths[0] != lengths[1]
    check_against_reference(policy, built, conversations)


def check_against_reference(
    policy: HFPolicy, built, conversations: list[list[dict[str, Any]]]
) -> None:
    model, processor = built
    with warnings.catch_warnings():  # every view is smart-resized (on purpose, see the module doc)
        warnings.filterwarnings("ignore", message="The processor resizes")
        trajs, prefills = run_episodes(policy, conversations)

    # act: each turn's prompt (conversation so far + generation prompt) is the processor's
    for k, prefill in enumerate(prefills):
        refs = [
            reference_inputs(processor, assistant_context(m, k), add_generation_prompt=True)
            for m in conversations
        ]
        assert all(
            ref["image_grid_thw"].shape[0] == k + 1 for ref in refs
        )  # turn k sees k + 1 images
        assert_same_inputs(model, prefill, refs)

    # recompute: each whole episode is the processor's, positions are the model's own
    refs = [reference_inputs(processor, m, add_generation_prompt=False) for m in conversations]
    with recorded_forwards(policy.model) as calls, torch.no_grad():
        logp, mask = policy.trajectory_logprobs(trajs)
    (call,) = calls
    assert_same_inputs(model, call, refs)

    for b, (traj, ref) in enumerate(zip(trajs, refs, strict=True)):
        _, seq_mask = policy.encode_trajectory(traj)
        spans = assistant_spans(processor, ref["input_ids"][0].tolist())
        assert [p for p, m in enumerate(seq_mask) if m] == [p for span in spans for p in span]
        # log-probs: recompute == one plain forward over the reference; act-time too
        expected = reference_logprobs(policy, model, ref)
        n = traj.num_policy_tokens
        assert mask[b].sum().item() == len(expected) == n
        assert (logp[b, :n] - expected).abs().max().item() < EXACT
        act_time = torch.tensor(
            np.concatenate([t.generation.logprobs for t in traj.turns]), dtype=torch.float32
        )
        assert (act_time - expected).abs().max().item() < ACT_TOL


# ------------------------------------------------------------------------------------ corruption


@pytest.fixture(scope="module")
def clean(built, policy) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """The reference inputs of the user-feedback episode and their assistant log-probs."""
    model, processor = built
    ref = reference_inputs(
        processor, episode_messages(episode_images(), "user"), add_generation_prompt=False
    )
    return ref, reference_logprobs(policy, model, ref)


def answer_change(
    policy: HFPolicy, built, clean, inputs: dict[str, torch.Tensor], **forward_kwargs
) -> float:
    """Max |log-prob change| of the answer turn's tokens (same ids, whatever moved before)."""
    model, _ = built
    _, clean_logp = clean
    n_answer = (
        len(policy.tokenizer(ACTIONS[-1], add_special_tokens=False)["input_ids"]) + 1
    )  # + <|im_end|>
    corrupted = reference_logprobs(policy, model, inputs, **forward_kwargs)
    assert corrupted.shape == clean_logp.shape
    return (corrupted[-n_answer:] - clean_logp[-n_answer:]).abs().max().item()


def test_dropping_an_image_is_visible(built, policy, clean):
    _, processor = built
    view, crop1, crop2 = episode_images()
    dropped = reference_inputs(
        processor, episode_messages([view, None, crop2], "user"), add_generation_prompt=False
    )
    assert dropped["image_grid_thw"].shape[0] == 2
    assert answer_change(policy, built, clean, dropped) > VISIBLE


def test_swapping_the_crops_is_visible(built, policy, clean):
    _, processor = built
    view, crop1, crop2 = episode_images()
    swapped = reference_inputs(
        processor, episode_messages([view, crop2, crop1], "user"), add_generation_prompt=False
    )
    assert not torch.equal(swapped["image_grid_thw"], clean[0]["image_grid_thw"])  # sizes differ
    assert answer_change(policy, built, clean, swapped) > VISIBLE


def test_shifting_one_position_id_is_visible(built, policy, clean):
    model, _ = built
    ref, _ = clean
    positions = reference_positions(model, ref)
    assert (
        answer_change(policy, built, clean, ref, position_ids=positions) < EXACT
    )  # explicit == implicit
    answer_start = assistant_spans(policy.processor, ref["input_ids"][0].tolist())[-1][0]
    shifted = positions.clone()
    shifted[:, 0, answer_start - 1] += (
        1  # off by one: the token that predicts the answer, all 3 axes
    )
    assert answer_change(policy, built, clean, ref, position_ids=shifted) > VISIBLE
