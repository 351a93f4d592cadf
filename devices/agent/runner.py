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

Before anything is inflated or handed to onnxruntime, archives and manifests are checked by
:mod:`devices.agent.manifests` (stored members, bounded sizes, pydantic schemas, streamed checksums). Inputs
are built only inside what the model declares: shapes bounded, token ids below the declared vocabulary; a
trial inference at load time confirms the model runs on them — where a lookup table is smaller than the
declared (or default) vocabulary, the ids are drawn below the table size onnxruntime reports, and a model
that still cannot run is refused at load time, never in the middle of a measurement.

Failure modes: :class:`~devices.errors.BadInputError` for a missing file, a checksum mismatch (the digest the
file really has is never stated), a malformed manifest, a member path leaving the model directory, an unknown
pattern set, an unloadable graph or a model that fails on its declared inputs.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from devices.agent.manifests import (
    ArtifactLimits,
    check_archive,
    check_shape,
    parse_dir_manifest,
    verify_members,
)
from devices.errors import BadInputError
from devices.ort_runtime import ORT_DTYPES, OrtReconfigurableModel

#: onnxruntime's message for an index past a lookup table: "idx=85 must be within the inclusive range [-58,57]".
_INDEX_RANGE = re.compile(r"idx=-?\d+ must be within the inclusive range \[-?(\d+),\s*(\d+)\]")

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
        """Run the active pattern set once on fixed inputs; returns the latency in ms.

        :class:`BadInputError` (not an onnxruntime exception) when the model fails."""
        feeds = self.feeds()
        t0 = time.perf_counter_ns()
        try:
            self.runtime.run(feeds)
        except BadInputError:
            raise
        except Exception as exc:  # onnxruntime's own exception types
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise BadInputError(f"model {self.model_id}: inference failed: {first[:300]}") from None
        return (time.perf_counter_ns() - t0) / 1e6

    def probe(self, tries: int = 3) -> None:
        """Run every pattern set once on the inputs this model will be fed; where onnxruntime reports a lookup
        table smaller than the token-id range, draw ids below its size and try again. BadInputError if a set
        still fails (the model is refused at load time, not during a measurement)."""
        for _ in range(tries):
            try:
                for i in range(len(self.pattern_sets)):
                    self.runtime.switch(i)
                    self.infer()
                self.runtime.switch(0)
                return
            except BadInputError as exc:
                m = _INDEX_RANGE.search(str(exc))
                if m is None:
                    raise
                rows = int(m.group(2)) + 1
                narrowed = False
                for spec in self.inputs:
                    if np.issubdtype(spec.dtype, np.integer) and spec.high > rows:
                        spec.high = rows
                        narrowed = True
                if not narrowed:
                    raise
                self._feeds = {}
        raise BadInputError(f"model {self.model_id}: does not run on its declared inputs")

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
        if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in shape):
            raise BadInputError(f"{where}: input {inp.name!r}: shape must be positive integers, got {shape[:8]}")
        check_shape(list(shape), str(where), inp.name)
        specs.append(InputSpec(inp.name, list(shape), dtype, int(o.get("high") or 100)))
    return specs


def load_artifact(
    path: str | os.PathLike[str],
    model_id: str,
    expected_sha256: str | None = None,
    threads: int | None = None,
    limits: ArtifactLimits | None = None,
) -> LoadedModel:
    """Load an artifact (file or directory, see module docstring) and verify its checksums.

    ``threads``: onnxruntime intra-op threads per session (None: one per core). The caller decides which
    paths may be loaded (the agent: only below its models directory).
    """
    lim = limits or ArtifactLimits()
    p = Path(path)
    t0 = time.perf_counter()
    try:
        is_file, is_dir = p.is_file(), p.is_dir()
    except OSError as exc:  # e.g. ENAMETOOLONG
        raise BadInputError(f"{str(p)[:200]}: cannot open the model artifact: {exc.strerror}") from None
    if is_file:
        if expected_sha256 and sha256_file(p) != expected_sha256.lower():
            raise BadInputError(f"{p}: sha256 does not match the expected {expected_sha256}")
        if zipfile.is_zipfile(p):
            model = _load_rt3(p, model_id, threads, t0, lim)
        else:
            if p.stat().st_size > lim.max_member_bytes:
                raise BadInputError(f"{p}: {p.stat().st_size} bytes, over the limit of {lim.max_member_bytes}")
            runtime = OrtReconfigurableModel([p], ["default"], threads)
            model = _loaded(model_id, p, runtime, [(p, sha256_file(p))], {}, p, t0)
        model.probe()
        return model
    if not is_dir:
        raise BadInputError(f"{str(p)[:200]}: model artifact not found (an .onnx file or a directory with {MANIFEST})")
    manifest_path = p / MANIFEST
    try:
        size = manifest_path.stat().st_size
    except FileNotFoundError:
        raise BadInputError(f"{p}: a model directory needs {MANIFEST}") from None
    if size > lim.max_manifest_bytes:
        raise BadInputError(f"{manifest_path}: over {lim.max_manifest_bytes} bytes")
    raw = manifest_path.read_bytes()
    if expected_sha256 and hashlib.sha256(raw).hexdigest() != expected_sha256.lower():
        raise BadInputError(f"{manifest_path}: sha256 does not match the expected {expected_sha256}")
    manifest = parse_dir_manifest(raw, str(manifest_path))
    names: list[str] = []
    files: list[tuple[Path, str]] = []
    base = p.resolve()
    for i, entry in enumerate(manifest.pattern_sets):
        f = p / entry.file
        if not f.resolve().is_relative_to(base):
            raise BadInputError(f"{manifest_path}: field pattern_sets.{i}.file: leaves the model directory")
        if not f.is_file():
            raise BadInputError(f"{manifest_path}: field pattern_sets.{i}.file: {entry.file[:200]} not found")
        if f.stat().st_size > lim.max_member_bytes:
            raise BadInputError(f"{manifest_path}: field pattern_sets.{i}.file: over {lim.max_member_bytes} bytes")
        digest = sha256_file(f)
        if entry.sha256 and digest != entry.sha256.lower():
            raise BadInputError(f"{f}: sha256 does not match the manifest's {entry.sha256}")
        names.append(entry.name or f"ps{i}")
        files.append((f, digest))
    runtime = OrtReconfigurableModel([f for f, _ in files], names, threads)
    overrides = {k: v.model_dump(exclude_none=True) for k, v in manifest.inputs.items()}
    model = _loaded(model_id, p, runtime, files, overrides, manifest_path, t0)
    model.probe()
    return model


#: Sequence length used to measure an RT3 artifact when its manifest names none.
DEFAULT_SEQ_LEN = 32


def _load_rt3(path: Path, model_id: str, threads: int | None, t0: float, limits: ArtifactLimits) -> LoadedModel:
    """An RT3 runtime artifact (``.rt3``, see :mod:`devices.artifact`), checked and every member's sha256 verified
    while streaming before anything is inflated.

    Pattern sets load in index order with the artifact's shared tables
    (:meth:`OrtReconfigurableModel.from_artifact`); integer inputs (token ids) are drawn below the
    model's declared ``vocab_size`` and symbolic dimensions get batch 1 and the artifact's ``seq_len``.
    """
    from devices.artifact import Artifact

    zf, manifest = check_archive(path, limits)
    with zf:
        verify_members(zf, manifest, path)
    art = Artifact.open(path, verify=False)  # verified above, in bounded chunks
    runtime = OrtReconfigurableModel.from_artifact(art, threads)
    members = [e.onnx for e in sorted(manifest.pattern_sets, key=lambda e: e.index)]
    vocab = manifest.model.vocab_size or 100
    seq = manifest.model.seq_len or DEFAULT_SEQ_LEN
    overrides = {
        inp.name: {
            # symbolic dims: batch 1, sequence `seq`; fixed dims as the graph says
            "shape": [d if isinstance(d, int) and d > 0 else (seq if i == 1 else 1) for i, d in enumerate(inp.shape)],
            "high": vocab,
        }
        for inp in runtime.graph_inputs()
    }
    digests = [(path, manifest.files[m].sha256) for m in members]
    return _loaded(model_id, path, runtime, digests, overrides, path, t0)
