"""ONNX model artifacts on the board: loading, checksums, pattern-set switching, timed inference.

An artifact is either

* an RT3 runtime artifact (``.rt3``, an uncompressed ZIP, :mod:`devices.artifact`: a
  manifest with per-member sha256, one ONNX graph per pattern set); or
* a single ``.onnx`` file — one pattern set called ``default``; or
* a directory with ``manifest.json``::

      {"format": "rt3-onnx/1",
       "pattern_sets": [{"name": "ps0", "file": "ps0.onnx", "sha256": "…"}, …],
       "inputs": {"src": {"shape": [1, 32], "dtype": "int64", "high": 1000}}}

  where every pattern set is a complete ONNX graph of the same interface (RT3's runtime exports one
  per pattern set; weights may be shared on disk). ``inputs`` is optional: it fixes symbolic dimensions
  and the value range of integer inputs (token ids).

All pattern sets are loaded up front into the board's runtime
(:class:`devices.ort_runtime.OrtReconfigurableModel`, the only place onnxruntime sessions are made, with
the artifact's shared tables), so :meth:`LoadedModel.switch` is a reference swap between inferences; its
duration is measured and returned (ms).

Failure modes: :class:`~devices.errors.BadInputError` for a missing file, a checksum mismatch, a
malformed manifest, an unknown pattern set or an unloadable graph.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devices.errors import BadInputError
from devices.ort_runtime import ORT_DTYPES, OrtReconfigurableModel

MANIFEST = "manifest.json"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


@dataclass
class InputSpec:
    name: str
    shape: list[int]
    dtype: Any
    high: int = 100  # exclusive upper bound of integer inputs (e.g. the vocabulary size)

    def make(self, rng: np.random.Generator) -> np.ndarray:
        if "mask" in self.name:  # attention masks: attend to every token
            return np.ones(self.shape, dtype=self.dtype)
        if np.issubdtype(self.dtype, np.integer):
            return rng.integers(0, max(1, self.high), size=self.shape, dtype=self.dtype)
        if self.dtype is np.bool_:
            return np.ones(self.shape, dtype=np.bool_)
        return rng.standard_normal(self.shape).astype(self.dtype)


@dataclass
class PatternSet:
    name: str
    path: Path
    sha256: str
    session: Any  # its onnxruntime.InferenceSession inside the runtime (the same object)


@dataclass
class LoadedModel:
    """An artifact whose pattern sets are all loaded in the board runtime; one is active."""

    model_id: str
    source: str
    runtime: OrtReconfigurableModel
    pattern_sets: list[PatternSet]
    inputs: list[InputSpec]
    load_s: float = 0.0
    _feeds: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def active(self) -> int:
        """Index of the active pattern set."""
        return self.runtime.active_index

    def names(self) -> list[str]:
        return [p.name for p in self.pattern_sets]

    def index_of(self, name_or_index: str | int) -> int:
        if isinstance(name_or_index, int) or (isinstance(name_or_index, str) and name_or_index.isdigit()):
            i = int(name_or_index)
            if 0 <= i < len(self.pattern_sets):
                return i
        else:
            for i, p in enumerate(self.pattern_sets):
                if p.name == name_or_index:
                    return i
        raise BadInputError(f"model {self.model_id}: no pattern set {name_or_index!r}; it has {self.names()}")

    def switch(self, name_or_index: str | int) -> float:
        """Make a pattern set active; returns the switch time in ms (a reference swap)."""
        return self.runtime.switch(self.index_of(name_or_index))

    def feeds(self, seed: int = 0) -> dict[str, np.ndarray]:
        if not self._feeds:
            rng = np.random.default_rng(seed)
            self._feeds = {spec.name: spec.make(rng) for spec in self.inputs}
        return self._feeds

    def infer(self) -> float:
        """Run the active pattern set once on fixed inputs; returns the latency in ms."""
        feeds = self.feeds()
        t0 = time.perf_counter_ns()
        self.runtime.run(feeds)
        return (time.perf_counter_ns() - t0) / 1e6

    def describe(self) -> dict[str, object]:
        return {
            "model_id": self.model_id,
            "source": self.source,
            "pattern_sets": [{"name": p.name, "sha256": p.sha256} for p in self.pattern_sets],
            "active": self.pattern_sets[self.active].name,
            "inputs": [{"name": s.name, "shape": s.shape, "dtype": np.dtype(s.dtype).name} for s in self.inputs],
            "load_s": round(self.load_s, 4),
        }


def _loaded(
    model_id: str, source: Path, runtime: OrtReconfigurableModel, files: list[tuple[Path, str]],
    overrides: dict[str, Any], where: Path, t0: float,
) -> LoadedModel:  # fmt: skip
    """A LoadedModel of ``runtime``, one (path, sha256) per pattern set, inputs shaped by ``overrides``."""
    sets = [
        PatternSet(name, path, digest, session)
        for name, (path, digest), session in zip(runtime.names, files, runtime.sessions, strict=True)
    ]
    inputs = _input_specs(runtime.graph_inputs(), overrides, where)
    return LoadedModel(model_id, str(source), runtime, sets, inputs, load_s=time.perf_counter() - t0)


def _input_specs(graph_inputs: list[Any], overrides: dict[str, Any], where: Path) -> list[InputSpec]:
    specs: list[InputSpec] = []
    for inp in graph_inputs:
        o = overrides.get(inp.name, {})
        dtype = ORT_DTYPES.get(inp.type)
        if o.get("dtype"):
            dtype = np.dtype(o["dtype"]).type
        if dtype is None:
            raise BadInputError(f"{where}: input {inp.name!r} has unsupported type {inp.type}")
        shape = o.get("shape") or [d if isinstance(d, int) and d > 0 else 1 for d in inp.shape]
        if not all(isinstance(d, int) and d > 0 for d in shape):
            raise BadInputError(f"{where}: input {inp.name!r}: shape must be positive integers, got {shape}")
        specs.append(InputSpec(inp.name, list(shape), dtype, int(o.get("high", 100))))
    return specs


def load_artifact(
    path: str | os.PathLike[str],
    model_id: str,
    expected_sha256: str | None = None,
    threads: int | None = None,
) -> LoadedModel:
    """Load an artifact (file or directory, see module docstring) and verify its checksums.

    ``threads``: onnxruntime intra-op threads per session (None: one per core).
    """
    p = Path(path)
    t0 = time.perf_counter()
    try:
        is_file, is_dir = p.is_file(), p.is_dir()
    except OSError as exc:  # e.g. ENAMETOOLONG
        raise BadInputError(f"{str(p)[:200]}: cannot open the model artifact: {exc.strerror}") from None
    if is_file:
        digest = sha256_file(p)
        if expected_sha256 and digest != expected_sha256.lower():
            raise BadInputError(f"{p}: sha256 {digest} does not match the expected {expected_sha256}")
        if zipfile.is_zipfile(p):
            return _load_rt3(p, model_id, threads, t0)
        runtime = OrtReconfigurableModel([p], ["default"], threads)
        return _loaded(model_id, p, runtime, [(p, digest)], {}, p, t0)
    if not is_dir:
        raise BadInputError(f"{str(p)[:200]}: model artifact not found (an .onnx file or a directory with {MANIFEST})")
    manifest_path = p / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{p}: a model directory needs {MANIFEST}") from None
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{manifest_path}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    if expected_sha256:
        digest = sha256_file(manifest_path)
        if digest != expected_sha256.lower():
            raise BadInputError(f"{manifest_path}: sha256 {digest} does not match the expected {expected_sha256}")
    entries = manifest.get("pattern_sets") if isinstance(manifest, dict) else None
    if not isinstance(entries, list) or not entries:
        raise BadInputError(f"{manifest_path}: field pattern_sets: a non-empty list is required")
    names: list[str] = []
    files: list[tuple[Path, str]] = []
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict) or "file" not in entry:
            raise BadInputError(f"{manifest_path}: field pattern_sets.{i}: needs 'file'")
        f = p / str(entry["file"])
        if not f.is_file():
            raise BadInputError(f"{manifest_path}: field pattern_sets.{i}.file: {f} not found")
        digest = sha256_file(f)
        want = entry.get("sha256")
        if want and digest != str(want).lower():
            raise BadInputError(f"{f}: sha256 {digest} does not match the manifest's {want}")
        names.append(str(entry.get("name", f"ps{i}")))
        files.append((f, digest))
    runtime = OrtReconfigurableModel([f for f, _ in files], names, threads)
    return _loaded(model_id, p, runtime, files, manifest.get("inputs") or {}, manifest_path, t0)


#: Sequence length used to measure an RT3 artifact when its manifest names none.
DEFAULT_SEQ_LEN = 32


def _load_rt3(path: Path, model_id: str, threads: int | None, t0: float) -> LoadedModel:
    """An RT3 runtime artifact (``.rt3``, see :mod:`devices.artifact`), every member's sha256 verified.

    Pattern sets load in index order with the artifact's shared tables
    (:meth:`OrtReconfigurableModel.from_artifact`); integer inputs (token ids) are drawn below the
    model's ``vocab_size`` and symbolic dimensions get batch 1 and the artifact's ``seq_len``.
    """
    from devices.artifact import Artifact

    art = Artifact.open(path)
    if not art.pattern_sets:
        raise BadInputError(f"{path}: {MANIFEST}: field pattern_sets: no pattern sets")
    runtime = OrtReconfigurableModel.from_artifact(art, threads)
    files = art.manifest["files"]
    members = [str(e["onnx"]) for e in sorted(art.pattern_sets, key=lambda e: int(e["index"]))]
    model_desc = art.manifest.get("model") or {}
    config = model_desc.get("config") or model_desc.get("hf_config") or {}
    vocab = int(config.get("vocab_size", 100))
    seq = int(model_desc.get("seq_len") or DEFAULT_SEQ_LEN)
    overrides = {
        inp.name: {
            # symbolic dims: batch 1, sequence `seq`; fixed dims as the graph says
            "shape": [d if isinstance(d, int) and d > 0 else (seq if i == 1 else 1) for i, d in enumerate(inp.shape)],
            "high": vocab,
        }
        for inp in runtime.graph_inputs()
    }
    digests = [(path, str(files[m]["sha256"])) for m in members]
    return _loaded(model_id, path, runtime, digests, overrides, path, t0)
