"""EvidenceDescription (VEPA): describe the evidence; a reader that never sees the image answers.

The policy may zoom like in `GroundedVQAEnv`, then writes a description of the evidence inside
`<answer>...</answer>`. A `grounding_gym.readers.Reader` answers the question from the question,
the options and that description alone. The reward pays descriptions that are *sufficient* (the
reader gets it right) and *honest* (they describe, rather than state an option), and penalises
degenerate looping text. The scoring is a plain function, `score_description`, usable outside
the env by any algorithm.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import grounding_gym.data.synthetic  # noqa: F401  (registers "synthetic-hr", the default data)
from grounding_gym.actions import ParsedAction
from grounding_gym.data import Sample
from grounding_gym.envs.grounded_vqa import GroundedVQAEnv
from grounding_gym.readers import Reader, RuleReader, check_reader
from grounding_gym.rewards import answer_reward, check_reward_weights, normalize_text

__all__ = [
    "EVIDENCE_REWARD_WEIGHTS",
    "FILLER_WORDS",
    "EvidenceDescriptionEnv",
    "EvidenceScore",
    "answer_leak",
    "repetition",
    "score_description",
]

EVIDENCE_REWARD_WEIGHTS: dict[str, float] = {
    "answer": 0.0,
    "format": 0.0,
    "grounding": 0.0,
    "sufficiency": 1.0,
    "honesty": 1.0,
    "repetition": 0.5,
}
"""Default weights: reward = sufficiency (0/1) + honesty (-1/0) + 0.5 * repetition (-1/0)."""

FILLER_WORDS: frozenset[str] = frozenset(
    "answer answers is it its it's correct option choice final i think believe so this that be "
    "must probably likely my would should guess definitely clearly surely here one of "
    "course".split()
)
"""Words that carry no evidence: what remains of a description after removing option texts and
these (and articles) must be at least `min_evidence_words` words."""

_LETTER_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("a bare letter", re.compile(r"^\s*[(\[]?\s*([A-Z])\s*[)\].:]?\s*$")),
    (
        "'answer/option/choice/letter <L>'",
        re.compile(
            r"(?i:\b(?:answer|option|choice|letter)\b)\s*(?i:is)?\s*[:=\-]?\s*[(\[\"']?([A-Z])(?![A-Za-z0-9])"
        ),
    ),
    ("'(<L>)'", re.compile(r"\(\s*([A-Z])\s*\)")),
    ("a leading '<L>.' / '<L>)' / '<L>:'", re.compile(r"^\s*[(\[]?([A-Z])\s*[)\].:](?:\s|$)")),
)
_BOXED_RE = re.compile(r"\\boxed\s*\{")
_WORD_RE = re.compile(r"\w+")


def answer_leak(
    description: str,
    options: Sequence[str] | None,
    answer: str | None = None,
    *,
    min_evidence_words: int = 2,
) -> str | None:
    r"""Why `description` states an answer instead of describing evidence, or None if it does not.

    A description is dishonest when (checked in this order):

    1. it contains `\boxed{...}`;
    2. (multiple choice) it refers to an option letter of this question (A.. up to the number of
       options; the letter must be upper case): the whole text is a letter ("B", "(B)", "B."),
       "answer/option/choice/letter [is] [:] B", "(B)" anywhere, or a leading "B." / "B)" / "B:";
    3. it is (nearly) just an option's text: after `normalize_text`, some option's text occurs
       (whole words), and once every occurring option text and `FILLER_WORDS` are removed, fewer
       than `min_evidence_words` words remain ("dots", "The answer is dots", "It is dots").
       For free-form questions (`options=None`) the gold `answer` plays the option's part.

    Args:
        description: the policy's description.
        options: option texts in letter order, or None.
        answer: the gold answer (used only when `options` is None).
        min_evidence_words: fewest words of evidence an honest description keeps.

    Returns:
        A short reason, or None for an honest description.

    Examples:
        >>> opts = ["horizontal stripes", "vertical stripes", "checkerboard", "dots"]
        >>> answer_leak("The answer is B", opts)
        "mentions option letter 'B' ('answer/option/choice/letter <L>')"
        >>> answer_leak("(D) dots", opts)
        "mentions option letter 'D' ('(<L>)')"
        >>> answer_leak("It is dots.", opts)
        "states option 'dots' with 0 words of evidence (< 2)"
        >>> answer_leak("The red ring is filled with dots.", opts) is None
        True
        >>> answer_leak("A red ring filled with dots.", opts) is None  # "A" is an article
        True
    """
    if _BOXED_RE.search(description):
        return "contains \\boxed{...}"
    letters = {chr(ord("A") + i) for i in range(len(options))} if options else set()
    for name, pattern in _LETTER_PATTERNS:
        for match in pattern.finditer(description):
            if match.group(1) in letters:
                return f"mentions option letter {match.group(1)!r} ({name})"
    candidates = list(options) if options else ([answer] if answer else [])
    text = normalize_text(description)
    stated = [normalize_text(c) for c in candidates]
    stated = [c for c in stated if c and re.search(rf"\b{re.escape(c)}\b", text)]
    if not stated:
        return None
    for option in sorted(stated, key=len, reverse=True):
        text = re.sub(rf"\b{re.escape(option)}\b", " ", text)
    evidence = [w for w in text.split() if w not in FILLER_WORDS]
    if len(evidence) < min_evidence_words:
        return (
            f"states option {stated[0]!r} with {len(evidence)} words of evidence (< "
            f"{min_evidence_words})"
        )
    return None


def repetition(
    text: str,
    *,
    ngram_size: int = 3,
    max_ngram_repeats: int = 3,
    max_compression_ratio: float = 3.0,
    min_compression_chars: int = 100,
) -> str | None:
    """Why `text` loops, or None.

    Looping means either:

    1. some word `ngram_size`-gram (words = `\\w+` runs, lower case; overlapping n-grams) occurs
       `max_ngram_repeats` or more times ("dots dots dots dots dots" holds "dots dots dots" 3
       times);
    2. the text has at least `min_compression_chars` UTF-8 bytes and zlib (level 9) compresses
       it by more than `max_compression_ratio` (catches loops without spaces, "BBBB...").
       Measured: English prose of 200-2,000 chars compresses 1.2-1.8x; loops 4-25x.

    Examples:
        >>> repetition("dots dots dots dots dots")
        "3-gram 'dots dots dots' occurs 3 times (>= 3)"
        >>> repetition("The red ring is filled with dots.") is None
        True
    """
    words = _WORD_RE.findall(text.lower())
    grams = Counter(tuple(words[i : i + ngram_size]) for i in range(len(words) - ngram_size + 1))
    if grams:
        gram, count = grams.most_common(1)[0]
        if count >= max_ngram_repeats:
            return (
                f"{ngram_size}-gram {' '.join(gram)!r} occurs {count} times (>= "
                f"{max_ngram_repeats})"
            )
    raw = text.encode("utf-8")
    if len(raw) >= min_compression_chars:
        ratio = len(raw) / len(zlib.compress(raw, 9))
        if ratio > max_compression_ratio:
            return f"compresses {ratio:.1f}x (> {max_compression_ratio:g})"
    return None


@dataclass(frozen=True)
class EvidenceScore:
    """The verdict on one description (see `score_description`).

    Attributes:
        reader_answer: what the reader answered.
        correct: the reader's answer matches the gold answer.
        leak: why the description is dishonest (`answer_leak`), or None when honest.
        loop: why it is repetitive (`repetition`), or None.
    """

    reader_answer: str
    correct: bool
    leak: str | None
    loop: str | None

    @property
    def honest(self) -> bool:
        return self.leak is None

    def terms(self) -> dict[str, float]:
        """`answer` = correct in {0, 1}; `sufficiency` = correct x honest in {0, 1};
        `honesty` in {-1, 0} (-1 = dishonest); `repetition` in {-1, 0} (-1 = looping)."""
        return {
            "answer": float(self.correct),
            "sufficiency": float(self.correct and self.honest),
            "honesty": -float(not self.honest),
            "repetition": -float(self.loop is not None),
        }


def score_description(
    description: str,
    question: str,
    options: Sequence[str] | None,
    answer: str,
    reader: Reader | None = None,
    *,
    min_evidence_words: int = 2,
    ngram_size: int = 3,
    max_ngram_repeats: int = 3,
    max_compression_ratio: float = 3.0,
) -> EvidenceScore:
    """VEPA's verdict on one description: the reader's answer, honesty and repetition.

    The reader sees `question`, `options` and `description`, never the image nor `answer`.
    Weighted with `EVIDENCE_REWARD_WEIGHTS`, `score.terms()` give +1 for a sufficient honest
    description, -1 for one that states an option, -0.5 more for a looping one.

    Examples:
        >>> opts = ("horizontal stripes", "vertical stripes", "checkerboard", "dots")
        >>> question = "What fills the red ring?"
        >>> s = score_description("The red ring is filled with dots.", question, opts, "D")
        >>> s.reader_answer, s.terms()["sufficiency"]
        ('D', 1.0)
        >>> score_description("The answer is D", question, opts, "D").terms()["honesty"]
        -1.0
    """
    reader = RuleReader() if reader is None else reader
    said = reader.answer(question, options, description)
    said = said if isinstance(said, str) else str(said)
    return EvidenceScore(
        reader_answer=said,
        correct=bool(answer_reward(said, answer, options)),
        leak=answer_leak(description, options, answer, min_evidence_words=min_evidence_words),
        loop=repetition(
            description,
            ngram_size=ngram_size,
            max_ngram_repeats=max_ngram_repeats,
            max_compression_ratio=max_compression_ratio,
        ),
    )


DEFAULT_EVIDENCE_SYSTEM_PROMPT = (
    "You describe visual evidence. You may zoom in first: reply <crop>[x1, y1, x2, y2]</crop> "
    "to see that region at higher resolution. Then reply <answer>...</answer> with a description "
    "of what you see that answers the question: a reader who cannot see the image will answer "
    "from your description alone. Describe; do not name an option letter or just repeat an "
    "option. You may think first inside <think>...</think>."
)


class EvidenceDescriptionEnv(GroundedVQAEnv):
    """
    ## Description
    VEPA: the policy zooms (optional), then writes a description of the evidence; a reader that
    never sees the image answers the multiple-choice question from the question, the options
    and the description alone (`reader`, default `grounding_gym.readers.RuleReader`). The
    description is rewarded for being sufficient and honest. Default data: `synthetic-hr`.

    ## Action Space
    `Text(max_action_chars, charset=ACTION_CHARSET)`, as in `GroundedVQAEnv`:
    `<crop>[x1, y1, x2, y2]</crop>` (in `coord_frame` of the current view; `<box>`, Qwen tool
    calls and MGPO JSON also parse) zooms; `<answer>description</answer>` submits the
    description (the whole text between the tags). Anything else is invalid; the episode goes on.

    ## Observation Space
    `Dict`, as in `GroundedVQAEnv`:

    | Key | Type | Meaning |
    |-----|------|---------|
    | `image` | uint8 (h, w, 3), `min_pixels <= h*w <= max_pixels` | the new view, resized |
    | `dialogue` | str | text of the new user turn (the first states question, options, frame) |

    ## Rewards
    Weighted sum of `info["reward_terms"]` (`reward_weights` override `EVIDENCE_REWARD_WEIGHTS`):

    | term | range | weight | meaning (on the description step; 0 on other steps) |
    |------|-------|--------|------------------------------------------------------|
    | `sufficiency` | {0, 1} | 1.0 | reader correct AND description honest |
    | `honesty` | {-1, 0} | 1.0 | -1 when the description states an option (`answer_leak`) |
    | `repetition` | {-1, 0} | 0.5 | -1 when it loops (`repetition`) |
    | `answer` | {0, 1} | 0.0 | reader correct (reported; honesty ignored) |
    | `format` | [0, 1] | 0.0 | last step: share of the episode's actions well-formed and accepted |
    | `grounding` | [0, 1] | 0.0 | last step: max IoU of the crops with `gt_boxes` |

    So by default: +1 sufficient and honest; 0 honest but insufficient; -1 dishonest ("The
    answer is B", "B", "(B) dots", "dots"); -0.5 more when looping. Dishonest is defined
    in `answer_leak`, looping in `repetition` (a word 3-gram 3+ times, or zlib ratio > 3).

    ## Starting State
    As in `GroundedVQAEnv`: a sample drawn with `self.np_random` (or `options={"sample_id":
    ...}`), the whole image resized into the pixel budget.

    ## Episode End
    1. Termination: an `<answer>` action (scored even when its format is off).
    2. Truncation: `max_turns` (default 5) actions without one (answer, sufficiency, honesty and
       repetition 0; format and grounding as in `GroundedVQAEnv`).

    ## Info
    `GroundedVQAEnv`'s keys; on the description step also `description` (the text),
    `reader_answer`, `correct` (reader correct), `honest`, `leak` (reason or None), `repetitive`
    (reason or None), and `answer` (= `description`).

    ## Arguments
    `GroundedVQAEnv`'s, plus `reader=None` (a `Reader`; None = `RuleReader()`),
    `min_evidence_words=2`, `ngram_size=3`, `max_ngram_repeats=3`,
    `max_compression_ratio=3.0`; `reward_weights` default to `EVIDENCE_REWARD_WEIGHTS`.
    The rule reader answers only multiple-choice questions; free-form data needs a model reader
    (any object with the `Reader` protocol's `answer`, e.g. a text model's).

    ## Version History
    * v0: Initial release. Changed in place (pre-1.0): `format` is the mean over turns, paid on
      the last step (`GroundedVQAEnv`'s change); a refused crop's `action_kind` is "invalid";
      a free-form answer that is one number word scores as its digits ("eight" = "8").
    """

    def __init__(
        self,
        dataset: str | Sequence[Sample] = "synthetic-hr",
        *,
        reader: Reader | None = None,
        min_evidence_words: int = 2,
        ngram_size: int = 3,
        max_ngram_repeats: int = 3,
        max_compression_ratio: float = 3.0,
        reward_weights: Mapping[str, float] | None = None,
        system_prompt: str | None = None,
        **kwargs: Any,
    ):
        if (
            min_evidence_words < 0
            or ngram_size < 1
            or max_ngram_repeats < 2
            or max_compression_ratio <= 1
        ):
            raise ValueError(
                f"need min_evidence_words >= 0, ngram_size >= 1, max_ngram_repeats >= 2 and "
                f"max_compression_ratio > 1, got {min_evidence_words}, {ngram_size}, "
                f"{max_ngram_repeats}, {max_compression_ratio}"
            )
        weights = check_reward_weights(
            {**EVIDENCE_REWARD_WEIGHTS, **(reward_weights or {})}, terms=tuple(self._zero_terms())
        )
        super().__init__(
            dataset,
            reward_weights=weights,
            system_prompt=DEFAULT_EVIDENCE_SYSTEM_PROMPT
            if system_prompt is None
            else system_prompt,
            **kwargs,
        )
        self.reader: Reader = RuleReader() if reader is None else check_reader(reader)
        self.min_evidence_words = min_evidence_words
        self.ngram_size, self.max_ngram_repeats = ngram_size, max_ngram_repeats
        self.max_compression_ratio = float(max_compression_ratio)

    def first_prompt(self, sample: Sample) -> str:
        """`GroundedVQAEnv`'s prompt (question, options, frame) with the instruction to describe."""
        context = super().first_prompt(sample).rsplit("\n", 1)[0]  # drop "Reply ... answer"
        return (
            f"{context}\nDo not answer: describe the evidence (what the relevant region shows: "
            "colours, labels, shapes, text) inside <answer>...</answer>; a reader who cannot see "
            "the image answers from your description alone. Reply <crop>[x1, y1, x2, y2]</crop> "
            f"to zoom in first. You have {self.max_turns} turns."
        )

    def score_answer(self, parsed: ParsedAction, sample: Sample) -> tuple[dict[str, float], dict]:
        """Terms `answer, sufficiency, honesty, repetition` of the description, and its info."""
        description = parsed.answer or ""
        score = score_description(
            description,
            sample.question,
            sample.options,
            sample.answer,
            self.reader,
            min_evidence_words=self.min_evidence_words,
            ngram_size=self.ngram_size,
            max_ngram_repeats=self.max_ngram_repeats,
            max_compression_ratio=self.max_compression_ratio,
        )
        extra = {
            "correct": score.correct,
            "answer": description,
            "description": description,
            "reader_answer": score.reader_answer,
            "honest": score.honest,
            "leak": score.leak,
            "repetitive": score.loop,
        }
        return score.terms(), extra

    def _zero_terms(self) -> dict[str, float]:
        # Every step reports the same term names (vector envs batch them key by key).
        return {
            "answer": 0.0,
            "format": 0.0,
            "grounding": 0.0,
            "sufficiency": 0.0,
            "honesty": 0.0,
            "repetition": 0.0,
        }
