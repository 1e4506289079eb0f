"""A pinned answer judge for free-form answers: exact and numeric match first, then a model.

Free-form benchmarks (VisualProbe: "YE OLDE.", "6C71", "eight") need more than exact match, and
a judge whose verdicts change between runs makes scores irreproducible. `AnswerJudge` pins it:

1. Deterministic match: the env's own `rewards.answer_reward` (normalised exact match, numbers
   within 1 %, a lone number word read as digits: "eight" = "8"). A match is correct without a
   request.
2. Otherwise the cache: one JSON file per verdict under `cache_dir`, keyed by the SHA-256 of
   (question, gold, prediction, judge model, prompt version). Reruns are free and identical.
3. Otherwise one request to an OpenAI-compatible chat endpoint (`transformers serve`, vLLM,
   hosted APIs): the versioned prompt `prompts/answer_judge_<version>.txt`, temperature 0,
   `max_tokens`. The reply must start with "yes" or "no"; it is cached with its raw text.

A verdict (`Verdict.record()`) goes into the episode record: the source (exact | cache |
judge | error), the raw reply, and `judge_error` when there is no verdict. An unreachable or
failing endpoint raises `JudgeError` (`on_error="raise"`, the default) or, with
`on_error="record"`, scores the answer 0 with the error recorded; a reply that is neither yes nor
no is always recorded as a `judge_error` (and cached: the prompt is pinned, so is the reply). A
score never silently becomes 0: `judge_summary` counts errors beside the judge's agreement with
exact match. The `openai` client is imported only when a request is made (extra `openai`).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from grounding_gym.atomic import atomic_write_text
from grounding_gym.rewards import answer_reward
from grounding_gym.validation import check_choice

__all__ = [
    "JUDGE_ON_ERROR",
    "AnswerJudge",
    "JudgeConfig",
    "JudgeError",
    "Verdict",
    "judge_prompt",
    "judge_summary",
    "make_answer_judge",
]

PROMPTS_DIR = Path(__file__).resolve().parent / "prompts"
JUDGE_ON_ERROR = ("raise", "record")
_VERDICT = re.compile(r"^\W*(yes|no)\b", re.IGNORECASE)


class JudgeError(RuntimeError):
    """The judge endpoint could not give a verdict (unreachable, or an API error)."""


@dataclass(frozen=True)
class JudgeConfig:
    """What pins a judge (the env kwarg `answer_judge` is this, as a dict).

    Attributes:
        model: the model name the endpoint serves (part of the cache key).
        base_url: e.g. "http://127.0.0.1:8000/v1"; default $OPENAI_BASE_URL.
        api_key: default $OPENAI_API_KEY, else "EMPTY" (local servers ignore it).
        prompt_version: the prompt file `prompts/answer_judge_<version>.txt` (part of the key).
        max_tokens: cap on the reply's tokens (one word is asked for).
        cache_dir: where verdicts are cached (one JSON file each).
        timeout: seconds per request attempt.
        max_retries: the client's retries (exponential backoff) before `JudgeError`.
        on_error: "raise" (stop the run) or "record" (score 0, `judge_error` recorded).
    """

    model: str
    base_url: str | None = None
    api_key: str | None = None
    prompt_version: str = "v1"
    max_tokens: int = 8
    cache_dir: str = os.path.join("runs", "judge-cache")
    timeout: float = 60.0
    max_retries: int = 2
    on_error: str = "raise"

    def __post_init__(self) -> None:
        check_choice("on_error", self.on_error, JUDGE_ON_ERROR)
        if not isinstance(self.model, str) or not self.model:
            raise ValueError(f"answer_judge needs a model name, got {self.model!r}")
        if self.max_tokens < 1:
            raise ValueError(f"answer_judge max_tokens must be >= 1, got {self.max_tokens}")
        judge_prompt(self.prompt_version)  # raises for a missing prompt file


@dataclass(frozen=True)
class Verdict:
    """One answer's verdict.

    Attributes:
        correct: True / False, or None when the judge gave no verdict (`error` says why).
        source: "exact" (the env's deterministic match), "cache", "judge" (a request now), or
            "error" (no reply: the endpoint failed).
        exact: the env's own free-form score (`rewards.answer_reward`), for agreement.
        raw: the judge's reply text (None without a judge call).
        error: why there is no verdict, else None.
        model, prompt_version: the judge that gave it (None for a deterministic match).
    """

    correct: bool | None
    source: str
    exact: bool
    raw: str | None = None
    error: str | None = None
    model: str | None = None
    prompt_version: str | None = None

    def record(self) -> dict[str, Any]:
        """The JSON-ready form kept in the episode record (`judge_error` for `error`)."""
        out = asdict(self)
        out["judge_error"] = out.pop("error")
        return out


def judge_prompt(version: str) -> str:
    """The text of prompt `version` (with `{question}`, `{gold}`, `{prediction}` fields).

    Raises:
        ValueError: no such prompt file (lists the versions shipped).
    """
    file = PROMPTS_DIR / f"answer_judge_{version}.txt"
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", str(version)) or not file.is_file():
        shipped = sorted(p.stem.removeprefix("answer_judge_") for p in PROMPTS_DIR.glob("*.txt"))
        raise ValueError(f"answer_judge prompt_version {version!r} is not shipped; have {shipped}")
    return file.read_text(encoding="utf-8")


def deterministic_match(prediction: str, gold: str) -> str | None:
    """ "exact" when `prediction` matches `gold` by the env's own free-form match
    (`rewards.answer_reward`: normalised text, numbers within 1 %, number words as digits), so no
    judge is asked; else None.

    >>> deterministic_match("ye olde", "YE OLDE."), deterministic_match("8", "eight")
    ('exact', 'exact')
    >>> deterministic_match("6C7I", "6C71") is None
    True
    """
    return "exact" if answer_reward(prediction, gold) else None


class AnswerJudge:
    """Judge free-form answers: deterministic match, else the cache, else the model.

    Args:
        config: a `JudgeConfig` or its fields as a dict (the env kwarg `answer_judge`).

    Attributes:
        requests: requests made to the endpoint by this judge (0 on a fully cached rerun).
    """

    def __init__(self, config: JudgeConfig | Mapping[str, Any]):
        if isinstance(config, Mapping):
            unknown = set(config) - set(JudgeConfig.__dataclass_fields__)
            if unknown:
                raise ValueError(
                    f"answer_judge: unknown field(s) {sorted(unknown)}; fields are "
                    f"{sorted(JudgeConfig.__dataclass_fields__)}"
                )
            config = JudgeConfig(**config)
        self.config = config
        self.prompt = judge_prompt(config.prompt_version)
        self.requests = 0
        self._client: Any = None

    def __call__(self, question: str, gold: str, prediction: str) -> Verdict:
        """The verdict on `prediction` against `gold` for `question`."""
        source = deterministic_match(prediction, gold)
        if source is not None:
            return Verdict(True, source, exact=source == "exact")
        exact = False
        cfg = self.config
        path = self.cache_path(question, gold, prediction)
        cached = _read_cache(path)
        if cached is not None:
            return self._verdict(cached.get("raw"), exact, "cache")
        try:
            raw = self._ask(question, gold, prediction)
        except JudgeError as exc:
            if cfg.on_error == "raise":
                raise
            return Verdict(
                None,
                "error",
                exact,
                error=str(exc),
                model=cfg.model,
                prompt_version=cfg.prompt_version,
            )
        entry = {
            "question": question,
            "gold": gold,
            "prediction": prediction,
            "model": cfg.model,
            "prompt_version": cfg.prompt_version,
            "raw": raw,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(entry, ensure_ascii=False, indent=1) + "\n")
        return self._verdict(raw, exact, "judge")

    def cache_path(self, question: str, gold: str, prediction: str) -> Path:
        """The cache file of one verdict: SHA-256 of (question, gold, prediction, model,
        prompt version)."""
        cfg = self.config
        key = json.dumps([question, gold, prediction, cfg.model, cfg.prompt_version])
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        return Path(cfg.cache_dir) / digest[:2] / f"{digest}.json"

    def _verdict(self, raw: Any, exact: bool, source: str) -> Verdict:
        cfg = self.config
        match = _VERDICT.match(raw) if isinstance(raw, str) else None
        if match is None:
            return Verdict(
                None,
                source,
                exact,
                raw=raw if isinstance(raw, str) else None,
                error=f"the judge's reply is neither yes nor no: {raw!r}",
                model=cfg.model,
                prompt_version=cfg.prompt_version,
            )
        correct = match.group(1).lower() == "yes"
        return Verdict(
            correct, source, exact, raw=raw, model=cfg.model, prompt_version=cfg.prompt_version
        )

    def _ask(self, question: str, gold: str, prediction: str) -> str:
        cfg = self.config
        client = self._openai_client()
        import openai

        text = self.prompt.format(question=question, gold=gold, prediction=prediction)
        self.requests += 1
        try:
            response = client.chat.completions.create(
                model=cfg.model,
                messages=[{"role": "user", "content": text}],
                temperature=0,
                max_tokens=cfg.max_tokens,
            )
        except openai.OpenAIError as exc:
            raise JudgeError(
                f"answer judge {cfg.model!r} at {client.base_url} failed ({type(exc).__name__}: "
                f"{exc}); start the judge server, or pass on_error='record' to record the error "
                "and go on"
            ) from exc
        return response.choices[0].message.content or ""

    def _openai_client(self) -> Any:
        if self._client is None:
            try:
                import openai
            except ImportError as exc:
                raise ImportError(
                    "answer_judge needs the `openai` package: pip install 'grounding-gym[openai]'"
                ) from exc
            cfg = self.config
            self._client = openai.OpenAI(
                base_url=cfg.base_url or os.environ.get("OPENAI_BASE_URL"),
                api_key=cfg.api_key or os.environ.get("OPENAI_API_KEY") or "EMPTY",
                timeout=cfg.timeout,
                max_retries=cfg.max_retries,
            )
        return self._client


def _read_cache(path: Path) -> dict[str, Any] | None:
    """A cached verdict entry, or None when there is none (or it is unreadable: asked again)."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return entry if isinstance(entry, dict) else None


def make_answer_judge(
    spec: AnswerJudge | JudgeConfig | Mapping[str, Any] | None,
) -> AnswerJudge | None:
    """The env kwarg `answer_judge` as a judge (None: exact / numeric match only)."""
    if spec is None or isinstance(spec, AnswerJudge):
        return spec
    return AnswerJudge(spec)


def judge_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """Judge counts of a run's episode records, or None when no episode was judged.

    Returns `n` (answers with a verdict record), `by_source` (exact / cache / judge /
    error), `errors`, `agreement` (share of answers with a verdict whose verdict equals the
    exact-match score), `judge_only` (correct by the judge, not by exact match) and the judge
    `model` and `prompt_version` seen.
    """
    verdicts = [r["judge"] for r in records if isinstance(r.get("judge"), Mapping)]
    if not verdicts:
        return None
    by_source: dict[str, int] = {}
    for v in verdicts:
        by_source[v["source"]] = by_source.get(v["source"], 0) + 1
    decided = [v for v in verdicts if v.get("correct") is not None]
    agree = sum(1 for v in decided if bool(v["correct"]) == bool(v["exact"]))
    return {
        "n": len(verdicts),
        "by_source": by_source,
        "errors": sum(1 for v in verdicts if v.get("judge_error")),
        "agreement": agree / len(decided) if decided else None,
        "judge_only": sum(1 for v in decided if v["correct"] and not v["exact"]),
        "model": sorted({v["model"] for v in verdicts if v.get("model")}),
        "prompt_version": sorted(
            {v["prompt_version"] for v in verdicts if v.get("prompt_version")}
        ),
    }
