"""The `openai` eval agent against a real `transformers serve` on loopback (CPU, tiny checkpoint).

`transformers serve CHECKPOINT --device cpu` runs the tiny Qwen2.5-VL built in code
(`agents.policies.tiny_qwen`); its random weights reply with junk, so every episode runs to
`max_turns` (multi-turn) with invalid actions, which is what these tests need: the protocol, the
records, the faults. Fault tests: the server is killed mid-run (the run stops, a rerun against a
restarted server finishes without duplicates); a loopback proxy answers 429 once, then passes
requests on to the real server (the client's backoff retries it).
"""

from __future__ import annotations

import http.server
import json
import threading
import urllib.request

import pytest

pytest.importorskip("openai")
pytest.importorskip("fastapi")  # `transformers serve` needs transformers[serving]
tiny_qwen = pytest.importorskip("agents.policies.tiny_qwen")

from grounding_gym.cli import main  # noqa: E402
from grounding_gym.eval.agents import AgentUnavailableError  # noqa: E402
from grounding_gym.eval.harness import evaluate  # noqa: E402
from grounding_gym.eval.records import read_records  # noqa: E402
from tests.servers import TransformersServe  # noqa: E402

pytestmark = pytest.mark.slow

ENV_KWARGS = tiny_qwen.tiny_env_kwargs(max_turns=2)
DATASET_KWARGS = {"num_samples": 8, "image_size": 256, "target_rel_area": [0.01, 0.1]}


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_qwen.build_tiny_qwen25vl(tmp_path_factory.mktemp("tiny-qwen25vl"))


@pytest.fixture(scope="module")
def server(checkpoint):
    serve = TransformersServe(checkpoint).start()
    yield serve
    serve.stop()


def agent_kwargs(url: str, model: str, **extra) -> dict:
    return {"base_url": url, "model": model, "max_tokens": 12, "max_retries": 2, **extra}


def test_cli_eval_records_three_multi_turn_episodes(server, checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["eval", "--agent", "openai", "-n", "3", "--num-envs", "2", "--out", str(out)]
    argv += ["--agent-kwargs", json.dumps(agent_kwargs(server.url, checkpoint))]
    argv += ["--env-kwargs", json.dumps(ENV_KWARGS), "--dataset-kwargs", json.dumps(DATASET_KWARGS)]
    assert main([*argv, "--no-progress", "--no-plots"]) == 0
    records = sorted(read_records(out / "episodes.jsonl"), key=lambda r: r["episode"])
    assert [r["episode"] for r in records] == [0, 1, 2]
    for record in records:
        assert not record.get("error") and record["turns"] == 2  # junk replies: 2 turns each
        log = record["agent_log"]
        assert [entry["turn"] for entry in log] == [0, 1]  # one request per turn
        assert [entry["response"]["choices"][0]["message"]["content"] for entry in log] == (
            record["actions"]
        )
        first, second = (entry["request"]["messages"] for entry in log)
        assert [m["role"] for m in first] == ["system", "user"]
        assert [m["role"] for m in second] == ["system", "user", "assistant", "user"]
        image = first[1]["content"][0]  # the first view, logged without its bytes
        assert image["type"] == "image_url" and len(image["sha1"]) == 16
        assert second[2]["content"] == record["actions"][0]
        assert log[0]["request"]["max_tokens"] == 12 and "tools" not in log[0]["request"]
        assert log[0]["response"]["usage"]["prompt_tokens"] > 16  # the image's tokens included


def test_tool_env_sends_its_tool_schema(server, checkpoint, tmp_path):
    from grounding_gym.envs.deepeyes import IMAGE_ZOOM_IN_TOOL

    summary = evaluate(
        "openai",
        "GroundedVQA-HR-DeepEyes-v0",
        env_kwargs=ENV_KWARGS,
        dataset_kwargs=DATASET_KWARGS,
        agent_kwargs=agent_kwargs(server.url, checkpoint),
        n=1,
        out_dir=tmp_path,
        progress=False,
        plots=False,
    )
    assert summary["overall"]["n"] == 1 and summary["errors"]["n"] == 0
    (record,) = read_records(tmp_path / "episodes.jsonl")
    assert all(entry["request"]["tools"] == [IMAGE_ZOOM_IN_TOOL] for entry in record["agent_log"])


def test_server_killed_mid_run_then_the_run_resumes_without_duplicates(checkpoint, tmp_path):
    serve = TransformersServe(checkpoint).start()
    out = tmp_path / "run"
    kwargs = agent_kwargs(serve.url, checkpoint, max_retries=1, timeout=10.0)

    killed = []

    class KillAfterFirstEpisode:
        """The `openai` agent; the server is killed (once) before the agent's third request."""

        def __init__(self, env):
            from grounding_gym.eval.openai_agent import OpenAIAgent

            self.agent, self.calls = OpenAIAgent(env, **kwargs), 0

        def act(self, observations, infos):
            self.calls += 1
            if self.calls == 3 and not killed:
                killed.append(True)
                serve.stop()
            return self.agent.act(observations, infos)

        def episode_log(self, episode):
            return self.agent.episode_log(episode)

    run = {
        "env_kwargs": ENV_KWARGS,
        "dataset_kwargs": DATASET_KWARGS,
        "n": 3,
        "out_dir": out,
        "progress": False,
        "plots": False,
    }
    try:
        with pytest.raises(AgentUnavailableError, match="run the same command again"):
            evaluate(KillAfterFirstEpisode(_env_for_agent()), **run)
        assert [r["episode"] for r in read_records(out / "episodes.jsonl")] == [0]
        serve.start()
        summary = evaluate(KillAfterFirstEpisode(_env_for_agent()), **run)
    finally:
        serve.stop()
    records = read_records(out / "episodes.jsonl")
    assert sorted(r["episode"] for r in records) == [0, 1, 2]  # each once
    assert all(not r.get("error") and len(r["agent_log"]) == r["turns"] for r in records)
    assert summary["overall"]["n"] == 3 and summary["errors"]["n"] == 0


def _env_for_agent():
    import gymnasium as gym

    return gym.make("GroundedVQA-HR-v0", dataset_kwargs=DATASET_KWARGS, **ENV_KWARGS).unwrapped


class Answer429Once(http.server.BaseHTTPRequestHandler):
    """A loopback proxy to `upstream`: the first POST gets 429 (Retry-After: 0), every later
    request is passed on unchanged."""

    upstream = ""
    posts: list[int] = []

    def do_POST(self):  # noqa: N802  (http.server's naming)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if not self.posts:
            self.posts.append(429)
            self.send_response(429)
            self.send_header("Retry-After", "0")
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"error": {"message": "rate limited", "type": "rate_limit"}}')
            return
        request = urllib.request.Request(
            self.upstream + self.path.removeprefix("/v1"),
            data=body,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            data = response.read()
            self.posts.append(response.status)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_429_then_success(server, checkpoint):
    Answer429Once.upstream, Answer429Once.posts = server.url, []
    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Answer429Once)
    thread = threading.Thread(target=proxy.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{proxy.server_address[1]}/v1"
        summary = evaluate(
            "openai",
            env_kwargs=ENV_KWARGS,
            dataset_kwargs=DATASET_KWARGS,
            agent_kwargs=agent_kwargs(url, checkpoint),
            n=1,
            progress=False,
            plots=False,
        )
    finally:
        proxy.shutdown()
        proxy.server_close()
    assert Answer429Once.posts == [429, 200, 200]  # the first request retried once, then 2 turns
    assert summary["overall"]["n"] == 1 and summary["errors"]["n"] == 0
