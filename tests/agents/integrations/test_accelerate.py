"""accelerate: the launch configs parse, and a 2-process CPU (gloo) DDP step keeps replicas equal.

`accelerate launch --cpu --num_processes 2` starts ONE process in accelerate 1.x unless an MPI
launcher is configured (`--mpirun_hostfile`), so the test uses the torchrun launcher
(`--multi_gpu`) with `ACCELERATE_USE_CPU=true`: two processes, gloo, `DistributedType.MULTI_CPU`.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")
accelerate = pytest.importorskip("accelerate")

ROOT = Path(__file__).resolve().parents[3]
CONFIGS = {
    "ddp.yaml": "MULTI_GPU",
    "fsdp.yaml": "FSDP",
    "zero2.yaml": "DEEPSPEED",
    "zero3.yaml": "DEEPSPEED",
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_launch_configs_parse(name):
    from accelerate.commands.config.config_args import load_config_from_file

    config = load_config_from_file(str(ROOT / "examples" / "accelerate" / name))
    assert config.distributed_type.value == CONFIGS[name]
    assert config.mixed_precision == "bf16"
    if name.startswith("zero"):
        assert config.deepspeed_config["zero_stage"] == int(name[4])
    if name == "fsdp.yaml":
        assert config.fsdp_config["fsdp_version"] == 2


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_two_process_cpu_ddp_step_keeps_replicas_identical(tmp_path):
    from agents.policies.tiny_qwen import tiny_qwen25vl_path

    model = tiny_qwen25vl_path()
    launcher = shutil.which("accelerate", path=os.path.dirname(sys.executable)) or shutil.which(
        "accelerate"
    )
    if launcher is None:
        pytest.skip("the accelerate CLI is not on PATH")
    env = dict(
        os.environ, ACCELERATE_USE_CPU="true", OMP_NUM_THREADS="1", TOKENIZERS_PARALLELISM="false"
    )
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    cmd = [
        launcher,
        "launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        "--main_process_port",
        str(_free_port()),
        str(ROOT / "examples" / "accelerate_smoke.py"),
        "--model",
        model,
        "--workdir",
        str(tmp_path),
    ]
    proc = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("SMOKE_RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-3000:] + proc.stderr[-5000:]
    result = json.loads(lines[0].removeprefix("SMOKE_RESULT "))
    assert result["world_size"] == 2
    assert result["distributed_type"].endswith("MULTI_CPU")
    assert result["losses"][0] != result["losses"][1]  # different data on each rank ...
    assert result["moved"] and result["identical"]  # ... yet identical parameters after the step
