"""The `replay` eval agent: step conversations recorded elsewhere through the env, so every metric
(accuracy, crop IoU/coverage per bin and category, plots, `render`) is computed by this library
on another system's outputs.

    grounding-gym eval --agent replay --dataset vstar --data-dir V* \
        --dataset-kwargs '{"option_seed": null}' --env-kwargs '{"coord_frame": "original"}' \
        --agent-kwargs '{"path": "outputs.jsonl", "match": "image+question"}'

Input: JSONL, one episode per line, holding an OpenAI-style chat list under `messages_key`
(default "messages"): `{"role": ..., "content": str | [{"type": "text", "text": ...}, ...]}`.
Each assistant message is one action, stepped in order and parsed by `parse_action` (so
`<tool_call>{"name": "image_zoom_in_tool", "arguments": {"bbox_2d": [...]}}` crops); an OpenAI
`tool_calls` field becomes the same `<tool_call>` text. The boxes are read in the env's
`coord_frame` (recorded tools often crop the original: pass `coord_frame="original"`).
The last assistant message, when it is neither a crop nor a tagged answer, is the answer (text
after a `</think>`), so "A. The cap is white." resolves to A. A conversation whose messages run
out without an answer ends unanswered (`truncated`, counted wrong).

Matching a line to a sample:

* `match="id"`: the line's `sample_id` (or `id`) equals the sample's id;
* `match="image+question"`: the line's `image` file name and `question` text (whitespace
  normalised) equal the sample's image file name and question.

Nothing is dropped silently: lines matching no sample or several samples, samples given by two
lines (the first is replayed), samples without a line (ended unanswered) and lines with more
actions than `max_turns` are counted in `ReplayAgent.report`, which the harness stores in the
summary as `meta["agent_report"]`, and warned about.

Scoring is against the options as the env shows them: replay outputs recorded with a file's
option order on a dataset loaded in file order (e.g. V* `option_seed=None`).
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Literal

from grounding_gym.actions import format_answer, parse_action
from grounding_gym.data.formats.records import iter_jsonl
from grounding_gym.data.sample import Sample

__all__ = ["MATCH_MODES", "ReplayAgent", "assistant_actions", "message_text"]

MATCH_MODES: tuple[str, ...] = ("id", "image+question")
_THINK_END = re.compile(r"<\s*/\s*think\s*>", re.IGNORECASE)


def message_text(content: Any) -> str:
    """The text of a chat message's `content`: a string, or the `text` of its text parts joined
    by newlines (image parts are skipped); None gives ""."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, Sequence):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, Mapping) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return str(content)


def _tool_call_text(call: Mapping[str, Any]) -> str:
    """An OpenAI `tool_calls` entry as Qwen `<tool_call>{"name", "arguments"}</tool_call>` text."""
    function = call.get("function", call)
    arguments = function.get("arguments", {})
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            pass  # left as text: parse_action reports it
    body = json.dumps({"name": function.get("name", ""), "arguments": arguments})
    return f"<tool_call>{body}</tool_call>"


def assistant_actions(messages: Sequence[Any]) -> list[str]:
    """The action texts of a recorded conversation, one per assistant message, in order.

    `tool_calls` are appended as `<tool_call>` text. The last action, when `parse_action` finds
    neither a crop nor an answer in it, becomes `<answer>...</answer>` holding its text after any
    `</think>` (the final free-text reply is the answer): a last message "A. White." gives
    `"<answer>A. White.</answer>"` (tested in tests/grounding_gym/eval/test_replay.py).
    """
    texts = []
    for message in messages:
        if not isinstance(message, Mapping) or message.get("role") != "assistant":
            continue
        text = message_text(message.get("content"))
        calls = message.get("tool_calls") or []
        if calls:
            text = "\n".join(
                [text, *(_tool_call_text(c) for c in calls if isinstance(c, Mapping))]
            ).strip()
        texts.append(text)
    if texts and parse_action(texts[-1]).kind == "invalid":
        final = _THINK_END.split(texts[-1])[-1].strip()
        if final:
            texts[-1] = format_answer(final)
    return texts


def _norm(text: Any) -> str:
    return " ".join(str(text).split())


def _image_name(value: Any) -> str | None:
    """The file name of an image field (a path, or the first of a list); None otherwise."""
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, Mapping):
        value = value.get("path") or value.get("image") or value.get("url")
    if isinstance(value, (str, os.PathLike)) and not str(value).startswith("data:"):
        return os.path.basename(os.fspath(value).replace("\\", "/").rstrip("/")) or None
    return None


def _sample_key(sample: Sample, match: str) -> tuple[str, ...] | None:
    if match == "id":
        return (sample.id,)
    name = _image_name(sample.image) or sample.metadata.get("image_name")
    return None if name is None else (str(name), _norm(sample.question))


class ReplayAgent:
    """Replays recorded conversations (see the module docstring).

    Args:
        env: the unwrapped env; its `dataset` is matched against the file once, here.
        path: the JSONL file of recorded episodes.
        match: "id" or "image+question".
        messages_key: the field holding the chat list (default "messages").
        id_keys: fields tried, in order, for `match="id"`.

    Attributes:
        report: counts and line numbers of what did not match one-to-one (`lines`, `matched`,
            `unmatched_lines`, `ambiguous_lines`, `duplicate_lines`, `samples_without_line`,
            `longer_than_max_turns`).

    Raises:
        ValueError: a bad `match`, a line that is not a JSON object, or a line without the
            fields `match` needs or without a chat list (message: file, line and field).
        FileNotFoundError: no file at `path`.
    """

    def __init__(
        self,
        env: Any,
        path: str | os.PathLike,
        match: Literal["id", "image+question"] = "id",
        messages_key: str = "messages",
        id_keys: Sequence[str] = ("sample_id", "id"),
    ) -> None:
        if match not in MATCH_MODES:
            raise ValueError(f"match={match!r} is not one of {MATCH_MODES}")
        self.path, self.match, self.messages_key = os.fspath(path), match, messages_key
        self.id_keys = tuple(id_keys)
        dataset: Sequence[Sample] = env.dataset
        by_key: dict[tuple[str, ...], list[int]] = {}
        for index in range(len(dataset)):
            key = _sample_key(dataset[index], match)
            if key is not None:
                by_key.setdefault(key, []).append(index)
        self._actions: dict[int, list[str]] = {}
        self._line_of: dict[int, int] = {}
        report: dict[str, Any] = {
            "path": self.path,
            "match": match,
            "lines": 0,
            "matched": 0,
            "unmatched_lines": [],
            "ambiguous_lines": [],
            "duplicate_lines": [],
            "longer_than_max_turns": [],
        }
        max_turns = int(getattr(env, "max_turns", 0) or 0)
        for line, record in self._records():
            report["lines"] += 1
            hits = by_key.get(self._line_key(record, line), [])
            if not hits:
                report["unmatched_lines"].append(line)
                continue
            if len(hits) > 1:
                report["ambiguous_lines"].append(line)
                continue
            index = hits[0]
            if index in self._actions:
                report["duplicate_lines"].append(line)
                continue
            actions = assistant_actions(self._messages(record, line))
            self._actions[index], self._line_of[index] = actions, line
            report["matched"] += 1
            if max_turns and len(actions) > max_turns:
                report["longer_than_max_turns"].append(line)
        report["samples_without_line"] = len(dataset) - len(self._actions)
        self.report = report
        self._warn()

    def _records(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if not os.path.isfile(self.path):
            raise FileNotFoundError(f"replay: no file {self.path!r} (agent kwarg path=)")
        for record in iter_jsonl(self.path):
            yield record.line, record.value

    def _line_key(self, record: Mapping[str, Any], line: int) -> tuple[str, ...]:
        where = f"{self.path}, line {line}"
        if self.match == "id":
            key = next((k for k in self.id_keys if record.get(k) is not None), None)
            if key is None:
                raise ValueError(
                    f"{where}: no field {' or '.join(map(repr, self.id_keys))} to match by id; "
                    f"the line has {sorted(record)}. Fix: match='image+question'."
                )
            return (str(record[key]),)
        missing = [k for k in ("image", "question") if record.get(k) is None]
        if missing:
            raise ValueError(
                f"{where}: field(s) {missing} missing for match='image+question'; "
                f"the line has {sorted(record)}"
            )
        return (str(_image_name(record["image"])), _norm(record["question"]))

    def _messages(self, record: Mapping[str, Any], line: int) -> Sequence[Any]:
        messages = record.get(self.messages_key)
        if not isinstance(messages, list):
            raise ValueError(
                f"{self.path}, line {line}: field {self.messages_key!r} must be a list of chat "
                f"messages, got {type(messages).__name__}; the line has {sorted(record)} "
                "(agent kwarg messages_key= names another field)"
            )
        return messages

    def _warn(self) -> None:
        r = self.report
        problems = [
            f"{len(r[k])} {k.replace('_', ' ')} (first: line {r[k][0]})"
            for k in (
                "unmatched_lines",
                "ambiguous_lines",
                "duplicate_lines",
                "longer_than_max_turns",
            )
            if r[k]
        ]
        if r["samples_without_line"]:
            problems.append(
                f"{r['samples_without_line']} samples without a line (scored unanswered)"
            )
        if problems:
            warnings.warn(
                f"replay {self.path}: {r['matched']} of {r['lines']} lines matched by "
                f"{self.match}; " + "; ".join(problems),
                UserWarning,
                stacklevel=3,
            )

    def act(
        self, observations: Sequence[Mapping[str, Any]], infos: Sequence[Mapping[str, Any]]
    ) -> list[str | None]:
        """The recorded action of each episode's turn (`info["turn"]`, 0 first), or None when the
        episode's recording has no more actions (or none at all): the harness ends it unanswered."""
        out: list[str | None] = []
        for info in infos:
            actions = self._actions.get(int(info["sample_index"]), [])
            turn = int(info.get("turn", 0))
            out.append(actions[turn] if turn < len(actions) else None)
        return out
