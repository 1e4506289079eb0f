"""The pinned answer judge: deterministic match, the on-disk cache, a real `transformers serve`
judge on loopback (the tiny checkpoint), and an endpoint that is down (never a silent 0)."""

from __future__ import annotations

import json

import pytest

from grounding_gym.eval import evaluate, read_records
from grounding_gym.judge import AnswerJudge, JudgeError, deterministic_match, judge_summary
from tests.grounding_gym.data.formats.test_visualprobe import ROWS, _write
from tests.servers import TransformersServe, free_port

pytest.importorskip("openai")

GOLD = {"easy/0": "YE OLDE.", "easy/1": "eight"}
REPLIES = {"easy/0": "ye olde", "easy/1": "8 birds on the wire"}  # exact; needs the judge


def _judge(tmp_path, port: int, **extra) -> dict:
    return {
        "model": "judge-model",
        "base_url": f"http://127.0.0.1:{port}/v1",
        "cache_dir": str(tmp_path / "cache"),
        "max_retries": 0,
        "timeout": 5.0,
        **extra,
    }


class Replies:
    """Answers each VisualProbe sample with the text in `REPLIES`."""

    def act(self, observations, infos):
        return [f"<answer>{REPLIES[i['sample_id']]}</answer>" for i in infos]


def _run(tmp_path, name: str, judge: dict, on_error: str = "record") -> dict:
    root = tmp_path / "vp"
    if not root.exists():
        _write(root, {"Easy": ROWS["Easy"]})
    return evaluate(
        Replies(),
        "GroundedVQA-v0",
        dataset="visualprobe",
        env_kwargs={"data_dir": str(root / "VisualProbe_Easy"), "answer_judge": judge},
        out_dir=tmp_path / name,
        progress=False,
        plots=False,
        on_error=on_error,
    )


def test_deterministic_match_and_cache_key():
    assert deterministic_match("Ye Olde", "YE OLDE.") == "exact"
    assert deterministic_match("eight", "8") == "exact"  # the env reads number words
    assert deterministic_match("8 birds", "eight") is None
    judge = AnswerJudge({"model": "m", "cache_dir": "c"})
    key = judge.cache_path("q", "g", "p")
    assert key == judge.cache_path("q", "g", "p") != judge.cache_path("q", "g", "p2")
    other = AnswerJudge({"model": "m2", "cache_dir": "c"})
    assert other.cache_path("q", "g", "p") != key  # the judge model is part of the key
    with pytest.raises(ValueError, match="prompt_version 'v9' is not shipped; have \\['v1'\\]"):
        AnswerJudge({"model": "m", "prompt_version": "v9"})
    with pytest.raises(ValueError, match="unknown field"):
        AnswerJudge({"model": "m", "temprature": 0})


def test_a_cached_verdict_is_used_without_a_request(tmp_path):
    port = free_port()  # nothing listens here: any request would fail
    judge = AnswerJudge(_judge(tmp_path, port))
    path = judge.cache_path("How many?", "eight", "8 birds")
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"raw": "Yes."}), encoding="utf-8")
    verdict = judge("How many?", "eight", "8 birds")
    assert (verdict.correct, verdict.source, verdict.exact, verdict.raw) == (
        True,
        "cache",
        False,
        "Yes.",
    )
    assert judge.requests == 0


def test_an_unreadable_cache_file_is_asked_again_not_trusted(tmp_path):
    judge = AnswerJudge(_judge(tmp_path, free_port(), on_error="record"))
    path = judge.cache_path("q", "gold", "pred")
    path.parent.mkdir(parents=True)
    path.write_text("{torn", encoding="utf-8")
    verdict = judge("q", "gold", "pred")  # nothing listens: the new request fails, recorded
    assert (verdict.correct, verdict.source, judge.requests) == (None, "error", 1)
    assert "failed" in verdict.error


def test_endpoint_down_raises_or_records_never_a_silent_zero(tmp_path):
    port = free_port()
    with pytest.raises(JudgeError, match="failed .*start the judge server"):
        _run(tmp_path, "raise", _judge(tmp_path, port), on_error="raise")
    # Under the harness's default on_error="record" the judge's error fails the episode: it is
    # recorded with the error and left out of the metrics, never scored 0.
    summary = _run(tmp_path, "harness-record", _judge(tmp_path, port))
    assert summary["errors"]["n"] == 1 and "JudgeError" in summary["errors"]["episodes"][0]["error"]
    summary = _run(tmp_path, "record", _judge(tmp_path, port, on_error="record"))
    records = {r["sample_id"]: r for r in read_records(tmp_path / "record" / "episodes.jsonl")}
    assert records["easy/0"]["judge"]["source"] == "exact" and records["easy/0"]["correct"]
    failed = records["easy/1"]["judge"]
    assert failed["correct"] is None and failed["source"] == "error"
    assert "failed" in failed["judge_error"] and not records["easy/1"]["correct"]
    judged = summary["meta"]["answer_judge"]
    assert judged["errors"] == 1 and judged["by_source"] == {"exact": 1, "error": 1}
    assert not (tmp_path / "cache").exists()  # a failure is not cached


@pytest.fixture(scope="module")
def judge_server():
    """`transformers serve` on loopback with the tiny Qwen2.5-VL checkpoint; yields
    (base_url, model, process) and stops it."""
    tiny = pytest.importorskip("agents.policies.tiny_qwen")
    pytest.importorskip("fastapi")
    serve = TransformersServe(tiny.tiny_qwen25vl_path()).start(timeout_s=240.0)
    yield serve.url, serve.checkpoint, serve.process
    serve.stop()


@pytest.mark.slow
def test_real_judge_verdicts_are_cached_and_a_rerun_makes_no_request(tmp_path, judge_server):
    base_url, model, process = judge_server
    judge = {"model": model, "base_url": base_url, "cache_dir": str(tmp_path / "cache")}
    first = _run(tmp_path, "first", {**judge, "max_retries": 0})
    records = {r["sample_id"]: r for r in read_records(tmp_path / "first" / "episodes.jsonl")}
    asked = records["easy/1"]["judge"]
    assert asked["source"] == "judge" and asked["model"] == model
    assert isinstance(asked["raw"], str)  # the judge's reply, kept in the record
    cached = list((tmp_path / "cache").rglob("*.json"))
    assert len(cached) == 1  # "ye olde" matched exactly: one request only
    entry = json.loads(cached[0].read_text(encoding="utf-8"))
    assert entry["raw"] == asked["raw"] and entry["prompt_version"] == "v1"
    assert (entry["gold"], entry["prediction"]) == ("eight", "8 birds on the wire")
    # the tiny random model does not answer yes/no: recorded as a judge_error, counted
    if asked["correct"] is None:
        assert "neither yes nor no" in asked["judge_error"]
        assert first["meta"]["answer_judge"]["errors"] == 1
    process.terminate()
    process.wait(timeout=30)
    second = _run(tmp_path, "rerun", {**judge, "max_retries": 0})  # server gone: cache only
    again = {r["sample_id"]: r for r in read_records(tmp_path / "rerun" / "episodes.jsonl")}
    assert again["easy/1"]["judge"]["source"] == "cache"
    assert {k: v for k, v in again["easy/1"]["judge"].items() if k != "source"} == {
        k: v for k, v in asked.items() if k != "source"
    }
    assert second["overall"]["accuracy"] == first["overall"]["accuracy"]
    assert judge_summary(list(again.values()))["by_source"] == {"exact": 1, "cache": 1}
