"""The reconfigurable runtime on onnxruntime: what a board runs (no torch).

One ``InferenceSession`` per pattern set, all created when the artifact is loaded; ``switch(k)`` swaps the
reference to the active session under a lock (no session is created or weight copied at switch time). The
lookup tables all sets share (embeddings, positions) exist once, as OrtValues fed to whichever session runs;
each extra set costs its packed weights plus its small unshared tensors (norms, biases).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from devices.errors import BadInputError
from testbed.rt3.artifact import Artifact


def session_options(threads: int = 1) -> Any:
    """CPU session options with ``threads`` intra-op threads (the board pins this to its core budget)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return opts


class OrtReconfigurableModel:
    """K onnxruntime sessions, one per pattern set; ``run(feeds)`` uses the active one."""

    def __init__(
        self,
        onnx_models: list[bytes],
        names: list[str] | None = None,
        threads: int = 1,
        shared: Mapping[str, np.ndarray] | None = None,
    ) -> None:
        import onnxruntime as ort

        if not onnx_models:
            raise BadInputError("no pattern sets to load")
        opts = session_options(threads)
        self.sessions = [ort.InferenceSession(b, opts, providers=["CPUExecutionProvider"]) for b in onnx_models]
        self.names = names or [f"set{i}" for i in range(len(onnx_models))]
        self._shared_arrays = {k: np.ascontiguousarray(v) for k, v in (shared or {}).items()}
        self._shared = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in self._shared_arrays.items()}
        self._ortvalue = ort.OrtValue.ortvalue_from_numpy
        self.input_names = [i.name for i in self.sessions[0].get_inputs() if i.name not in self._shared]
        self._lock = threading.Lock()
        self._index = 0
        self._active = self.sessions[0]

    @classmethod
    def from_artifact(cls, path: Path | Artifact, threads: int = 1) -> OrtReconfigurableModel:
        art = path if isinstance(path, Artifact) else Artifact.open(Path(path))
        sets = sorted(art.pattern_sets, key=lambda s: int(s["index"]))
        return cls([art.read(s["onnx"]) for s in sets], [str(s["name"]) for s in sets], threads, art.shared_arrays())

    @property
    def k(self) -> int:
        return len(self.sessions)

    @property
    def active_index(self) -> int:
        return self._index

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
        """Run the active set on ``feeds`` (input name → int64 array); returns the first output (logits)."""
        missing = set(self.input_names) - set(feeds)
        if missing:
            raise BadInputError(f"missing model inputs: {sorted(missing)}")
        session = self._active
        values = {n: self._ortvalue(np.ascontiguousarray(feeds[n], dtype=np.int64)) for n in self.input_names}
        values.update(self._shared)
        out = session.run_with_ort_values(None, values)
        result: np.ndarray = out[0].numpy()
        return result
