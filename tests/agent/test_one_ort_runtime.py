"""Exactly one module constructs onnxruntime sessions: the board's runtime, which the agent runs too."""

from __future__ import annotations

import ast
from pathlib import Path

from devices.agent.runner import load_artifact
from devices.ort_runtime import OrtReconfigurableModel, session_options
from tests.agent.conftest import write_mlp_onnx

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("devices", "testbed", "traces", "analysis", "tests")


def _constructs_session(tree: ast.AST) -> bool:
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
            if name == "InferenceSession":
                return True
    return False


def test_exactly_one_module_constructs_inference_sessions() -> None:
    constructing = sorted(
        str(p.relative_to(REPO))
        for pkg in PACKAGES
        for p in (REPO / pkg).rglob("*.py")
        if _constructs_session(ast.parse(p.read_text(encoding="utf-8")))
    )
    assert constructing == ["devices/ort_runtime.py"]


def test_the_agent_runs_the_board_runtime(tmp_path: Path) -> None:
    path = write_mlp_onnx(tmp_path / "m.onnx", width=8)
    model = load_artifact(path, "m1", threads=1)
    assert isinstance(model.runtime, OrtReconfigurableModel)
    assert model.pattern_sets[0].session is model.runtime.sessions[0]
    opts = session_options(1)
    assert (opts.intra_op_num_threads, opts.inter_op_num_threads) == (1, 1)
    assert model.infer() > 0
