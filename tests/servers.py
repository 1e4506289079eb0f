"""A real `transformers serve` on loopback for the tests that talk to an OpenAI-compatible
server (the `openai` eval agent, the answer judge): started and stopped by the tests."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class TransformersServe:
    """`transformers serve CHECKPOINT` on 127.0.0.1:`port`, started and stopped by the tests."""

    def __init__(self, checkpoint: str, port: int | None = None):
        self.checkpoint, self.port = checkpoint, port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.process: subprocess.Popen | None = None

    def start(self, timeout_s: float = 180.0) -> TransformersServe:
        cli = Path(sys.executable).with_name("transformers")
        command = [str(cli), "serve", self.checkpoint, "--device", "cpu", "--host", "127.0.0.1"]
        command += ["--port", str(self.port), "--log-level", "warning"]
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
        self.process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"transformers serve exited: {self.process.stderr.read().decode()[-2000:]}"
                )
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2):
                    return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"transformers serve did not answer /health in {timeout_s} s")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)
