"""Each attack of the threat model (docs/reliability.md, "Threat model") reproduced for real, and
its defence: hostile checkpoints, hostile wire requests, hostile dataset files, racing writers.

A malicious pickle here really would run a shell command (it writes a marker file); the tests
assert the file never appears.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


class ShellOnUnpickle:
    """Unpickling this runs `touch <marker>` (pickle calls `os.system` to rebuild it)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def malicious_checkpoint(path: Path, marker: Path) -> Path:
    """A `checkpoint.pt` shaped like the trainer's, whose unpickling would create `marker`."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"policy": {}, "config": {"policy": "tiny"}, "hook": ShellOnUnpickle(marker)}, path)
    return path


# ---------------------------------------------------------------------------- checkpoints
def test_malicious_checkpoint_is_refused_by_eval_policy_checkpoint(tmp_path, capsys):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError
    from grounding_gym.cli import main

    marker = tmp_path / "pwned"
    ckpt = malicious_checkpoint(tmp_path / "run" / "checkpoint.pt", marker)
    argv = [
        "eval",
        "--agent",
        "policy-checkpoint",
        "--agent-kwargs",
        json.dumps({"path": str(ckpt)}),
    ]
    # The CLI reports a user error in one line and exits 2; --debug re-raises the error itself.
    assert main([*argv, "-n", "1", "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    message = capsys.readouterr().err
    assert f"{ckpt}: refused" in message and "could run code" in message
    assert not marker.exists()
    with pytest.raises(UnsafeCheckpointError, match="refused.*could run code") as err:
        main([*argv, "-n", "1", "--out", str(tmp_path / "out2"), "--no-progress", "--debug"])
    assert str(ckpt) in str(err.value)
    assert not marker.exists()
    import torch

    torch.load(ckpt, weights_only=False)  # the attack is real: unpickling runs the command
    assert marker.exists()


def test_malicious_checkpoint_is_refused_by_a_resuming_trainer(tmp_path):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError
    from agents.trainer import Trainer
    from tests.agents.test_trainer import tiny_cfg

    marker = tmp_path / "pwned"
    malicious_checkpoint(tmp_path / "run" / "checkpoint.pt", marker)
    trainer = Trainer(tiny_cfg(tmp_path / "run", total_steps=1))
    with pytest.raises(UnsafeCheckpointError, match="checkpoint.pt: refused"):
        trainer.train()  # resume=True: it finds output_dir/checkpoint.pt
    assert not marker.exists()


def test_malicious_checkpoint_is_refused_by_the_experiment_script(tmp_path):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError

    sys.path.insert(0, str(ROOT / "scripts"))
    import experiment_scale_bias as exp

    marker = tmp_path / "pwned"
    for arm in exp.MAIN_ARMS:
        malicious_checkpoint(exp.run_dir(tmp_path / "runs", arm, 0) / "checkpoint.pt", marker)
    config = str(ROOT / "examples" / "scale_bias.yaml")
    with pytest.raises(UnsafeCheckpointError, match="refused"):
        exp.ship_baselines(
            tmp_path / "runs", tmp_path / "ship", config, eval_questions=1, arms=exp.MAIN_ARMS
        )
    assert not marker.exists()


def test_truncated_checkpoint_names_the_file(tmp_path):
    pytest.importorskip("torch")
    from agents.checkpoint import UnsafeCheckpointError, load_checkpoint_file

    good = ROOT / "baselines" / "scale-bias" / "reader.pt"
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(UnsafeCheckpointError, match=f"{cut}: not a readable torch checkpoint"):
        load_checkpoint_file(cut)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(UnsafeCheckpointError, match="empty.pt: not a readable"):
        load_checkpoint_file(tmp_path / "empty.pt")


def test_shipped_checkpoints_load_without_unpickling():
    pytest.importorskip("torch")
    from agents.checkpoint import load_checkpoint_file

    files = sorted((ROOT / "baselines").rglob("*.pt"))
    assert len(files) >= 6
    for file in files:
        assert isinstance(load_checkpoint_file(file), dict), file


def test_trainer_checkpoint_round_trips_rng_state_through_weights_only(tmp_path):
    pytest.importorskip("torch")
    import random

    import numpy as np
    import torch

    from agents.checkpoint import (
        atomic_torch_save,
        get_rng_state,
        load_checkpoint_file,
        set_rng_state,
    )

    random.seed(3), np.random.seed(4), torch.manual_seed(5)
    np.random.standard_normal()  # a cached gaussian in NumPy's state
    atomic_torch_save({"rng": get_rng_state()}, tmp_path / "c.pt")
    want = (random.random(), np.random.standard_normal(), torch.rand(1).item())
    random.seed(0), np.random.seed(0), torch.manual_seed(0)
    set_rng_state(load_checkpoint_file(tmp_path / "c.pt")["rng"])
    assert (random.random(), np.random.standard_normal(), torch.rand(1).item()) == want


# ---------------------------------------------------------------------------- the served env
SERVE_ENV = "GroundedVQA-HR-v0"
SERVE_SMALL = {"dataset_kwargs": {"num_samples": 8, "image_size": (320, 640)}}


def serve_deps():
    pytest.importorskip("openenv")
    import requests
    from websockets.sync.client import connect

    return requests, connect


def ws_url(url: str, path: str = "/ws") -> str:
    return url.replace("http://", "ws://") + path


def child_pid(port: int) -> int:
    """Pid of this process's child whose command line serves `port` (read from /proc)."""
    me = str(os.getpid())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = (entry / "stat").read_text().rsplit(")", 1)[1].split()[1]
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if ppid == me and str(port).encode() in cmdline:
            return int(entry.name)
    raise LookupError(f"no child process serving port {port}")


def rss_bytes(pid: int) -> int:
    """Resident set size of `pid` (VmRSS of /proc/<pid>/status)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise LookupError(f"no VmRSS for pid {pid}")


def png_bomb(side: int = 13_000) -> str:
    """Base64 of a 1-bit `side` x `side` PNG (about 27 KB; 169 megapixels once decoded)."""
    import base64
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("1", (side, side)).save(buffer, format="PNG", optimize=True)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def test_png_bomb_and_np_void_are_refused_without_server_memory_growth():
    _, connect = serve_deps()
    from grounding_gym.remote import serve_subprocess

    bomb = png_bomb()
    assert len(bomb) < 40_000
    hostile = [
        {"type": "reset", "data": {"seed": 0, "options": {"x": {"__gg__": "pil", "png": bomb}}}},
        {"type": "reset", "data": {"options": {"__gg__": "png", "png": bomb, "shape": [1]}}},
        {"type": "step", "data": {"action": {"__gg__": "pil", "png": bomb}}},
        {
            "type": "reset",
            "data": {"options": {"__gg__": "scalar", "dtype": "V", "value": 50_000_000}},
        },
        {
            "type": "reset",
            "data": {
                "options": {"__gg__": "ndarray", "dtype": "V50000000", "shape": [1], "data": ""}
            },
        },
    ]
    with serve_subprocess(SERVE_ENV, SERVE_SMALL, max_sessions=2) as url:
        pid = child_pid(int(url.rsplit(":", 1)[1]))
        with connect(ws_url(url), max_size=None) as ws:
            ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))  # warm up every import
            assert json.loads(ws.recv())["type"] == "observation"
            before = rss_bytes(pid)
            replies = []
            for _ in range(3):  # repeated: nothing accumulates either
                for message in hostile:
                    ws.send(json.dumps(message))
                    replies.append(ws.recv())
            after = rss_bytes(pid)
            ws.send(json.dumps({"type": "step", "data": {"action": "<answer>A</answer>"}}))
            assert json.loads(ws.recv())["type"] == "observation"  # the session goes on
    errors = [json.loads(r)["data"]["message"] for r in replies]
    assert all(json.loads(r)["type"] == "error" for r in replies)
    assert "refused before decoding" in errors[0] and "13000 x 13000" in errors[0]
    assert "refused before decoding" in errors[1]
    assert "takes a str" in errors[2]
    assert "dtype 'V' refused" in errors[3] and "dtype 'V50000000' refused" in errors[4]
    assert max(len(r) for r in replies) < 2_000  # no amplification into the reply
    assert after - before < 50 * 2**20, f"server RSS grew by {(after - before) / 2**20:.0f} MiB"


def test_mcp_session_flood_leaves_websocket_clients_served():
    requests, _ = serve_deps()
    from grounding_gym.remote import RemoteEnv, create_server_app, serve_in_thread

    app = create_server_app(SERVE_ENV, SERVE_SMALL, max_sessions=2)
    with serve_in_thread(app) as url:
        for i in range(4):
            reply = requests.post(
                f"{url}/mcp",
                json={"jsonrpc": "2.0", "id": i, "method": "openenv/session/create", "params": {}},
                timeout=30,
            ).json()
            assert "sessions over HTTP are refused" in reply["error"]["message"]
        assert requests.post(f"{url}/mcp", json={}, timeout=30).json()["jsonrpc"] == "2.0"
        clients = [RemoteEnv(url), RemoteEnv(url)]  # both slots still free
        try:
            assert all(c.reset(seed=1)[1]["turn"] == 0 for c in clients)
            # every slot taken: a stateless HTTP reset (a fresh env) is refused, not built
            response = requests.post(f"{url}/reset", json={"seed": 0}, timeout=30)
            assert response.status_code == 503 and "at capacity" in response.json()["detail"]
        finally:
            for client in clients:
                client.close()
        response = requests.post(f"{url}/reset", json={"seed": 0}, timeout=30)
        assert response.status_code == 200


def test_http_reset_with_a_bad_sample_id_or_episode_id_is_a_400():
    requests, connect = serve_deps()
    from grounding_gym.remote import create_server_app, serve_in_thread

    with serve_in_thread(create_server_app(SERVE_ENV, SERVE_SMALL, max_sessions=2)) as url:
        for body, words in [
            ({"options": {"sample_id": "nope"}}, "Unknown sample_id 'nope'"),
            ({"options": {"sample_id": True}}, "sample_id must be"),
            ({"options": {"sample_id": "synthetic-hr-0-\u00b2"}}, "Unknown sample_id"),
            ({"episode_id": {"a": 1}}, "episode_id"),  # OpenEnv's own model: 422
            ({"options": [1]}, "options must be a JSON object"),
        ]:
            response = requests.post(f"{url}/reset", json=body, timeout=30)
            assert response.status_code in (400, 422) and words in response.text, body
            assert "Traceback" not in response.text
        with connect(ws_url(url), max_size=None) as ws:  # over the websocket: our own check
            for message, want in [
                ({"type": "reset", "data": {"episode_id": {"a": 1}}}, "error"),
                ({"type": "state"}, "state"),  # the session still answers
            ]:
                ws.send(json.dumps(message))
                reply = json.loads(ws.recv(timeout=30))
                assert reply["type"] == want, reply
            ws.send(json.dumps({"type": "reset", "data": {"episode_id": {"a": 1}}}))
            assert (
                "episode_id must be a string" in json.loads(ws.recv(timeout=30))["data"]["message"]
            )


def test_idle_session_socket_is_closed_and_its_slot_freed():
    _, connect = serve_deps()
    from grounding_gym.remote import RemoteEnv, create_server_app, serve_in_thread

    app = create_server_app(SERVE_ENV, SERVE_SMALL, max_sessions=1, session_timeout_s=0.5)
    with serve_in_thread(app) as url:
        from websockets.exceptions import ConnectionClosed

        with connect(ws_url(url), max_size=None) as ws:
            ws.send(json.dumps({"type": "reset", "data": {"seed": 0}}))
            assert json.loads(ws.recv(timeout=30))["type"] == "observation"
            with pytest.raises(ConnectionClosed) as closed:
                ws.recv(timeout=30)  # idle: the server closes the socket itself
        assert closed.value.rcvd.code == 1001 and "session expired" in closed.value.rcvd.reason
        newcomer = RemoteEnv(url)  # the only slot is free again
        newcomer.close()


def test_half_open_sockets_are_closed_and_health_keeps_answering():
    requests, _ = serve_deps()
    import socket

    from grounding_gym.remote import create_server_app, serve_in_thread

    app = create_server_app(SERVE_ENV, SERVE_SMALL, max_sessions=1)
    with serve_in_thread(app, header_timeout_s=1.0) as url:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        stalled = []
        for _ in range(50):
            sock = socket.create_connection((host, int(port)), timeout=30)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")  # the head never ends
            stalled.append(sock)
        try:
            assert requests.get(f"{url}/health", timeout=30).json()["status"] == "healthy"
            for sock in stalled:
                assert sock.recv(1024) == b""  # closed by the server, well before 30 s
        finally:
            for sock in stalled:
                sock.close()


def test_token_guards_every_route_but_health_and_remote_hosts_need_one(capsys):
    requests, connect = serve_deps()
    from grounding_gym.remote import RemoteEnv, create_server_app, serve_in_thread
    from grounding_gym.remote.server import main as serve_cli

    app = create_server_app(SERVE_ENV, SERVE_SMALL, max_sessions=2, token="s3cret")
    with serve_in_thread(app) as url:
        assert requests.get(f"{url}/health", timeout=30).status_code == 200
        for method, path in [("post", "/reset"), ("post", "/mcp"), ("get", "/openapi.json")]:
            response = getattr(requests, method)(f"{url}{path}", json={}, timeout=30)
            assert response.status_code == 401, path
        assert (
            requests.get(
                f"{url}/docs", timeout=30, headers={"Authorization": "Bearer s3cret"}
            ).status_code
            == 404
        )
        with pytest.raises(ConnectionError):
            RemoteEnv(url)
        env = RemoteEnv(url, token="s3cret")
        try:
            assert env.reset(seed=0)[1]["turn"] == 0
        finally:
            env.close()
    assert serve_cli(["--env", SERVE_ENV, "--host", "0.0.0.0"]) == 2
    assert "refusing to bind '0.0.0.0' without authentication" in capsys.readouterr().err


@pytest.mark.parametrize("mode", ["simulation", "production"])
def test_openenv_validate_passes_in_both_modes(mode):
    serve_deps()
    from openenv.cli._validation import validate_running_environment

    from grounding_gym.remote import create_server_app, serve_in_thread

    with serve_in_thread(create_server_app(SERVE_ENV, SERVE_SMALL, mode=mode)) as url:
        report = validate_running_environment(url)
    assert report["passed"] and report["mode"] == mode, report["criteria"]


# ---------------------------------------------------------------------------- hostile files
def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_image_paths_outside_the_dataset_root_are_refused_unless_opted_in(tmp_path):
    from PIL import Image

    from grounding_gym.data.formats.jsonl import load_jsonl
    from grounding_gym.data.formats.records import DatasetFormatError

    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    Image.new("RGB", (64, 48), "red").save(secret)
    root = tmp_path / "bench"
    (root / "imgs").mkdir(parents=True)
    Image.new("RGB", (64, 48), "blue").save(root / "imgs" / "ok.png")
    (root / "imgs" / "link.png").symlink_to(secret)  # looks inside, points out
    row = {"question": "q?", "answer": "a"}
    for escape in (str(secret), "../private/secret.png", "imgs/link.png"):
        file = write_jsonl(root / "data.jsonl", [{**row, "image": escape}])
        with pytest.raises(DatasetFormatError, match="outside the dataset root") as err:
            load_jsonl(file)
        assert "data.jsonl, line 1" in str(err.value) and "allow_outside_root=True" in str(
            err.value
        )
        (sample,) = load_jsonl(file, allow_outside_root=True)  # the user's explicit opt-in
        assert Path(sample.image).resolve() == secret.resolve()
    (sample,) = load_jsonl(write_jsonl(root / "data.jsonl", [{**row, "image": "imgs/ok.png"}]))
    assert Path(sample.image).name == "ok.png"


def test_extreme_aspect_image_gives_a_view_inside_the_observation_space(tmp_path):
    from PIL import Image

    from grounding_gym.data.formats.jsonl import load_jsonl
    from grounding_gym.envs.grounded_vqa import GroundedVQAEnv

    Image.new("RGB", (1, 100_000), "white").save(tmp_path / "strip.png")
    rows = [{"image": "strip.png", "question": "q?", "answer": "a"}]
    samples = load_jsonl(write_jsonl(tmp_path / "d.jsonl", rows))
    env = GroundedVQAEnv(samples, max_pixels=1_003_520)
    obs, info = env.reset(seed=0)
    h, w = obs["image"].shape[:2]
    assert w * h <= 1_003_520 and obs in env.observation_space, (w, h)
    obs, *_ = env.step("<crop>[0, 0, 28, 30000]</crop>")
    assert obs in env.observation_space


def test_questions_are_bounded_at_load_and_in_the_dialogue(tmp_path):
    from PIL import Image

    from grounding_gym.data.formats.jsonl import MAX_QUESTION_CHARS, load_jsonl
    from grounding_gym.data.formats.records import DatasetFormatError
    from grounding_gym.envs.grounded_vqa import GroundedVQAEnv

    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    long = {"image": "a.png", "question": "x" * 100_000, "answer": "a"}
    with pytest.raises(DatasetFormatError, match=r"d.jsonl, line 2: question of 100,000 chars"):
        load_jsonl(write_jsonl(tmp_path / "d.jsonl", [{**long, "question": "ok?"}, long]))
    (sample,) = load_jsonl(write_jsonl(tmp_path / "d.jsonl", [{**long, "question": "ok?"}]))
    import dataclasses

    env = GroundedVQAEnv(
        [dataclasses.replace(sample, question="y" * (4 * MAX_QUESTION_CHARS + 70_000))]
    )
    obs, _ = env.reset(seed=0)  # a hand-built sample: cut with a note, not out of the space
    assert obs in env.observation_space and "chars cut to 65,536" in obs["dialogue"]


def test_two_evaluations_into_one_out_folder_the_second_fails_at_once(tmp_path, capsys):
    import multiprocessing

    from grounding_gym.atomic import FolderLockedError, folder_lock
    from grounding_gym.eval import evaluate

    out = tmp_path / "run"
    ready, release = multiprocessing.Event(), multiprocessing.Event()
    holder = multiprocessing.get_context("fork").Process(
        target=_hold_lock, args=(str(out), ready, release)
    )
    holder.start()
    try:
        assert ready.wait(60)
        with pytest.raises(
            FolderLockedError, match=rf"{out} is in use by an evaluation .*pid {holder.pid}"
        ):
            evaluate(
                "no-crop",
                n=2,
                out_dir=out,
                dataset_kwargs={"num_samples": 2, "image_size": (320, 480)},
                progress=False,
            )
        assert not (out / "episodes.jsonl").exists()  # it ran no episode
        from grounding_gym.cli import main

        argv = ["eval", "--agent", "no-crop", "-n", "2", "--out", str(out), "--no-progress"]
        assert main(argv) == 2  # the CLI: one line, exit 2
        assert "is in use by an evaluation" in capsys.readouterr().err
    finally:
        release.set()
        holder.join(60)
    with folder_lock(out, "an evaluation"):  # released when its holder ended
        pass


def _hold_lock(out: str, ready, release) -> None:
    from grounding_gym.atomic import folder_lock

    with folder_lock(out, "an evaluation"):
        ready.set()
        release.wait(60)


# ---------------------------------------------------------------------------- action parsing
ADVERSARIAL_UNITS = {
    "<crop>[": "_CROP_OPEN",
    "<box>": "_CROP_OPEN",
    "<crop>[1, 2, 3, ": "_CROP_OPEN",
    "<answer>": "_ANSWER_OPEN",
    "< answer >x": "_ANSWER_OPEN",
    "<think>": "_THINK_OPEN",
}
"""Opening tags repeated without a close (and which tag regex they stress): what made the
old parser quadratic (2.6 s for 32,000 chars of `<crop>[`)."""


def scanned_chars(open_pattern: str, body: str, text: str) -> int:
    """Characters a tag regex's body can cover, summed over every match attempt (one per
    opening tag): the regex engine's scanning work, counted instead of timed."""
    import re

    opens = re.compile(open_pattern, re.IGNORECASE | re.DOTALL)
    run = re.compile(body.replace("*?", "*"), re.IGNORECASE | re.DOTALL)  # as far as it can go
    return sum(run.match(text, m.end()).end() - m.end() for m in opens.finditer(text))


@pytest.mark.parametrize("unit", list(ADVERSARIAL_UNITS))
def test_action_parsing_work_grows_linearly(unit):
    from grounding_gym import actions
    from grounding_gym.actions import MAX_ACTION_CHARS_LIMIT, parse_action

    open_tag = getattr(actions, ADVERSARIAL_UNITS[unit])
    for n in (4_096, MAX_ACTION_CHARS_LIMIT):
        text = (unit * (n // len(unit) + 1))[:n]
        assert scanned_chars(open_tag, actions._body_until(open_tag), text) <= n
        assert not parse_action(text, max_action_chars=n).format_ok
    text = (unit * (4_096 // len(unit) + 1))[:4_096]
    assert scanned_chars(open_tag, r"(?:.)*?", text) > 50 * 4_096  # the old `.*?`: quadratic
    with pytest.raises(ValueError, match="max_action_chars must be in 1..65536"):
        parse_action("x", max_action_chars=MAX_ACTION_CHARS_LIMIT + 1)


def test_codec_refuses_deep_nesting_and_bad_shapes():
    import base64

    from grounding_gym.remote.codec import MAX_DEPTH, ImageCodec, WireDecodeError

    codec = ImageCodec()
    deep: object = 1
    for _ in range(MAX_DEPTH + 5):
        deep = [deep]
    with pytest.raises(WireDecodeError, match=f"nested deeper than {MAX_DEPTH}"):
        codec.from_json(deep)
    data = base64.b64encode(bytes(8)).decode()
    for bad, words in [
        (
            {"__gg__": "ndarray", "dtype": "<f8", "shape": [1000, 1000], "data": data},
            "does not fit",
        ),
        ({"__gg__": "ndarray", "dtype": "<f8", "shape": [-1], "data": data}, "shape must be"),
        ({"__gg__": "ndarray", "dtype": "O", "shape": [1], "data": data}, "dtype 'O' refused"),
        ({"__gg__": "scalar", "dtype": "<i8", "value": {"x": 1}}, "must be a number"),
        ({"__gg__": "scalar", "dtype": "int8", "value": 10**6}, "malformed"),
        ({"__gg__": "dict", "items": [[[1], 2]]}, "hashable"),
        ({"__gg__": "x" * 10_000}, "unknown wire tag"),
    ]:
        with pytest.raises(WireDecodeError, match=words) as err:
            codec.from_json(bad)
        assert len(str(err.value)) < 400
    assert (
        codec.from_json({"__gg__": "ndarray", "dtype": "<f8", "shape": [1], "data": data})[0] == 0
    )


def test_hostile_rows_get_errors_naming_file_and_line(tmp_path):
    from PIL import Image

    from grounding_gym.data import make_dataset
    from grounding_gym.data.formats.jsonl import load_jsonl
    from grounding_gym.data.formats.records import DatasetFormatError
    from grounding_gym.eval.records import read_records

    Image.new("RGB", (64, 48)).save(tmp_path / "a.png")
    row = {"id": "q1", "image": "a.png", "question": "q?", "answer": "a"}
    with pytest.raises(DatasetFormatError, match=r"line 2: duplicate sample id 'q1' \(first"):
        load_jsonl(write_jsonl(tmp_path / "d.jsonl", [row, row]))
    deep = "[" * 100_000 + "]" * 100_000
    (tmp_path / "deep.jsonl").write_text(json.dumps(row) + "\n" + deep + "\n")
    with pytest.raises(DatasetFormatError, match="deep.jsonl, line 2: JSON nested too deeply"):
        load_jsonl(tmp_path / "deep.jsonl")
    episodes = tmp_path / "episodes.jsonl"
    episodes.write_text('{"episode": 0}\n{"episode": "one"}\n{"episode": 2}\n')
    with pytest.raises(ValueError, match=r"episodes.jsonl: line 2: 'episode' must be an integer"):
        read_records(episodes)
    episodes.write_text('{"episode": 0}\n' + deep + "\n" + '{"episode": 2}\n')
    with pytest.raises(ValueError, match=r"line 2 is not valid JSON \(nested too deeply\)"):
        read_records(episodes)
    synthetic = make_dataset("synthetic-hr", num_samples=4, image_size=(320, 480))
    prefix = synthetic[0].id.rsplit("-", 1)[0]
    assert synthetic.index_of(f"{prefix}-\u00b2") is None  # "²".isdigit() is True
    assert synthetic.index_of(f"{prefix}-1") == 1


def test_lru_byte_budget_drops_the_oldest_and_skips_values_over_budget():
    from grounding_gym.lru import LRU

    cache = LRU(8, max_bytes=10, size=len)
    for key in "abc":
        cache.put(key, key * 4)  # 4 bytes each: the third pushes out the first
    assert cache.peek("a") is None and cache.peek("b") == "bbbb" and cache.nbytes == 8
    cache.put("d", "d" * 11)  # larger than the whole budget: not kept, nothing evicted
    assert cache.peek("d") is None and len(cache) == 2
    cache.clear()
    assert len(cache) == 0 and cache.nbytes == 0
