"""`grounding-gym eval | compare | render | list`: help, smoke runs, and a SIGKILL-then-resume
run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from grounding_gym.cli import main
from grounding_gym.eval import read_records
from tests.grounding_gym.eval.test_eval import episode_records

ROOT = Path(__file__).resolve().parents[3]
SMALL = [
    "--image-size",
    "768",
    "--dataset-kwargs",
    '{"num_samples": 40, "target_rel_area": [5e-4, 5e-3]}',
    "--env-kwargs",
    '{"max_pixels": 65536}',
    "--no-progress",
]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("command", ["eval", "compare", "render", "list"])
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    assert f"grounding-gym {command}" in capsys.readouterr().out


def test_list_shows_envs_datasets_and_agents(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for text in ("GroundedVQA-HR-v0", "synthetic-hr", "oracle-crop", "sliding-window", "agents:"):
        assert text in out
    assert main(["list", "agents", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"no-crop", "sb3-ppo"} <= {a["name"] for a in listed["agents"]}
    with pytest.raises(SystemExit):
        main(["list", "agnets"])


@pytest.mark.slow
def test_eval_compare_render_smoke(tmp_path, capsys):
    for agent in ("oracle-crop", "no-crop"):
        assert (
            main(["eval", "--agent", agent, "-n", "4", "--out", str(tmp_path / agent), *SMALL]) == 0
        )
    out = capsys.readouterr().out
    assert "| bin | small |" in out and "results:" in out
    for name in ("summary.json", "summary.csv", "summary.md", "acc_vs_area.png", "iou_hist.png"):
        assert (tmp_path / "oracle-crop" / name).is_file(), name
    assert (
        main(
            [
                "compare",
                str(tmp_path / "oracle-crop"),
                str(tmp_path / "no-crop"),
                "--metric",
                "accuracy",
                "--metric",
                "miou",
                "--plot",
                str(tmp_path / "cmp.png"),
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "oracle-crop (ref)" in out and "Δ" in out and "miou" in out
    assert (tmp_path / "cmp.png").read_bytes()[:8] == PNG_MAGIC
    assert (
        main(
            [
                "eval",
                "--agent",
                "random-crop",
                "--like",
                str(tmp_path / "no-crop"),
                "--no-progress",
                "--out",
                str(tmp_path / "like"),
            ]
        )
        == 0
    )
    like = json.loads((tmp_path / "like" / "summary.json").read_text())["meta"]
    base = json.loads((tmp_path / "no-crop" / "summary.json").read_text())["meta"]
    assert (
        like["n"] == 4
        and like["env_kwargs"] == base["env_kwargs"]
        and like["agent"] == "random-crop"
    )
    assert (
        main(
            [
                "eval",
                "--agent",
                "no-crop",
                "--like",
                str(tmp_path / "no-crop"),
                "--image-size",
                "64",
            ]
        )
        == 2
    )
    assert (
        main(
            [
                "render",
                "--run",
                str(tmp_path / "oracle-crop"),
                "--episode",
                "1",
                "--out",
                str(tmp_path / "replay.png"),
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "render",
                "--agent",
                "sliding-window",
                "--episode",
                "2",
                "--out",
                str(tmp_path / "sw.png"),
                *[a for a in SMALL if a != "--no-progress"],
            ]
        )
        == 0
    )
    for png in ("replay.png", "sw.png"):
        assert (tmp_path / png).read_bytes()[:8] == PNG_MAGIC


def test_compare_with_shipped_baselines(tmp_path, capsys):
    root = tmp_path / "baselines" / "toy"
    for name, acc in (("base-a", 0.25), ("base-b", 0.75)):
        (root / name).mkdir(parents=True)
        summary = {
            "meta": {"agent": name, "benchmark": "toy"},
            "overall": {"n": 4, "accuracy": acc},
            "per_bin": {"small": {"n": 4, "accuracy": acc}},
            "per_category": {},
        }
        (root / name / "summary.json").write_text(json.dumps(summary))
    mine = {
        "meta": {"agent": "mine", "benchmark": "toy"},
        "overall": {"n": 4, "accuracy": 0.5},
        "per_bin": {"small": {"n": 4, "accuracy": 0.5}},
        "per_category": {},
    }
    (tmp_path / "mine.json").write_text(json.dumps(mine))
    argv = [
        "compare",
        str(tmp_path / "mine.json"),
        "--baselines",
        "--baselines-dir",
        str(tmp_path / "baselines"),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "mine (ref)" in out and "-25.0" in out and "+25.0" in out
    assert (
        main(["compare", "--baselines", "nope", "--baselines-dir", str(tmp_path / "baselines")])
        == 2
    )


def test_shipped_baselines_compare_out_of_the_box(capsys):
    if not (ROOT / "baselines" / "synthetic-hr").is_dir():
        pytest.skip("no shipped baselines in this checkout")
    assert main(["compare", "--baselines", "synthetic-hr"]) == 0
    assert "oracle-crop" in capsys.readouterr().out


@pytest.mark.parametrize(
    "benchmark",
    ["synthetic-hr", "synthetic-hr-small", "synthetic-hr-demo", "synthetic-hr-counterfactual"],
)
def test_shipped_baselines_still_match_the_generator(benchmark):
    folder = ROOT / "baselines" / benchmark
    if not folder.is_dir():
        pytest.skip(f"no shipped {benchmark} baselines in this checkout")
    from grounding_gym.eval.harness import make_eval_env
    from grounding_gym.eval.records import view_sha1

    for run in sorted(p for p in folder.iterdir() if (p / "episodes.jsonl").is_file())[:1]:
        config = json.loads((run / "config.json").read_text())
        env, _, _ = make_eval_env(config["env_id"], env_kwargs=config["env_kwargs"])
        records = read_records(run / "episodes.jsonl", repair=False)
        small = min(records[:10], key=lambda r: r["image_size"][0] * r["image_size"][1])
        obs, _ = env.reset(seed=small["seed"], options={"sample_id": small["sample_index"]})
        assert view_sha1(obs["image"]) == small["first_view_sha1"], (
            f"{run}: the first view of episode {small['episode']} has other pixels than when the "
            "baselines were run (synthetic generator changed?); regenerate them "
            "(baselines/README.md)"
        )
        for record in records[:5]:
            sample = env.unwrapped.dataset[record["sample_index"]]
            shipped = (record["sample_id"], record["gt_answer"], record["gt_boxes"])
            current = (sample.id, sample.answer, [list(b.as_tuple()) for b in sample.gt_boxes])
            assert shipped == current, (
                f"{run}: episode {record['episode']} no longer matches the dataset generator; "
                "regenerate the baselines (baselines/README.md)"
            )


@pytest.mark.slow
def test_sigkill_mid_evaluation_then_rerun_completes_every_episode_once(tmp_path):
    out = tmp_path / "run"
    n = 40
    cmd = [
        sys.executable,
        "-m",
        "grounding_gym.cli",
        "eval",
        "--agent",
        "sliding-window",
        "-n",
        str(n),
        "--out",
        str(out),
        "--no-plots",
        *SMALL,
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    results = out / "episodes.jsonl"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if results.exists() and results.read_bytes().count(b"\n") >= 4:
            break
        time.sleep(0.02)
    assert proc.poll() is None, (
        f"finished before it could be killed: {proc.stderr.read().decode()[-2000:]}"
    )
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stderr.close()
    done_before = results.read_bytes().count(b"\n")
    assert 4 <= done_before < n
    with open(results, "ab") as handle:  # and a torn write, as if killed mid-line
        handle.write(b'{"episode": 39, "sample_id": "synth')
    rerun = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    lines = results.read_text().splitlines()
    episodes = [json.loads(line)["episode"] for line in lines]
    assert len(lines) == n and sorted(episodes) == list(range(n))
    assert json.loads((out / "summary.json").read_text())["overall"]["n"] == n
    assert len(read_records(results)) == n
    # Record by record (timings aside), the resumed run is the uninterrupted one.
    straight = tmp_path / "straight"
    assert (
        main([*cmd[3 : cmd.index("--out")], "--out", str(straight), *cmd[cmd.index("--out") + 2 :]])
        == 0
    )
    for want, have in zip(episode_records(straight), episode_records(out), strict=True):
        assert have == want, f"episode {want['episode']} differs after the SIGKILL and rerun"


def test_grounding_gym_eval_imports_neither_torch_nor_agents():
    code = (
        "import sys, grounding_gym.eval, grounding_gym.wrappers, grounding_gym.catalog, "
        "grounding_gym.eval.cli;"
        "assert 'torch' not in sys.modules, 'torch'; assert 'agents' not in sys.modules, 'agents';"
        "from grounding_gym.eval import evaluate;"
        "evaluate('no-crop', n=1, progress=False, dataset_kwargs={'num_samples': 2, 'image_size': "
        "256});"
        "assert 'torch' not in sys.modules, 'torch after a heuristic eval'"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize(
    "like", ["synthetic-hr-small/no-crop", "baselines/synthetic-hr-small/no-crop"]
)
def test_like_finds_shipped_baselines_from_any_folder(like, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)  # outside the repository
    argv = ["eval", "--agent", "fixed-answer", "--like", like, "-n", "3", "--label", "mine"]
    assert main([*argv, "--out", "run", "--no-progress", "--no-plots"]) == 0
    meta = json.loads((tmp_path / "run" / "summary.json").read_text())["meta"]
    assert meta["bin_edges"] == [0.01, 0.03] and meta["env_kwargs"]["max_turns"] == 3
    assert (
        meta["bin_edges_source"].startswith("from --like ")
        and "given" not in meta["bin_edges_source"]
    )
    assert (tmp_path / "run" / "summary.md").read_text().startswith("# mine on GroundedVQA-HR-v0")
