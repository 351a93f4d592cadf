"""Store the tensors every pattern set's ONNX graph repeats once, and share them across onnxruntime sessions.

Each pattern set is exported as a self-contained graph, so the parts of the backbone no pattern set prunes
(token and position embeddings, layer norms, unpruned linears, the classifier head) would be stored and
loaded K times: the embedding of a DistilBERT-sized model alone is 94 MB per set.

:func:`share_initializers` finds every tensor of at least ``min_bytes`` that is identical (same bytes, shape
and dtype) in all graphs, whether an initializer or a ``Constant`` node, renames it ``shared.<j>`` in every
graph and leaves in its place an initializer that holds no data, only an external-data reference whose
location is its own name (the artifact stores the data once, as member ``shared/<j>.npy``). The runtime
creates one OrtValue per shared tensor and hands the same one to every session with
``SessionOptions.add_initializer`` (:func:`devices.ort_runtime.create_session`), so onnxruntime never
deserialises or copies a second one. Unlike
feeding the tensors as graph inputs (the artifact format's older ``shared_inputs``, still read), the graph
keeps them as initializers: constant folding and GEMM weight pre-packing still apply.

A graph rewritten this way cannot be opened on its own; a loader must supply the shared tensors.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import onnx

SHARED_PREFIX = "shared."
#: Tensors smaller than this stay in every graph (sharing them saves less than it costs in bookkeeping).
MIN_SHARED_BYTES = 1 << 16


def shared_member(j: int) -> str:
    """Artifact member holding shared tensor ``j``."""
    return f"shared/{j}.npy"


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(arr.tobytes() + str(arr.shape).encode() + str(arr.dtype).encode()).hexdigest()


def _candidates(model: onnx.ModelProto, min_bytes: int) -> dict[str, tuple[str, np.ndarray]]:
    """content key → (tensor name in this graph, array) for every tensor large enough to share."""
    from onnx import numpy_helper

    graph = model.graph
    found: dict[str, tuple[str, np.ndarray]] = {}
    items = [(t.name, t) for t in graph.initializer]
    items += [
        (n.output[0], n.attribute[0].t)
        for n in graph.node
        if n.op_type == "Constant" and len(n.attribute) == 1 and n.attribute[0].name == "value"
    ]
    for name, tensor in items:
        arr = numpy_helper.to_array(tensor)
        if arr.nbytes >= min_bytes:
            found.setdefault(_digest(arr), (name, arr))
    return found


def _placeholder(name: str, arr: np.ndarray, location: str) -> onnx.TensorProto:
    """An initializer with ``arr``'s type and shape whose data lives outside the graph."""
    from onnx import TensorProto, helper

    t = TensorProto()
    t.name = name
    t.data_type = helper.np_dtype_to_tensor_dtype(arr.dtype)
    t.dims.extend(arr.shape)
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(arr.nbytes))):
        entry = t.external_data.add()
        entry.key, entry.value = key, value
    return t


def share_initializers(
    graphs: Sequence[bytes], min_bytes: int = MIN_SHARED_BYTES
) -> tuple[list[bytes], dict[str, np.ndarray]]:
    """Rewritten graphs and the shared tensors {initializer name: array} (empty if nothing is common)."""
    import onnx

    models = [onnx.load_from_string(g) for g in graphs]
    per_model = [_candidates(m, min_bytes) for m in models]
    keys = sorted(set.intersection(*(set(c) for c in per_model))) if per_model else []
    if not keys:
        return list(graphs), {}
    shared = {f"{SHARED_PREFIX}{j}": per_model[0][k][1] for j, k in enumerate(keys)}
    for model, found in zip(models, per_model, strict=True):
        graph = model.graph
        renames = {found[k][0]: f"{SHARED_PREFIX}{j}" for j, k in enumerate(keys)}
        kept_init = [t for t in graph.initializer if t.name not in renames]
        del graph.initializer[:]
        graph.initializer.extend(kept_init)
        graph.initializer.extend(_placeholder(name, arr, name) for name, arr in shared.items())
        kept_nodes = [n for n in graph.node if not (n.op_type == "Constant" and n.output[0] in renames)]
        del graph.node[:]
        graph.node.extend(kept_nodes)
        for node in graph.node:
            for i, inp in enumerate(node.input):
                if inp in renames:
                    node.input[i] = renames[inp]
        for out in graph.output:
            if out.name in renames:  # a graph output that is a shared constant would lose its producer
                return list(graphs), {}
    return [m.SerializeToString() for m in models], shared
