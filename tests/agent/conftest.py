"""Fixtures that start the real agent process on loopback against an emulated board."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from testbed.agent.launch import LocalAgent, start_local_agent

AgentProc = LocalAgent


def start_agent(tmp_path: Path, *extra: str, profile: str = "rpi4") -> LocalAgent:
    """An agent whose models directory is ``tmp_path`` (where the tests write their models)."""
    if "--models-dir" not in extra:
        extra = ("--models-dir", str(tmp_path), *extra)
    return start_local_agent(tmp_path, profile, *extra)


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
