"""The reconfigurable runtime on onnxruntime — the one a board runs, and the only place sessions are made.

Everything that runs an ONNX graph goes through this module: the device agent
(:mod:`devices.agent.runner`), ``testbed rt3 run`` and ``rt3 bench``, the search API's measured
onnxruntime latency and the benchmarks. So what the controller times is what the agent runs: the same
session options (:func:`session_options`), the same shared tables, the same switch.

:class:`OrtReconfigurableModel` holds one ``InferenceSession`` per pattern set, all created when the
model is loaded; ``switch(k)`` swaps the reference to the active session under a lock (no session is
created or weight copied at switch time), and an inference reads the reference once, so a switch
takes effect at the next inference. The tensors all sets share (an artifact's ``shared_initializers``:
embeddings, norms, unpruned linears) exist once, as OrtValues handed to every session with
``SessionOptions.add_initializer`` (no copy, see :func:`create_session`), so each extra set costs only its
packed weights (plus what onnxruntime pre-packs for its GEMMs). Older artifacts' ``shared_inputs``
(tables fed as graph inputs) are still fed at every run. :meth:`OrtReconfigurableModel.load_session`
builds a session for a graph that is not resident (a cold switch) with the same options and shared tensors.

Torch-free (numpy + onnxruntime); onnxruntime is imported when a session is made, so importing this
module is light. Failure modes: :class:`~devices.errors.BadInputError` for a graph onnxruntime cannot
load, an empty model, a bad pattern-set index or missing inputs.
"""

from __future__ import annotations

import tempfile
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


def session_options(threads: int | None = 1, initializers: Mapping[str, Any] | None = None) -> Any:
    """CPU session options: ``threads`` intra-op threads (None: onnxruntime's default, one per core),
    one inter-op thread, every graph optimisation. The board pins ``threads`` to its core budget.
    ``initializers`` ({name: OrtValue}) are used in place of the graph's initializers of those names, without
    a copy (``add_initializer``); the OrtValues must outlive the session.

    Each session has its own intra-op pool, whose threads spin for a while after a run; with K pattern sets
    and 2 threads the previous set's pool spins on the cores the next set's run needs (``bench switch``'s
    ``ort_2t``: first inference after a switch 36.7 ms p50 against 20.1 ms with
    ``session.force_spinning_stop``). That option is not set: the demo, whose agent runs back-to-back
    windows at 2 threads, lost battery life with it (rt3 / dense-max 1.125 and 1.115 against 1.151 without,
    bucket model), probably because every run then starts by waking the pool."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    if threads:
        opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    for name, value in (initializers or {}).items():
        opts.add_initializer(name, value)
    return opts


def _safe_location(name: str) -> bool:
    return bool(name) and "/" not in name and "\\" not in name and name not in (".", "..")


def create_session(
    model: Path | bytes,
    threads: int | None = 1,
    where: str | None = None,
    initializers: Mapping[str, Any] | None = None,
) -> Any:
    """An onnxruntime CPU ``InferenceSession`` of a graph file or its bytes, with :func:`session_options`.

    ``initializers`` ({name: OrtValue}) supply the graph's shared initializers, which the graph holds as
    data-less external tensors whose location is their own name (:mod:`testbed.rt3.onnx_share`). Two
    onnxruntime facts shape how: ``add_external_initializers`` copies the data into every session (measured:
    +92 MB per session for a 92 MB table), while ``add_initializer`` shares it but onnxruntime still checks
    that each external-data file exists next to the graph. So such a graph is staged in a private temporary
    directory beside empty files of those names, opened from there and the directory removed; no data is
    read from those files.

    Raises BadInputError naming ``where`` (default: the path, or ``<bytes>``) when onnxruntime cannot load it.
    """
    import onnxruntime as ort

    label = where or ("<bytes>" if isinstance(model, bytes) else str(model))
    try:
        opts = session_options(threads, initializers)
        if not initializers:
            source = model if isinstance(model, bytes) else str(model)
            return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])
        bad = [n for n in initializers if not _safe_location(n)]
        if bad:
            raise BadInputError(f"{label}: shared initializer name {bad[0]!r} is not a plain file name")
        data = model if isinstance(model, bytes) else Path(model).read_bytes()
        with tempfile.TemporaryDirectory(prefix="rt3-ort-") as tmp:
            graph = Path(tmp) / "graph.onnx"
            graph.write_bytes(data)
            for name in initializers:
                (Path(tmp) / name).touch()
            return ort.InferenceSession(str(graph), sess_options=opts, providers=["CPUExecutionProvider"])
    except BadInputError:
        raise
    except Exception as exc:  # onnxruntime raises its own exception types for bad graphs
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"{label}: not a loadable ONNX model: {first[:300]}") from None


class OrtReconfigurableModel:
    """K onnxruntime sessions, one per pattern set; ``run(feeds)`` uses the active one.

    ``onnx_models`` are graph files or bytes of one interface; ``shared`` maps graph input names to the
    tables every set shares (fed at every run, older artifacts); ``shared_initializers`` maps initializer
    names to the tensors every graph references externally (one OrtValue each, given to every session);
    ``labels`` name each graph in error messages.
    """

    def __init__(
        self,
        onnx_models: Sequence[Path | bytes],
        names: Sequence[str] | None = None,
        threads: int | None = 1,
        shared: Mapping[str, np.ndarray] | None = None,
        labels: Sequence[str] | None = None,
        shared_initializers: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        import onnxruntime as ort

        if not onnx_models:
            raise BadInputError("no pattern sets to load")
        self._init_arrays = {k: np.ascontiguousarray(v) for k, v in (shared_initializers or {}).items()}
        self._initializers = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in self._init_arrays.items()}
        self.sessions = [
            self.load_session(m, threads, labels[i] if labels else None) for i, m in enumerate(onnx_models)
        ]
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
            art.shared_initializers(),
        )

    def load_session(self, model: Path | bytes, threads: int | None = 1, where: str | None = None) -> Any:
        """A session for one more graph of this model's interface, with the shared initializers (the
        cold path: what a set that is not resident costs to bring in). BadInputError if it cannot load."""
        return create_session(model, threads, where, self._initializers)

    @property
    def shared_bytes(self) -> int:
        """Bytes of the tensors held once for all sets (shared initializers and shared inputs)."""
        return sum(a.nbytes for a in self._init_arrays.values()) + sum(a.nbytes for a in self._shared_arrays.values())

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
