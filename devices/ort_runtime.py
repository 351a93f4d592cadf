"""The reconfigurable runtime on onnxruntime — the one a board runs, and the only place sessions are made.

Everything that runs an ONNX graph goes through this module: the device agent
(:mod:`devices.agent.runner`), ``testbed rt3 run`` and ``rt3 bench``, the search API's measured
onnxruntime latency and the benchmarks. So what the controller times is what the agent runs: the same
session options (:func:`session_options`), the same shared tables, the same switch.

:class:`OrtReconfigurableModel` holds one ``InferenceSession`` per pattern set, all created when the
model is loaded; ``switch(k)`` swaps the reference to the active session under a lock (no session is
created or weight copied at switch time), and an inference reads the reference once, so a switch
takes effect at the next inference. The lookup tables all sets share (embeddings, positions; an
artifact's ``shared_inputs``) exist once, as OrtValues fed to whichever session runs; each extra set
costs its packed weights plus its small unshared tensors (norms, biases).

Torch-free (numpy + onnxruntime); onnxruntime is imported when a session is made, so importing this
module is light. Failure modes: :class:`~devices.errors.BadInputError` for a graph onnxruntime cannot
load, an empty model, a bad pattern-set index or missing inputs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from devices.errors import BadInputError

if TYPE_CHECKING:
    from devices.artifact import Artifact

#: onnxruntime tensor types → numpy scalar types (the inputs a board can feed).
ORT_DTYPES: dict[str, Any] = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


def session_options(threads: int | None = 1) -> Any:
    """CPU session options: ``threads`` intra-op threads (None: onnxruntime's default, one per core),
    one inter-op thread, every graph optimisation. The board pins ``threads`` to its core budget."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


def create_session(model: Path | bytes, threads: int | None = 1, where: str | None = None) -> Any:
    """An onnxruntime CPU ``InferenceSession`` of a graph file or its bytes, with :func:`session_options`.

    Raises BadInputError naming ``where`` (default: the path, or ``<bytes>``) when onnxruntime cannot load it.
    """
    import onnxruntime as ort

    source = model if isinstance(model, bytes) else str(model)
    try:
        return ort.InferenceSession(source, sess_options=session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        label = where or ("<bytes>" if isinstance(model, bytes) else str(model))
        raise BadInputError(f"{label}: not a loadable ONNX model: {first[:300]}") from None


class OrtReconfigurableModel:
    """K onnxruntime sessions, one per pattern set; ``run(feeds)`` uses the active one.

    ``onnx_models`` are graph files or bytes of one interface; ``shared`` maps graph input names to the
    tables every set shares (fed once as OrtValues); ``labels`` name each graph in error messages.
    """

    def __init__(
        self,
        onnx_models: Sequence[Path | bytes],
        names: Sequence[str] | None = None,
        threads: int | None = 1,
        shared: Mapping[str, np.ndarray] | None = None,
        labels: Sequence[str] | None = None,
    ) -> None:
        import onnxruntime as ort

        if not onnx_models:
            raise BadInputError("no pattern sets to load")
        self.sessions = [create_session(m, threads, labels[i] if labels else None) for i, m in enumerate(onnx_models)]
        self.names = list(names) if names is not None else [f"set{i}" for i in range(len(onnx_models))]
        self.threads = threads
        self._shared_arrays = {k: np.ascontiguousarray(v) for k, v in (shared or {}).items()}
        self._shared = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in self._shared_arrays.items()}
        self._ortvalue = ort.OrtValue.ortvalue_from_numpy
        self._inputs = [i for i in self.sessions[0].get_inputs() if i.name not in self._shared]
        self.input_names = [i.name for i in self._inputs]
        self._dtypes = {i.name: ORT_DTYPES.get(i.type, np.int64) for i in self._inputs}
        self._lock = threading.Lock()
        self._index = 0
        self._active = self.sessions[0]

    @classmethod
    def from_artifact(cls, path: Path | Artifact, threads: int | None = 1) -> OrtReconfigurableModel:
        """Every pattern set of an RT3 artifact (``.rt3``) in index order, with its shared tables."""
        from devices.artifact import Artifact

        art = path if isinstance(path, Artifact) else Artifact.open(Path(path))
        sets = sorted(art.pattern_sets, key=lambda s: int(s["index"]))
        return cls(
            [art.read(str(s["onnx"])) for s in sets],
            [str(s["name"]) for s in sets],
            threads,
            art.shared_arrays(),
            [f"{art.path}:{s['onnx']}" for s in sets],
        )

    @property
    def k(self) -> int:
        return len(self.sessions)

    @property
    def active_index(self) -> int:
        return self._index

    def graph_inputs(self) -> list[Any]:
        """The inputs a caller feeds (onnxruntime ``NodeArg``: name, type, shape), shared tables excluded."""
        return list(self._inputs)

    def switch(self, k: int) -> float:
        """Make pattern set ``k`` active; returns the swap time in ms. BadInputError for a bad index."""
        if not 0 <= k < len(self.sessions):
            raise BadInputError(f"pattern set {k} does not exist (0…{len(self.sessions) - 1})")
        t0 = time.perf_counter_ns()
        with self._lock:
            self._active = self.sessions[k]
            self._index = k
        return (time.perf_counter_ns() - t0) / 1e6

    def run(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        """Run the active set on ``feeds`` (input name → array, cast to the graph's input type, token ids
        int64); returns the first output (logits)."""
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise BadInputError(f"missing model inputs: {sorted(missing)}")
        session = self._active  # one read: the whole inference uses this set
        values = {n: self._ortvalue(np.ascontiguousarray(feeds[n], dtype=self._dtypes[n])) for n in self.input_names}
        values.update(self._shared)
        out = session.run_with_ort_values(None, values)
        result: np.ndarray = out[0].numpy()
        return result
