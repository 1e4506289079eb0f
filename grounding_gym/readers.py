"""Readers: answer a question from a text description alone, never from the image.

`EvidenceDescription-v0` (VEPA) rewards a description by whether a reader that never sees the
image can answer the question from it. A reader is anything with the `Reader` method:

    answer(question: str, options: Sequence[str] | None, description: str) -> str

returning an option letter ("B"), an option's text, or free text; `"?"` (or any text that
names no option) means "cannot tell". The env scores it with `rewards.answer_reward`.

`RuleReader` is the built-in, deterministic reader (no model, no torch). It answers only from
attributes literally present in the description, which is what the synthetic data needs:

1. Target cues come from the question: colour words (`COLOR_WORDS`, e.g. "red" in "What fills
   the red ring?") and labels (the token after "labelled"/"labeled"/"marked"/"tagged", e.g.
   "K7"). When the question has cues, the description must contain at least one of them
   (whole word, any case); otherwise the reader answers `"?"`. A question without cues
   (a real benchmark's) sets no such requirement.
2. Option texts are looked for in the normalised description (`rewards.normalize_text`: lower
   case, no punctuation or articles) as whole words; an option whose text lies inside a longer
   matched option (e.g. "red" inside "dark red") does not count. Exactly one option found:
   its letter. None or several: `"?"`.
3. Free-form questions (`options=None`): always `"?"` (a rule cannot paraphrase).

Model readers (a transformers text model, say) implement the same protocol in a package that
may import torch; this module must not.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from grounding_gym.rewards import normalize_text

__all__ = ["COLOR_WORDS", "UNKNOWN", "Reader", "RuleReader", "check_reader", "question_cues"]

UNKNOWN = "?"
"""What a reader returns when the description does not settle the question."""

COLOR_WORDS: tuple[str, ...] = (
    "red",
    "green",
    "blue",
    "yellow",
    "magenta",
    "cyan",
    "orange",
    "purple",
    "pink",
    "brown",
    "black",
    "white",
    "grey",
    "gray",
    "violet",
    "teal",
)
"""Colour words `RuleReader` treats as target cues (a superset of the synthetic palette)."""

_LABEL_RE = re.compile(r"\b(?:labell?ed|marked|tagged)\s+[\"'“‘]?([A-Za-z0-9][A-Za-z0-9-]*)")


@runtime_checkable
class Reader(Protocol):
    """Answers a question from a description, never seeing the image."""

    def answer(self, question: str, options: Sequence[str] | None, description: str) -> str:
        """Return an option letter ("A".."E"), an option's text, free text, or `"?"`.

        Args:
            question: the question, without options.
            options: option texts in letter order (A, B, ...), or None for free-form questions.
            description: the policy's description of the evidence (the only view of the image).
        """
        ...


def check_reader(reader: object) -> Reader:
    """Return `reader` if it has a callable `answer`, else raise a ValueError saying what to
    pass."""
    if not callable(getattr(reader, "answer", None)):
        raise ValueError(
            f"reader must have a method answer(question, options, description) -> str "
            f"(see grounding_gym.readers.Reader), got {reader!r}; pass None for the RuleReader"
        )
    return reader  # type: ignore[return-value]


def question_cues(question: str, colors: Sequence[str] = COLOR_WORDS) -> tuple[str, ...]:
    """Target cues of a question: its colour words and labels, lower case, in order of appearance.

    >>> question_cues("Which digit is inside the ring labelled K7?")
    ('k7',)
    >>> question_cues("What fills the red ring?")
    ('red',)
    """
    found: list[tuple[int, str]] = []
    lowered = question.lower()
    for color in colors:
        found += [
            (m.start(), color) for m in re.finditer(rf"\b{re.escape(color.lower())}\b", lowered)
        ]
    found += [(m.start(1), m.group(1).lower()) for m in _LABEL_RE.finditer(question)]
    return tuple(dict.fromkeys(cue for _, cue in sorted(found)))


def _has_word(text: str, word: str) -> bool:
    return re.search(rf"(?<![\w-]){re.escape(word)}(?![\w-])", text) is not None


@dataclass(frozen=True)
class RuleReader:
    """The built-in reader: option text + target cue, both literally in the description.

    See the module docstring for the rules.

    Attributes:
        colors: colour words that count as target cues.
        require_cue: when the question has cues, the description must mention one.

    Examples:
        >>> reader = RuleReader()
        >>> options = ["stripes", "dots", "checkerboard", "plain"]
        >>> reader.answer("What fills the red ring?", options, "The red ring is filled with dots.")
        'B'
        >>> reader.answer("What fills the red ring?", options, "A ring filled with dots.")  # no cue
        '?'
        >>> reader.answer("What fills the red ring?", options, "The answer is B")
        '?'
    """

    colors: tuple[str, ...] = COLOR_WORDS
    require_cue: bool = True

    def answer(self, question: str, options: Sequence[str] | None, description: str) -> str:
        if not options:
            return UNKNOWN
        lowered = description.lower()
        cues = question_cues(question, self.colors)
        if self.require_cue and cues and not any(_has_word(lowered, cue) for cue in cues):
            return UNKNOWN
        text = normalize_text(description)
        normalized = [normalize_text(o) for o in options]
        found = [i for i, o in enumerate(normalized) if o and _has_word(text, o)]
        found = [
            i
            for i in found
            if not any(
                j != i
                and normalized[i] != normalized[j]
                and _has_word(normalized[j], normalized[i])
                for j in found
            )
        ]
        if len(found) != 1:
            return UNKNOWN
        return chr(ord("A") + found[0])
