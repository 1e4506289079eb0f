"""Reward terms: answer, format and grounding, and their weighted sum.

Each term is one plain function returning a float. The env reports every term of every
step in `info["reward_terms"]` and pays `combine_rewards(terms, weights)`.

| term        | range  | when                                                     |
|-------------|--------|----------------------------------------------------------|
| `answer`    | {0, 1} | the answer step: 1 when the answer matches the sample's  |
| `format`    | [0, 1] | the last step: the share of the episode's actions that   |
|             |        | were well-formed and accepted (0 on earlier steps)        |
| `grounding` | [0, 1] | the last step: IoU or coverage of the episode's crops    |

`format` is paid once per episode, as a mean over turns, so padding an episode with useless
turns never earns more than answering at once: with the default weights an immediate correct
answer earns 1.0 + 0.1 = 1.1, and four well-formed crops of nothing then the same answer also
1.1 (each turn paying 0.1 would give 1.5).
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Iterable, Mapping, Sequence

from grounding_gym.actions import parse_action
from grounding_gym.geometry import Box, coverage, iou, union_box
from grounding_gym.validation import check_keys

DEFAULT_REWARD_WEIGHTS: dict[str, float] = {"answer": 1.0, "format": 0.1, "grounding": 0.5}
REWARD_TERMS = ("answer", "format", "grounding")
"""The terms every GroundedVQA step reports in `info["reward_terms"]` (other envs may add more)."""
GROUNDING_METRICS = ("iou", "coverage")
GROUNDING_AGGREGATIONS = ("max", "last", "mean")

_BOXED = re.compile(r"\\boxed\{((?:[^{}]|\{[^{}]*\})*)\}")
_LETTER_ONLY = re.compile(r"^\s*[(\[]?\s*([A-Z])\s*[)\].:]?\s*$")
_ANSWER_IS = re.compile(
    r"(?i:answer|option|choice)\s*(?i:is)?\s*[:\-]?\s*[(\[]?([A-Z])(?![A-Za-z])"
)
_LEADING_LETTER = re.compile(r"^\s*[(\[]?([A-Z])\s*[)\].:]\s")
_PAREN_LETTER = re.compile(r"\(([A-Z])\)")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:e[-+]?\d+)?$", re.IGNORECASE)
_ONES = (
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
).split()
_TENS = "thirty forty fifty sixty seventy eighty ninety".split()
NUMBER_WORDS: dict[str, str] = (
    {word: str(value) for value, word in enumerate(_ONES)}
    | {word: str(30 + 10 * k) for k, word in enumerate(_TENS)}
    | {"hundred": "100"}
)
"""Number words read as their digits when one is a whole free-form answer ("Eight." = "8")."""


def normalize_text(text: str) -> str:
    """Lower-case, drop punctuation and articles, collapse whitespace (SQuAD style).

    >>> normalize_text("  The Red   ring. ")
    'red ring'
    """
    text = text.lower().translate(str.maketrans("", "", string.punctuation))
    return " ".join(_ARTICLES.sub(" ", text).split())


def extract_choice(text: str, options: Sequence[str] | None = None) -> str | None:
    """The option letter a free-form answer picks, or None when it picks none (or several).

    Recognises "B", "(B)", "B.", "B) text", "The answer is B", `\\boxed{B}`, and, when
    `options` are given, the text of exactly one option. Letters beyond the options are ignored.

    >>> extract_choice("The answer is (C).")
    'C'
    >>> extract_choice("dots", options=["stripes", "dots"])
    'B'
    """
    letters = "ABCDE" if options is None else "".join(chr(65 + i) for i in range(len(options)))
    boxed = _BOXED.search(text)
    if boxed:
        text = boxed.group(1).replace("\\text", "").strip("{} ")
    in_parens = {m for m in _PAREN_LETTER.findall(text) if m in letters}
    for pattern in (_LETTER_ONLY, _ANSWER_IS, _LEADING_LETTER):
        match = pattern.search(text)
        if match and match.group(1).upper() in letters:
            letter = match.group(1).upper()
            return letter if in_parens <= {letter} else None  # "(A) or (B)" hedges
    if options:
        picked = _match_option_text(text, options)
        if picked is not None:
            return picked
    return in_parens.pop() if len(in_parens) == 1 else None


def _match_option_text(text: str, options: Sequence[str]) -> str | None:
    """Letter of the one option whose normalised text equals, or alone occurs in, `text`."""
    answer = normalize_text(text)
    normalized = [normalize_text(o) for o in options]
    exact = [i for i, o in enumerate(normalized) if o and o == answer]
    if len(exact) == 1:
        return chr(65 + exact[0])
    contained = [
        i for i, o in enumerate(normalized) if o and re.search(rf"\b{re.escape(o)}\b", answer)
    ]
    return chr(65 + contained[0]) if len(contained) == 1 else None


def read_number_word(text: str) -> str:
    """The digits of `text` when it is one number word (case, punctuation and articles aside),
    else `text` unchanged: the one place free-form answers read number words.

    >>> read_number_word("Eight."), read_number_word("eight birds")
    ('8', 'eight birds')
    """
    return NUMBER_WORDS.get(normalize_text(text), text)


def numbers_match(
    predicted: str, target: str, rel_tol: float = 1e-2, abs_tol: float = 1e-6
) -> bool:
    """True when both parse as numbers within `rel_tol` (relative) or `abs_tol`.

    >>> numbers_match("3.14", "3.1416"), numbers_match("3", "4")
    (True, False)
    """
    a, b = predicted.strip().replace(",", ""), target.strip().replace(",", "")
    if not (_NUMBER.match(a) and _NUMBER.match(b)):
        return False
    return math.isclose(float(a), float(b), rel_tol=rel_tol, abs_tol=abs_tol)


def answer_reward(
    predicted: str, answer: str, options: Sequence[str] | None = None, rel_tol: float = 1e-2
) -> float:
    """1.0 when `predicted` matches the gold `answer`, else 0.0.

    `predicted` may be a whole action: the text inside the env's own answer tag
    (`<answer>...</answer>`, after any `<think>`) is scored, as the env scores it.
    Multiple choice (`options` given): the extracted letter must equal `answer` (a letter).
    Free form: numeric match within `rel_tol`, else normalised exact match; an answer that is
    one number word counts as its digits (`read_number_word`: "eight" = "8" = "8.0").

    >>> answer_reward("The answer is B", "B", options=["x", "y"])
    1.0
    >>> answer_reward("<think>...</think><answer>C</answer>", "C", options=["x", "y", "z"])
    1.0
    >>> answer_reward("Two apples", "two apples"), answer_reward("8", "Eight.")
    (1.0, 1.0)
    """
    parsed = parse_action(predicted)
    if parsed.kind == "answer" and parsed.answer is not None:
        predicted = parsed.answer
    if options:
        return float(extract_choice(predicted, options) == answer.strip().upper())
    predicted, answer = read_number_word(predicted), read_number_word(answer)
    if numbers_match(predicted, answer, rel_tol=rel_tol):
        return 1.0
    return float(normalize_text(predicted) == normalize_text(answer))


def format_reward(format_ok: bool, accepted: bool = True) -> float:
    """1.0 for a well-formed action that the env accepted (a rejected box scores 0).

    >>> format_reward(True), format_reward(True, accepted=False)
    (1.0, 0.0)
    """
    return float(format_ok and accepted)


def episode_format_reward(step_formats: Sequence[float]) -> float:
    """The episode's format term: the mean of its steps' `format_reward`s (0 for no steps).

    >>> episode_format_reward([1.0, 1.0, 1.0, 1.0, 1.0]), episode_format_reward([1.0])
    (1.0, 1.0)
    >>> episode_format_reward([0.0, 1.0])  # one refused crop, then an answer
    0.5
    """
    return float(sum(step_formats) / len(step_formats)) if step_formats else 0.0


def crop_score(crop_orig: Box, gt_boxes: Sequence[Box], metric: str = "iou") -> float:
    """IoU of a crop with the ground truth, or the fraction of the ground truth it covers.

    Several ground-truth boxes are scored against their union (one region of evidence).
    Returns NaN when there is no ground truth.
    """
    if metric not in GROUNDING_METRICS:
        raise ValueError(f"grounding metric {metric!r} is not one of {GROUNDING_METRICS}")
    if not gt_boxes:
        return math.nan
    target = union_box(list(gt_boxes))
    return iou(crop_orig, target) if metric == "iou" else coverage(target, crop_orig)


def grounding_reward(
    crops_orig: Sequence[Box], gt_boxes: Sequence[Box], metric: str = "iou", agg: str = "max"
) -> float:
    """Episode grounding in [0, 1]: `agg` ("max" | "last" | "mean") of the crops' scores.

    An episode without crops, or a sample without ground truth, scores 0.

    >>> grounding_reward([Box(0, 0, 2, 2), Box(0, 0, 1, 1)], [Box(0, 0, 1, 1)], agg="mean")
    0.625
    """
    if agg not in GROUNDING_AGGREGATIONS:
        raise ValueError(f"grounding aggregation {agg!r} is not one of {GROUNDING_AGGREGATIONS}")
    if not crops_orig or not gt_boxes:
        return 0.0
    scores = [crop_score(c, gt_boxes, metric) for c in crops_orig]
    if agg == "max":
        return max(scores)
    if agg == "last":
        return scores[-1]
    return sum(scores) / len(scores)


def check_reward_weights(
    weights: Mapping[str, float] | None, terms: Sequence[str] = REWARD_TERMS
) -> dict[str, float]:
    """Defaults overridden by `weights`; every key one of `terms` (the env's reward terms),
    every weight a finite float.

    >>> check_reward_weights({"anser": 5.0})
    Traceback (most recent call last):
    ...
    ValueError: reward_weights: unknown key 'anser'. Did you mean 'answer'? Valid keys: ...
    """
    check_keys("reward_weights", weights or {}, terms)
    merged = dict(DEFAULT_REWARD_WEIGHTS)
    for name, value in (weights or {}).items():
        if not math.isfinite(float(value)):
            raise ValueError(f"reward weight {name!r} must be finite, got {value!r}")
        merged[name] = float(value)
    return merged


def combine_rewards(terms: Mapping[str, float], weights: Mapping[str, float]) -> float:
    """Weighted sum of the reward terms; a term without a weight counts 0.

    >>> combine_rewards({"answer": 1.0, "format": 1.0}, {"answer": 1.0, "format": 0.1})
    1.1
    """
    return float(sum(weights.get(name, 0.0) * value for name, value in terms.items()))


def sum_reward_terms(
    steps: Iterable[Mapping[str, float]], always: Sequence[str] = REWARD_TERMS
) -> dict[str, float]:
    """Each term summed over an episode's steps (`info["reward_terms"]` of each step); the
    `always` terms are present (0.0) even when no step reported them.

    >>> terms = [{"answer": 0.0, "format": 1.0}, {"answer": 1.0, "format": 1.0, "grounding": 0.5}]
    >>> sum_reward_terms(terms)
    {'answer': 1.0, 'format': 2.0, 'grounding': 0.5}
    """
    total = dict.fromkeys(always, 0.0)
    for terms in steps:
        for name, value in terms.items():
            total[name] = total.get(name, 0.0) + float(value)
    return total
