"""Fixtures that start the real agent process on loopback against an emulated board."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest


@dataclass
class AgentProc:
    url: str
    token: str
    root: Path
    state_dir: Path
    proc: subprocess.Popen[str]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=30)


def start_agent(tmp_path: Path, *extra: str, profile: str = "rpi4") -> AgentProc:
    state_dir = tmp_path / "state"
    root = tmp_path / f"emulated-{profile}"
    token_file = tmp_path / "token"
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "testbed",
            "agent",
            "serve",
            "--port",
            "0",
            "--emulate",
            profile,
            "--sysfs-root",
            str(root),
            "--token-file",
            str(token_file),
            "--threads",
            "1",
            *extra,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    url = None
    for _ in range(5):
        line = proc.stdout.readline()
        m = re.search(r"listening on (http://\S+)", line)
        if m:
            url = m.group(1)
            break
    if url is None:
        proc.kill()
        raise AssertionError(f"agent did not start: {proc.stderr.read() if proc.stderr else ''}")
    return AgentProc(url, token_file.read_text().strip(), root, state_dir, proc)


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[AgentProc]:
    a = start_agent(tmp_path)
    yield a
    a.stop()


def write_mlp_onnx(path: Path, width: int = 64, seed: int = 0) -> Path:
    """A small real ONNX graph (MatMul + Relu) with a symbolic batch dimension."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).standard_normal((width, width)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["h"]), helper.make_node("Relu", ["h"], ["y"])],
        "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", width])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", width])],
        [numpy_helper.from_array(w, "W")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)
    return path


@pytest.fixture
def mlp_onnx(tmp_path: Path) -> Path:
    return write_mlp_onnx(tmp_path / "mlp.onnx")
