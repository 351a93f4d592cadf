"""De-duplicate the big tensors that every pattern set's ONNX graph repeats (embedding and position tables).

Each pattern set is exported as a self-contained graph, so the unpruned lookup tables of the backbone (token
embedding, sinusoidal positions: 100 MB and 16 MB for RT3's reference model on WikiText-2) would be stored and
loaded K times. :func:`share_lookup_tables` moves every tensor that (a) is at least ``min_bytes``, (b) is
identical in all graphs and (c) is read only by data-movement ops (Gather, Slice) out of the graphs and into
graph inputs named ``shared.<i>``; the runtime creates one OrtValue per table and feeds the same one to all K
sessions. GEMM weights are never moved (onnxruntime pre-packs constant GEMM weights; inputs would lose that).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

SHARE_OPS = frozenset({"Gather", "Slice"})
SHARED_PREFIX = "shared."


def _consumers(graph: onnx.GraphProto, name: str) -> set[str]:
    return {n.op_type for n in graph.node if name in n.input}


def _tables(model: onnx.ModelProto, min_bytes: int) -> dict[str, tuple[str, onnx.TensorProto]]:
    """content key → (tensor name in this graph, TensorProto) for every movable tensor."""
    from onnx import numpy_helper

    graph = model.graph
    found: dict[str, tuple[str, onnx.TensorProto]] = {}
    candidates = [(t.name, t) for t in graph.initializer]
    candidates += [
        (n.output[0], n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and n.attribute and n.attribute[0].name == "value"
    ]
    for name, tensor in candidates:
        arr = numpy_helper.to_array(tensor)
        if arr.nbytes < min_bytes or not _consumers(graph, name) <= SHARE_OPS:
            continue
        key = hashlib.sha256(arr.tobytes() + str(arr.shape).encode() + str(arr.dtype).encode()).hexdigest()
        found[key] = (name, tensor)
    return found


def share_lookup_tables(graphs: Sequence[bytes], min_bytes: int = 1 << 20) -> tuple[list[bytes], dict[str, np.ndarray]]:
    """Rewritten graphs and the shared tensors {input name: array} (empty if nothing is shared)."""
    import onnx
    from onnx import helper, numpy_helper

    models = [onnx.load_from_string(g) for g in graphs]
    per_model = [_tables(m, min_bytes) for m in models]
    keys = sorted(set.intersection(*(set(t) for t in per_model))) if per_model else []
    if not keys:
        return list(graphs), {}
    shared = {f"{SHARED_PREFIX}{i}": numpy_helper.to_array(per_model[0][k][1]) for i, k in enumerate(keys)}
    for model, tables in zip(models, per_model, strict=True):
        graph = model.graph
        renames = {tables[k][0]: f"{SHARED_PREFIX}{i}" for i, k in enumerate(keys)}
        kept_init = [t for t in graph.initializer if t.name not in renames]
        del graph.initializer[:]
        graph.initializer.extend(kept_init)
        kept_nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in renames)]
        del graph.node[:]
        graph.node.extend(kept_nodes)
        for node in graph.node:
            for j, inp in enumerate(node.input):
                if inp in renames:
                    node.input[j] = renames[inp]
        for name, arr in shared.items():
            elem = helper.np_dtype_to_tensor_dtype(arr.dtype)
            graph.input.append(helper.make_tensor_value_info(name, elem, list(arr.shape)))
        onnx.checker.check_model(model)
    return [m.SerializeToString() for m in models], shared
