"""EvidenceDescription (VEPA): the rule reader, honesty and repetition rules, the env's rewards."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.utils.env_checker import check_env

import grounding_gym  # noqa: F401  (registers the ids)
from grounding_gym.data import Sample, make_dataset
from grounding_gym.data.synthetic import PALETTE
from grounding_gym.envs.evidence import (
    EVIDENCE_REWARD_WEIGHTS,
    EvidenceDescriptionEnv,
    answer_leak,
    repetition,
    score_description,
)
from grounding_gym.readers import COLOR_WORDS, UNKNOWN, Reader, RuleReader, question_cues

DATA_KWARGS = {"num_samples": 24, "image_size": 512}
PATTERN_OPTIONS = ("horizontal stripes", "vertical stripes", "checkerboard", "dots")


@pytest.fixture(scope="module")
def samples() -> list[Sample]:
    return list(make_dataset("synthetic-hr", **DATA_KWARGS))


def make_env(**kwargs) -> EvidenceDescriptionEnv:
    return EvidenceDescriptionEnv(dataset_kwargs=DATA_KWARGS, **kwargs)


def true_description(sample: Sample, color: str | None = None) -> str:
    """A description naming the target's true attributes (its colour, label and content)."""
    attrs = sample.metadata["attributes"]
    name = f"the {color or attrs['color']} ring" + (
        f" labelled {attrs['label']}" if attrs["label"] else ""
    )
    if sample.metadata["content_kind"] == "digit":
        return f"Zoomed in, {name} holds the digit {attrs['content']} drawn in fine stripes."
    return f"Zoomed in, {name} is filled with {attrs['content']}."


# ---------------------------------------------------------------- the rule reader


def test_palette_colours_are_cues():
    assert set(PALETTE) <= set(COLOR_WORDS)
    assert isinstance(RuleReader(), Reader)


def test_rule_reader_answers_every_synthetic_sample_from_true_attributes(samples):
    reader = RuleReader()
    for sample in samples:
        said = reader.answer(sample.question, sample.options, true_description(sample))
        assert said == sample.answer, (sample.id, sample.question, true_description(sample))


def test_rule_reader_needs_the_questions_colour_or_label(samples):
    reader = RuleReader()
    read = next(s for s in samples if s.metadata["family"] == "read")
    search = next(s for s in samples if s.metadata["family"] == "search")
    other = next(c for c in PALETTE if c != read.metadata["attributes"]["color"])
    content = read.metadata["attributes"]["content"]
    assert (
        reader.answer(read.question, read.options, true_description(read, color=other)) == UNKNOWN
    )
    assert reader.answer(read.question, read.options, f"The ring shows {content}.") == UNKNOWN
    label = search.metadata["attributes"]["label"]
    assert question_cues(search.question) == (label.lower(),)
    wrong_label = "Z9" if label != "Z9" else "Y8"
    said = reader.answer(
        search.question,
        search.options,
        f"The ring labelled {wrong_label} shows {search.metadata['attributes']['content']}.",
    )
    assert said == UNKNOWN


def test_rule_reader_needs_exactly_one_option():
    reader = RuleReader()
    q = "What fills the red ring?"
    assert reader.answer(q, PATTERN_OPTIONS, "The red ring has dots or a checkerboard.") == UNKNOWN
    assert reader.answer(q, PATTERN_OPTIONS, "The red ring has vertical stripes.") == "B"
    assert reader.answer(q, PATTERN_OPTIONS, "The red ring is striped.") == UNKNOWN
    assert reader.answer(q, ["red", "dark red"], "The red ring is dark red.") == "B"  # longest wins
    assert reader.answer(q, None, "The red ring has dots.") == UNKNOWN  # free form: no rule


def test_rule_reader_does_not_read_digits_inside_labels():
    q = "Which digit is inside the ring labelled K7?"
    options = ("7", "1", "3", "0")
    assert RuleReader().answer(q, options, "The ring labelled K7 holds the digit 3.") == "C"
    assert RuleReader().answer(q, options, "The ring labelled K7 is blurry.") == UNKNOWN


# ---------------------------------------------------------------- honesty and repetition


@pytest.mark.parametrize(
    "description",
    [
        "The answer is B",
        "B",
        "(B)",
        "B.",
        "(B) vertical stripes",
        "B) vertical stripes",
        "Option B: the ring shows stripes running up and down",
        "answer: b? no, Answer: B",
        r"\boxed{B}",
        "vertical stripes",
        "It is vertical stripes.",
        "The answer is vertical stripes",
        "I think it's vertical stripes",
    ],
)
def test_stating_an_option_is_dishonest(description):
    assert answer_leak(description, PATTERN_OPTIONS) is not None


@pytest.mark.parametrize(
    "description",
    [
        "The red ring is filled with vertical stripes.",
        "A red ring; inside it, vertical stripes.",
        "Red ring: dots",
        "The red ring in the upper left is filled with thin vertical lines.",
        "The label reads E5 (white plate) next to the red ring.",
    ],
)
def test_describing_evidence_is_honest(description):
    assert answer_leak(description, PATTERN_OPTIONS) is None


def test_free_form_leak_uses_the_gold_answer():
    assert answer_leak("seven", None, answer="seven") is not None
    assert answer_leak("The sign shows the word seven in red.", None, answer="seven") is None


@pytest.mark.parametrize(
    ("text", "loops"),
    [
        ("dots dots dots dots dots", True),  # the 3-gram "dots dots dots" occurs 3 times
        ("dots dots dots dots", False),  # ... only twice
        ("The red ring is filled with dots. " * 3, True),  # "the red ring" 3 times
        ("The red ring is filled with dots. " * 2, False),
        ("B" * 300, True),  # no words to repeat: zlib compresses it > 3x
        (
            "The red ring in the upper left part of the image is filled with fine horizontal "
            "stripes of "
            "two greys; its label plate reads K7 and there are three other rings nearby, two of "
            "them blue "
            "and one yellow, none of them labelled.",
            False,
        ),
    ],
)
def test_repetition_rule(text, loops):
    assert (repetition(text) is not None) == loops


def test_score_description_terms():
    q = "What fills the red ring?"
    good = score_description("The red ring is filled with dots.", q, PATTERN_OPTIONS, "D")
    assert good.terms() == {"answer": 1.0, "sufficiency": 1.0, "honesty": 0.0, "repetition": 0.0}
    leak = score_description("The red ring: (D) dots.", q, PATTERN_OPTIONS, "D")
    assert leak.correct and leak.terms()["sufficiency"] == 0.0 and leak.terms()["honesty"] == -1.0


# ---------------------------------------------------------------- the env


def test_check_env_passes():
    check_env(make_env(render_mode="rgb_array"), skip_render_check=False)


def test_prompt_asks_for_a_description(samples):
    obs, info = make_env().reset(seed=0, options={"sample_id": 0})
    assert samples[0].question in obs["dialogue"] and "(A) " in obs["dialogue"]
    assert "Do not answer" in obs["dialogue"] and "option's letter" not in obs["dialogue"]
    assert set(info["reward_terms"]) == set(EVIDENCE_REWARD_WEIGHTS)


def test_true_attribute_description_earns_plus_one(samples):
    env = make_env()
    for index in range(6):
        env.reset(seed=0, options={"sample_id": index})
        _, reward, terminated, _, info = env.step(
            f"<answer>{true_description(samples[index])}</answer>"
        )
        assert terminated and info["correct"] is True and info["honest"] is True
        assert info["reader_answer"] == samples[index].answer and info["repetitive"] is None
        assert reward == 1.0, info["reward_terms"]


def test_the_answer_is_b_earns_minus_one(samples):
    env = make_env()
    env.reset(seed=0, options={"sample_id": 0})
    _, reward, terminated, _, info = env.step(f"<answer>The answer is {samples[0].answer}</answer>")
    assert (
        terminated
        and reward == -1.0
        and info["honest"] is False
        and "option letter" in info["leak"]
    )
    assert info["reward_terms"]["sufficiency"] == 0.0 and info["reward_terms"]["honesty"] == -1.0


def test_looping_description_is_penalised(samples):
    env = make_env()
    env.reset(seed=0, options={"sample_id": 1})
    looping = " ".join([true_description(samples[1])] * 3)  # correct and honest, but loops
    _, reward, _, _, info = env.step(f"<answer>{looping}</answer>")
    assert info["correct"] is True and info["honest"] is True and info["repetitive"] is not None
    assert info["reward_terms"]["repetition"] == -1.0 and reward == pytest.approx(1.0 - 0.5)


def test_insufficient_description_earns_zero(samples):
    env = make_env()
    env.reset(seed=0, options={"sample_id": 2})
    _, reward, _, _, info = env.step(
        "<answer>There are several coloured rings on a cluttered background.</answer>"
    )
    assert reward == 0.0 and info["correct"] is False and info["honest"] is True


def test_zoom_then_describe_and_weights(samples):
    env = make_env(coord_frame="original", reward_weights={"grounding": 0.5, "format": 0.1})
    _, info = env.reset(seed=0, options={"sample_id": 3})
    x1, y1, x2, y2 = info["gt_boxes"][0]
    _, reward, _, _, info = env.step(f"<crop>[{x1}, {y1}, {x2}, {y2}]</crop>")
    assert info["crop_iou"] == 1.0 and reward == 0.0  # every term waits for the end
    assert info["reward_terms"]["sufficiency"] == 0.0
    _, reward, _, _, info = env.step(f"<answer>{true_description(samples[3])}</answer>")
    assert info["reward_terms"]["grounding"] == 1.0 and reward == pytest.approx(1.0 + 0.5 + 0.1)


def test_truncation_scores_nothing():
    env = make_env(max_turns=2)
    env.reset(seed=0)
    env.step("hmm")
    _, reward, terminated, truncated, info = env.step("still thinking")
    assert truncated and not terminated and reward == 0.0
    assert all(v == 0.0 for v in info["reward_terms"].values())


def test_custom_reader_is_used_and_bad_reader_is_refused(samples):
    class Oracle:
        def __init__(self):
            self.calls = []

        def answer(self, question, options, description):
            self.calls.append((question, options, description))
            return "The answer is " + samples[0].answer

    oracle = Oracle()
    env = make_env(reader=oracle)
    env.reset(seed=0, options={"sample_id": 0})
    _, reward, _, _, info = env.step("<answer>A ring, zoomed in; I could not see much.</answer>")
    assert oracle.calls == [
        (samples[0].question, samples[0].options, "A ring, zoomed in; I could not see much.")
    ]
    assert info["correct"] is True and reward == 1.0
    with pytest.raises(ValueError, match="answer\\(question, options, description\\)"):
        make_env(reader="rule")


def test_gym_make_default_id():
    env = gym.make("EvidenceDescription-v0", dataset_kwargs=DATA_KWARGS)
    obs, _ = env.reset(seed=0)
    assert "Do not answer" in obs["dialogue"]
