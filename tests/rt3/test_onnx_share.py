"""Shared initializers: stored once, one copy in memory for every onnxruntime session, results unchanged."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from devices.errors import BadInputError
from devices.ort_runtime import OrtReconfigurableModel, create_session
from testbed.rt3.onnx_share import share_initializers

TABLE_ROWS, WIDTH = 20000, 512  # a 41 MB lookup table, the embedding of the sketch below


def _graphs(table: np.ndarray, heads: list[np.ndarray]) -> list[bytes]:
    """K graphs ids → Gather(table) → MatMul(head_k): a shared embedding and a per-set weight."""
    from onnx import TensorProto, helper, numpy_helper

    out = []
    for head in heads:
        nodes = [helper.make_node("Gather", ["emb", "ids"], ["e"]), helper.make_node("MatMul", ["e", "head"], ["y"])]
        graph = helper.make_graph(
            nodes,
            "g",
            [helper.make_tensor_value_info("ids", TensorProto.INT64, [None])],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, head.shape[1]])],
            [numpy_helper.from_array(table, "emb"), numpy_helper.from_array(head, "head")],
        )
        out.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString())
    return out


@pytest.fixture(scope="module")
def sketch() -> tuple[np.ndarray, list[np.ndarray], list[bytes]]:
    rng = np.random.default_rng(0)
    table = rng.standard_normal((TABLE_ROWS, WIDTH), dtype=np.float32)
    heads = [rng.standard_normal((WIDTH, 8), dtype=np.float32) for _ in range(3)]
    return table, heads, _graphs(table, heads)


def test_only_what_all_graphs_share_is_moved(sketch: tuple[np.ndarray, list[np.ndarray], list[bytes]]) -> None:
    table, heads, graphs = sketch
    rewritten, shared = share_initializers(graphs)
    assert list(shared) == ["shared.0"] and np.array_equal(shared["shared.0"], table)  # heads differ: kept
    assert all(len(g) < table.nbytes // 10 for g in rewritten)
    model = OrtReconfigurableModel(rewritten, shared_initializers=shared)
    ids = np.array([3, 0, 19999, 7])
    for k, head in enumerate(heads):
        model.switch(k)
        np.testing.assert_allclose(model.run({"ids": ids}), table[ids] @ head, rtol=1e-5, atol=1e-5)
    with pytest.raises(BadInputError, match="not a loadable ONNX model"):
        create_session(rewritten[0])  # the graph alone lacks its shared tensor


def test_nothing_common_means_nothing_changes(sketch: tuple[np.ndarray, list[np.ndarray], list[bytes]]) -> None:
    _, _, graphs = sketch
    rng = np.random.default_rng(1)
    other = _graphs(rng.standard_normal((16, WIDTH), dtype=np.float32), [np.zeros((WIDTH, 8), np.float32)])
    assert share_initializers([graphs[0], other[0]]) == ([graphs[0], other[0]], {})


def test_bad_shared_initializer_names_are_refused(sketch: tuple[np.ndarray, list[np.ndarray], list[bytes]]) -> None:
    import onnxruntime as ort

    _, _, graphs = sketch
    value = ort.OrtValue.ortvalue_from_numpy(np.zeros((2, 2), np.float32))
    with pytest.raises(BadInputError, match="not a plain file name"):
        create_session(graphs[0], initializers={"../escape": value})


_RSS = """
import sys, numpy as np, onnxruntime  # noqa: F401  (the library itself is not what is measured)
from devices.ort_runtime import OrtReconfigurableModel
d = sys.argv[1]
graphs = [open(f"{d}/g{i}.onnx", "rb").read() for i in range(3)]
shared = {"shared.0": np.load(f"{d}/t.npy")}
def rss_mb():
    import os
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 1e6
base = rss_mb()
m = OrtReconfigurableModel(graphs, shared_initializers=shared)
for k in range(3):
    m.switch(k); m.run({"ids": np.array([1, 2])})
print(rss_mb() - base)
"""


@pytest.mark.slow
def test_three_sessions_hold_one_copy_of_the_shared_table(
    sketch: tuple[np.ndarray, list[np.ndarray], list[bytes]], tmp_path: Path
) -> None:
    """Resident growth of a fresh process loading 3 sets: well under one extra copy of the 41 MB table
    (``add_external_initializers`` copied it into every session: ≥ 3 copies)."""
    _, _, graphs = sketch
    rewritten, shared = share_initializers(graphs)
    for i, g in enumerate(rewritten):
        (tmp_path / f"g{i}.onnx").write_bytes(g)
    np.save(tmp_path / "t.npy", shared["shared.0"])
    res = subprocess.run([sys.executable, "-c", _RSS, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    grown_mb = float(res.stdout.strip().splitlines()[-1])
    table_mb = shared["shared.0"].nbytes / 1e6
    assert grown_mb < 0.6 * table_mb, f"{grown_mb:.0f} MB for a {table_mb:.0f} MB table"
