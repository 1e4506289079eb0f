"""`grounding-gym serve` and `RemoteEnv` (extra `serve`): lossless wire codec, check_env over the
wire, seeded episodes equal to the local env's, session isolation, clear errors for bad
requests with the server still serving, a SIGKILLed client leaving the others served.

Servers run in-process on a free loopback port (`serve_in_thread`), torn down by the fixtures.
"""

from __future__ import annotations

import asyncio
import json
import math
import signal
import subprocess
import sys
import textwrap
import time
import warnings
from concurrent.futures import ThreadPoolExecutor

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env, data_equivalence
from PIL import Image

pytest.importorskip("openenv")  # the `serve` extra (requests and websockets come with it)
import requests  # noqa: E402
from websockets.asyncio.client import connect  # noqa: E402

import grounding_gym  # noqa: E402,F401  (registers the ids)
from grounding_gym.envs import ENV_SPECS  # noqa: E402
from grounding_gym.remote import (  # noqa: E402
    RemoteEnv,
    RemoteEnvError,
    create_server_app,
    serve_in_thread,
    serve_subprocess,
)
from grounding_gym.remote.codec import ImageCodec, space_from_json, space_to_json  # noqa: E402
from grounding_gym.remote.server import main as serve_cli  # noqa: E402
from grounding_gym.spaces import ImageSpace, UnicodeText  # noqa: E402

ENV_ID = "GroundedVQA-HR-v0"
SMALL = {"dataset_kwargs": {"num_samples": 16, "image_size": (320, 640)}}
MAX_MESSAGE_BYTES = 64 * 1024
SCRIPTS = [
    ["<crop>[10, 20, 300, 260]</crop>", "<answer>A</answer>"],
    ["not an action", "<box>[0, 0, 60, 40]</box>", "<answer>(C)</answer>"],
    ["<crop>[100, 100, 101, 101]</crop>", "<crop>[5, 5, 200, 90]</crop>", "<answer>B</answer>"],
    ['<tool_call>{"name": "zoom", "arguments": {"bbox_2d": [1, 2, 250, 300]}}', "\\boxed{D}"],
    ["<crop>[0, 0, 400, 900]</crop>"] * 5,  # truncates after max_turns
]
"""Scripted actions per episode: crops, invalid text, a degenerate box, a tool call, truncation."""


@pytest.fixture(scope="module")
def server_url():
    app = create_server_app(ENV_ID, SMALL, max_sessions=4, max_message_bytes=MAX_MESSAGE_BYTES)
    with serve_in_thread(app, max_message_bytes=MAX_MESSAGE_BYTES) as url:
        yield url


@pytest.fixture
def remote(server_url):
    env = RemoteEnv(server_url)
    yield env
    env.close()


def assert_steps_equal(remote_result: tuple, local_result: tuple) -> None:
    """Every element of a step's (or a reset's) result equal, images to the pixel
    (data_equivalence also checks types)."""
    names = (
        ("obs", "reward", "terminated", "truncated", "info")
        if len(local_result) == 5
        else ("obs", "info")
    )
    for name, got, want in zip(names, remote_result, local_result, strict=True):
        assert data_equivalence(got, want), f"{name} differs: {got!r:.300} != {want!r:.300}"
    assert np.array_equal(remote_result[0]["image"], local_result[0]["image"])


def run_episode(env: gym.Env, seed: int, script: list[str]) -> list[tuple]:
    """`[reset result, step results...]` of one scripted episode."""
    results = [env.reset(seed=seed)]
    for action in script:
        results.append(env.step(action))
        if results[-1][2] or results[-1][3]:
            break
    return results


# ---------------------------------------------------------------------------- codec
def test_codec_round_trips_every_wire_type_through_strict_json():
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    value = {
        "tuple": (1, 2.5, None, "x"),
        "nested": [(1, 2), {"k": (3.0,)}],
        "nan": math.nan,
        "inf": -math.inf,
        "rgb": rgb,
        "gray": rgb[..., 0].copy(),
        "one_channel": rgb[..., :1].copy(),
        "rgba": rng.integers(0, 256, (2, 3, 4), dtype=np.uint8),
        "float32": rng.normal(size=(3, 2)).astype(np.float32),
        "int64": np.arange(6).reshape(2, 3),
        "empty": np.zeros((0, 3), np.uint8),
        "np_scalars": [np.float32(0.1), np.float64(0.3), np.int16(-4), np.bool_(True)],
        "non_str_keys": {1: "a", (2, 3): [1]},
        "tag_key": {"__gg__": "not a tag"},
        "pil_rgb": Image.fromarray(rgb),
        "pil_l": Image.fromarray(rgb[..., 0].copy()),
        "pil_p": Image.fromarray(rgb).convert("P"),
        "pil_1": Image.new("1", (4, 3), 1),
        "pil_i16": Image.fromarray(rng.integers(0, 65536, (3, 4), dtype=np.uint16)),
    }
    codec = ImageCodec()
    wire = json.loads(json.dumps(codec.to_json(value), allow_nan=False))
    back = codec.from_json(wire)
    nan_free = {k: v for k, v in value.items() if k != "nan"}
    assert data_equivalence({k: back[k] for k in nan_free}, nan_free)  # also checks every type
    assert math.isnan(back["nan"]) and back["inf"] == -math.inf
    assert all(
        back[k] == value[k] and type(back[k]) is Image.Image for k in value if k.startswith("pil_")
    )
    assert wire["rgb"]["__gg__"] == "png" and wire["float32"]["__gg__"] == "ndarray"
    back["rgb"][0, 0, 0] ^= 1  # decoded arrays are writable copies
    assert not np.array_equal(codec.from_json(wire)["rgb"], back["rgb"])


def test_codec_names_what_it_cannot_encode():
    with pytest.raises(TypeError, match=r"info\.extra\[1\]: cannot encode object"):
        ImageCodec().to_json({"extra": [1, object()]}, "info")
    with pytest.raises(TypeError, match="CMYK"):
        ImageCodec().to_json(Image.new("CMYK", (2, 2)))


@pytest.mark.parametrize(
    "space",
    [
        spaces.Dict({"image": ImageSpace(1000, min_side=2), "dialogue": UnicodeText(99)}),
        spaces.Text(40, min_length=1, charset="abc<>[]"),
        spaces.Tuple([spaces.Discrete(5, start=-2), spaces.MultiBinary([2, 3])]),
        spaces.Box(low=np.zeros((2, 3), np.float32), high=np.full((2, 3), np.inf, np.float32)),
        spaces.Box(0, 255, shape=(4, 4, 3), dtype=np.uint8),
        spaces.MultiDiscrete([3, 4], start=[1, 0]),
    ],
    ids=lambda s: type(s).__name__,
)
def test_spaces_round_trip(space):
    rebuilt = space_from_json(json.loads(json.dumps(space_to_json(space))))
    assert rebuilt == space and type(rebuilt) is type(space)


def test_unsupported_space_is_refused_with_its_name():
    with pytest.raises(TypeError, match=r"action_space: cannot describe Graph"):
        space_to_json(spaces.Graph(spaces.Discrete(2), None), "action_space")


# ---------------------------------------------------------------------------- RemoteEnv equals the
# local env
def test_remote_env_passes_check_env_and_has_the_served_spaces(remote):
    local = gym.make(ENV_ID, **SMALL)
    assert remote.env_id == ENV_ID and remote.max_message_bytes == MAX_MESSAGE_BYTES
    assert (
        remote.observation_space == local.observation_space
        and remote.action_space == local.action_space
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any checker warning fails
        check_env(remote, skip_render_check=True)  # RemoteEnv does not render


@pytest.mark.slow
def test_ten_seeded_episodes_equal_the_local_env(remote):
    local = gym.make(ENV_ID, **SMALL)
    for seed in range(10):
        script = SCRIPTS[seed % len(SCRIPTS)]
        remote_results, local_results = (
            run_episode(remote, seed, script),
            run_episode(local, seed, script),
        )
        assert len(remote_results) == len(local_results) > 1
        assert_steps_equal(remote_results[0], local_results[0])  # reset: (obs, info)
        for got, want in zip(remote_results[1:], local_results[1:], strict=True):
            assert_steps_equal(got, want)
    assert local_results[-1][3] and not local_results[-1][2]  # the last script truncates
    assert isinstance(local_results[1][4]["messages"][1]["content"][0]["image"], Image.Image)


@pytest.mark.parametrize("env_id", sorted(set(ENV_SPECS) - {ENV_ID}))
def test_every_registered_id_is_served_losslessly(env_id):
    with serve_in_thread(create_server_app(env_id, SMALL, max_sessions=1)) as url:
        remote = RemoteEnv(url)
        try:
            local = gym.make(env_id, **SMALL)
            script = ["<crop>[4, 4, 200, 150]</crop>", "<answer>the red square, option B</answer>"]
            for got, want in zip(
                run_episode(remote, 7, script), run_episode(local, 7, script), strict=True
            ):
                for g, w in zip(got, want, strict=True):
                    assert data_equivalence(g, w)
        finally:
            remote.close()


def test_concurrent_sessions_do_not_interfere(server_url):
    def episode(seed: int) -> bool:
        env = RemoteEnv(server_url)
        try:
            local = gym.make(ENV_ID, **SMALL)
            script = SCRIPTS[seed % len(SCRIPTS)]
            got, want = run_episode(env, seed, script), run_episode(local, seed, script)
            return all(data_equivalence(g, w) for g, w in zip(got, want, strict=True))
        finally:
            env.close()

    with ThreadPoolExecutor(3) as pool:
        assert list(pool.map(episode, [11, 12, 13])) == [True, True, True]
    # interleaved step by step in one thread: each session keeps its own episode
    envs, locals_ = (
        [RemoteEnv(server_url) for _ in range(2)],
        [gym.make(ENV_ID, **SMALL) for _ in range(2)],
    )
    try:
        for seed, (env, local) in enumerate(zip(envs, locals_, strict=True)):
            assert data_equivalence(env.reset(seed=seed), local.reset(seed=seed))
        for action in SCRIPTS[2]:
            for env, local in zip(envs, locals_, strict=True):
                assert_steps_equal(env.step(action), local.step(action))
    finally:
        for env in envs:
            env.close()


# ---------------------------------------------------------------------------- bad requests
async def ws_exchange(url: str, messages: list[str]) -> list[dict]:
    """Send each raw text message on one /ws session and collect the replies."""
    async with connect(url.replace("http://", "ws://") + "/ws", max_size=None) as ws:
        replies = []
        for message in messages:
            await ws.send(message)
            replies.append(json.loads(await ws.recv()))
        return replies


def test_malformed_requests_get_clear_errors_and_the_session_goes_on(server_url, remote):
    replies = asyncio.run(
        ws_exchange(
            server_url,
            [
                "{not json",
                json.dumps({"type": "jump"}),
                json.dumps({"type": "step", "data": {"text": "x"}}),
                json.dumps(
                    {"type": "step", "data": {"action": "<answer>A</answer>"}}
                ),  # before reset
                json.dumps({"type": "reset", "data": {"seed": 1, "colour": "red"}}),
                json.dumps({"type": "reset", "data": {"seed": 1}}),
                json.dumps({"type": "step", "data": {"action": {"__gg__": "warp"}}}),
                json.dumps({"type": "step", "data": {"action": "<answer>A</answer>"}}),
            ],
        )
    )
    codes = [r["data"].get("code") if r["type"] == "error" else r["type"] for r in replies]
    assert codes == [
        "INVALID_JSON",
        "UNKNOWN_TYPE",
        "VALIDATION_ERROR",
        "EXECUTION_ERROR",
        "EXECUTION_ERROR",
        "observation",
        "EXECUTION_ERROR",
        "observation",
    ]
    assert "step before reset" in replies[3]["data"]["message"]
    assert "unknown fields ['colour']" in replies[4]["data"]["message"]
    assert (
        "malformed action" in replies[6]["data"]["message"] and replies[7]["data"]["done"] is True
    )

    remote.reset(seed=2)
    with pytest.raises(RemoteEnvError, match="malformed action.*takes a str, got int") as err:
        remote.step(5)
    assert err.value.code == "EXECUTION_ERROR"
    obs, reward, terminated, truncated, info = remote.step(
        "<answer>A</answer>"
    )  # the episode goes on
    assert terminated and info["action_kind"] == "answer"
    with pytest.raises(RemoteEnvError, match="finished episode; call reset"):
        remote.step("<answer>A</answer>")


def test_unknown_session_over_stateless_http_gets_400(server_url):
    response = requests.post(
        f"{server_url}/step", json={"action": {"action": "<answer>A</answer>"}}, timeout=30
    )
    assert response.status_code == 400 and "no episode" in response.json()["detail"]
    assert "/ws" in response.json()["detail"]
    assert requests.get(f"{server_url}/health", timeout=30).json()["status"] == "healthy"


def test_oversized_payloads_are_refused_and_the_server_keeps_serving(server_url, remote):
    big = "x" * MAX_MESSAGE_BYTES
    remote.reset(seed=3)
    with pytest.raises(
        ValueError, match=f"exceeds the server's limit of {MAX_MESSAGE_BYTES} bytes"
    ):
        remote.step(big)  # refused before sending: the session goes on
    assert remote.step("<answer>B</answer>")[2]

    async def raw_oversized() -> tuple[int | None, str]:
        async with connect(server_url.replace("http://", "ws://") + "/ws", max_size=None) as ws:
            await ws.send(json.dumps({"type": "step", "data": {"action": big}}))
            await ws.wait_closed()
            return ws.close_code, ws.close_reason

    assert asyncio.run(raw_oversized())[0] == 1009  # message too big
    response = requests.post(
        f"{server_url}/reset",
        data=json.dumps({"seed": 1, "pad": big}),
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert response.status_code == 413 and "exceeds the server's limit" in response.json()["detail"]
    other = RemoteEnv(server_url)
    try:
        assert other.reset(seed=0)[0]["image"].dtype == np.uint8
    finally:
        other.close()


def test_capacity_is_a_clear_error():
    with serve_in_thread(create_server_app(ENV_ID, SMALL, max_sessions=1)) as url:
        first = RemoteEnv(url)
        try:
            with pytest.raises(RemoteEnvError, match="at capacity: 1/1") as err:
                RemoteEnv(url)
            assert err.value.code == "CAPACITY_REACHED"
            assert first.reset(seed=0)[1]["turn"] == 0
        finally:
            first.close()


KILLED_CLIENT = textwrap.dedent("""
    import json, sys
    from websockets.sync.client import connect
    ws = connect(sys.argv[1].replace("http://", "ws://") + "/ws", max_size=None)
    for message in ({"type": "reset", "data": {"seed": 5}},
                    {"type": "step", "data": {"action": "<crop>[0, 0, 200, 200]</crop>"}}):
        ws.send(json.dumps(message))
        assert json.loads(ws.recv())["type"] == "observation"
    print("mid-episode", flush=True)
    sys.stdin.read()  # wait to be killed
""")
"""A raw websocket client (it imports only `websockets`, so it starts fast) that stops
mid-episode."""


def test_client_killed_mid_episode_leaves_others_served():
    with serve_in_thread(create_server_app(ENV_ID, SMALL, max_sessions=2)) as url:
        survivor, local = RemoteEnv(url), gym.make(ENV_ID, **SMALL)
        victim = subprocess.Popen(
            [sys.executable, "-c", KILLED_CLIENT, url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert data_equivalence(survivor.reset(seed=9), local.reset(seed=9))
            assert victim.stdout.readline().strip() == "mid-episode"  # 2/2 sessions in use
            victim.send_signal(signal.SIGKILL)
            victim.wait(timeout=30)
            assert_steps_equal(survivor.step(SCRIPTS[0][0]), local.step(SCRIPTS[0][0]))
            newcomer = connect_when_a_slot_frees(url)  # the killed session's slot is released
            try:
                assert newcomer.reset(seed=1)[1]["turn"] == 0
            finally:
                newcomer.close()
            assert_steps_equal(survivor.step(SCRIPTS[0][1]), local.step(SCRIPTS[0][1]))
        finally:
            victim.kill()
            survivor.close()


def connect_when_a_slot_frees(url: str, deadline_s: float = 30.0) -> RemoteEnv:
    """A new `RemoteEnv`, retrying while the server still counts a dropped session (the server
    notices a killed client's closed socket asynchronously)."""
    end = time.monotonic() + deadline_s
    while True:
        try:
            return RemoteEnv(url)
        except RemoteEnvError as err:
            if err.code != "CAPACITY_REACHED" or time.monotonic() > end:
                raise
            time.sleep(0.05)


@pytest.mark.slow
def test_idle_session_expires_with_a_clear_error():
    # OpenEnv's reaper checks every max(timeout / 4, 5) s: this waits about 5 s
    with serve_in_thread(
        create_server_app(ENV_ID, SMALL, max_sessions=1, session_timeout_s=0.5)
    ) as url:
        idle = RemoteEnv(url)
        try:
            idle.reset(seed=0)
            connect_when_a_slot_frees(url).close()  # free once the reaper closed the idle session
            with pytest.raises(RemoteEnvError, match=r"session expired \(idle for more than 0.5 s"):
                idle.step("<answer>A</answer>")
        finally:
            idle.close()


# ---------------------------------------------------------------------------- CLI and the missing
# extra
def test_serve_cli_rejects_bad_arguments(capsys):
    assert serve_cli(["--env", "GroundedVQA-HR-v9"]) == 2
    assert "`v9` for environment `GroundedVQA-HR` doesn't exist" in capsys.readouterr().err
    assert serve_cli(["--env", ENV_ID, "--env-kwargs", "[1]"]) == 2
    assert "must be a JSON object" in capsys.readouterr().err
    assert serve_cli(["--env", ENV_ID, "--max-sessions", "0"]) == 2


@pytest.mark.slow
def test_serve_cli_serves_until_terminated():
    """`grounding-gym serve` as a child process (`serve_subprocess`): serves, then stops cleanly
    on SIGTERM (the helper raises otherwise)."""
    with serve_subprocess(ENV_ID, SMALL, max_sessions=2) as url:
        env = RemoteEnv(url)
        try:
            assert data_equivalence(env.reset(seed=4), gym.make(ENV_ID, **SMALL).reset(seed=4))
        finally:
            env.close()


@pytest.mark.slow
def test_without_the_serve_extra_the_package_imports_and_says_what_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["openenv"] = None  # any `import openenv...` now raises ImportError
        import grounding_gym.remote
        from grounding_gym.remote.codec import ImageCodec
        assert ImageCodec().from_json(ImageCodec().to_json((1, float("nan"))))[0] == 1
        try:
            grounding_gym.remote.RemoteEnv
        except ImportError as err:
            assert "pip install 'grounding-gym[serve]'" in str(err), err
        else:
            raise AssertionError("RemoteEnv imported without openenv")
        assert grounding_gym.remote.serve_main(["--env", "GroundedVQA-HR-v0"]) == 2
        print("ok")
    """)
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok" and "serve` extra" in result.stderr
