"""The RT3 artifact: one file with every pattern set's ONNX graph, the backbone, masks, metadata, checksums.

Torch-free on purpose (stdlib and numpy only): the device agent on a board and :mod:`devices.ort_runtime`
read artifacts with this module. Layout — an uncompressed ZIP (``.rt3``)::

    manifest.json            format, version, model description, pattern sets, sha256 + size of every member
    sets/<k>.onnx            pattern set k, packed, as one ONNX graph
    shared/<j>.npy           optional (``--share-tables``): tensors all sets share, stored once (see below)
    backbone.safetensors     the shared backbone weights (for reloading into torch)
    masks/<k>.safetensors    pattern set k's boolean masks
    extra/…                  optional (e.g. extra/vocab.json)

Manifest fields: ``format`` = "rt3-artifact", ``format_version`` = 1, ``created_utc``, ``model`` (``family``
"lm" or "hf", ``config``, ``inputs`` [{name, dtype}], ``outputs``), ``pattern_sets`` (list of {index, name,
sparsity, accuracy, freq_level, onnx, masks, packed_bytes, …}), ``shared_initializers`` (list of {name,
file, shape, dtype}: initializers every graph references as data-less external tensors, supplied once to all
onnxruntime sessions), ``shared_inputs`` (same fields; written by older versions: tensors fed as graph
inputs) and ``files`` ({member: {sha256, bytes}}).
Opening verifies every checksum; any mismatch, missing member or malformed manifest raises BadInputError.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import io
import json
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from devices.errors import BadInputError

FORMAT = "rt3-artifact"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def write_artifact(path: Path, manifest: Mapping[str, Any], members: Mapping[str, bytes]) -> Path:
    """Write ``members`` and a manifest (with ``files`` checksums filled in) to ``path`` atomically."""
    path = Path(path)
    body = dict(manifest)
    body.setdefault("format", FORMAT)
    body.setdefault("format_version", FORMAT_VERSION)
    body.setdefault("created_utc", _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))
    body["files"] = {name: {"sha256": sha256_bytes(data), "bytes": len(data)} for name, data in members.items()}
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(MANIFEST, json.dumps(body, indent=2, sort_keys=True))
        for name, data in members.items():
            zf.writestr(name, data)
    tmp.replace(path)
    return path


@dataclass
class Artifact:
    """An opened, verified artifact: the manifest plus lazy access to the member bytes."""

    path: Path
    manifest: dict[str, Any]

    @classmethod
    def open(cls, path: Path, verify: bool = True) -> Artifact:
        """Read the manifest and (by default) verify the sha256 of every member listed in it."""
        path = Path(path)
        if not path.is_file():
            raise BadInputError(f"{path}: no such artifact file")
        try:
            with zipfile.ZipFile(path) as zf:
                try:
                    manifest = json.loads(zf.read(MANIFEST))
                except KeyError as exc:
                    raise BadInputError(f"{path}: not an RT3 artifact (no {MANIFEST})") from exc
                except json.JSONDecodeError as exc:
                    raise BadInputError(f"{path}: {MANIFEST} line {exc.lineno}: {exc.msg}") from exc
                art = cls(path, manifest)
                art._check_schema()
                if verify:
                    names = set(zf.namelist())
                    for member, info in manifest["files"].items():
                        if member not in names:
                            raise BadInputError(f"{path}: member {member} listed in the manifest is missing")
                        if sha256_bytes(zf.read(member)) != info["sha256"]:
                            raise BadInputError(f"{path}: checksum mismatch for {member} (file corrupt)")
        except zipfile.BadZipFile as exc:
            raise BadInputError(f"{path}: not an RT3 artifact ({exc})") from exc
        return art

    def _check_schema(self) -> None:
        m = self.manifest
        if not isinstance(m, dict) or m.get("format") != FORMAT:
            raise BadInputError(f"{self.path}: {MANIFEST}: format is not {FORMAT!r}")
        if m.get("format_version") != FORMAT_VERSION:
            raise BadInputError(
                f"{self.path}: {MANIFEST}: format_version {m.get('format_version')} unsupported "
                f"(this testbed reads {FORMAT_VERSION})"
            )
        for key in ("model", "pattern_sets", "files"):
            if key not in m:
                raise BadInputError(f"{self.path}: {MANIFEST}: missing field {key!r}")
        for i, ps in enumerate(m["pattern_sets"]):
            for key in ("index", "name", "sparsity", "onnx"):
                if key not in ps:
                    raise BadInputError(f"{self.path}: {MANIFEST}: pattern_sets[{i}] lacks {key!r}")
            if ps["onnx"] not in m["files"]:
                raise BadInputError(f"{self.path}: {MANIFEST}: pattern_sets[{i}] names unlisted {ps['onnx']}")

    def read(self, member: str) -> bytes:
        """Bytes of one member (BadInputError if absent)."""
        with zipfile.ZipFile(self.path) as zf:
            try:
                return zf.read(member)
            except KeyError as exc:
                raise BadInputError(f"{self.path}: no member {member}") from exc

    @property
    def pattern_sets(self) -> list[dict[str, Any]]:
        sets: list[dict[str, Any]] = self.manifest["pattern_sets"]
        return sets

    def shared_arrays(self) -> dict[str, np.ndarray]:
        """The shared graph inputs {name: array} (older artifacts; empty for the others)."""
        return self._arrays("shared_inputs")

    def shared_initializers(self) -> dict[str, np.ndarray]:
        """The shared initializers {name: array} every set's graph references (empty if none)."""
        return self._arrays("shared_initializers")

    def _arrays(self, field: str) -> dict[str, np.ndarray]:
        out = {}
        for item in self.manifest.get(field, []):
            out[str(item["name"])] = np.load(io.BytesIO(self.read(item["file"])), allow_pickle=False)
        return out

    @property
    def inputs(self) -> list[dict[str, str]]:
        inputs: list[dict[str, str]] = self.manifest["model"]["inputs"]
        return inputs
