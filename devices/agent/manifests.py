"""What the agent accepts as a model artifact: bounded archives, schema-checked manifests, streamed checksums.

Everything here runs *before* an artifact's bytes are read into memory or handed to onnxruntime:

* :func:`check_archive` — an ``.rt3`` is an uncompressed ZIP: every member must be stored (not deflated), its
  declared size must equal its stored size, and the member count, each member's size and their total must stay
  under :class:`ArtifactLimits` (so a small upload cannot inflate to gigabytes); the manifest is bounded
  separately and parsed with a nesting limit.
* :func:`parse_rt3_manifest` / :func:`parse_dir_manifest` — pydantic schemas of the fields the agent uses, every
  size field bounded (``seq_len``, shapes, vocabulary, counts); unknown extra fields are kept.
* :func:`verify_members` — each member's sha256 computed while streaming it in 1 MiB chunks.

Failure modes: :class:`~devices.errors.BadInputError`, one line naming the artifact and the field; a checksum
mismatch never states the digest the file really has.
"""

from __future__ import annotations

import hashlib
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from devices.errors import BadInputError

MANIFEST = "manifest.json"

#: Longest sequence, largest vocabulary and most input elements the agent will build inputs for.
MAX_SEQ_LEN = 16_384
MAX_VOCAB = 10_000_000
MAX_INPUT_ELEMENTS = 1 << 24
MAX_DIM = 1 << 20
#: Deepest JSON nesting accepted in a manifest.
MAX_JSON_DEPTH = 32


@dataclass(frozen=True)
class ArtifactLimits:
    """Bounds on an ``.rt3`` archive (bytes are uncompressed member sizes)."""

    max_members: int = 512
    max_member_bytes: int = 512 * 1024 * 1024
    max_total_bytes: int = 1024 * 1024 * 1024
    max_manifest_bytes: int = 4 * 1024 * 1024


def _where(exc: ValidationError) -> str:
    err = exc.errors()[0]
    loc = ".".join(str(x) for x in err["loc"]) or "top level"
    return f"field {loc}: {err['msg']}"


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of a JSON value, stopping once past ``limit``."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    deepest = 0
    while stack:
        v, d = stack.pop()
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        if isinstance(v, dict):
            stack.extend((x, d + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, d + 1) for x in v)
    return deepest


def load_json(raw: bytes, where: str) -> Any:
    """Parse a manifest's JSON with a nesting bound; :class:`BadInputError` on anything malformed."""
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        line = getattr(exc, "lineno", None)
        raise BadInputError(f"{where}{f':{line}' if line else ''}: invalid JSON: {str(exc)[:120]}") from None
    except RecursionError:
        raise BadInputError(f"{where}: JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)") from None
    if _depth(data, MAX_JSON_DEPTH) > MAX_JSON_DEPTH:
        raise BadInputError(f"{where}: JSON nested too deeply (at most {MAX_JSON_DEPTH} levels)")
    return data


# ---- schemas ---------------------------------------------------------------------------------------------------

Hex64 = Field(pattern=r"^[0-9a-fA-F]{64}$")
Name = Field(min_length=1, max_length=256)
Dim = Field(ge=1, le=MAX_DIM)


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class FileEntry(_Open):
    sha256: str = Hex64
    bytes: int = Field(ge=0, le=1 << 40)


class PatternSetEntry(_Open):
    index: int = Field(ge=0, le=4096)
    name: str = Name
    sparsity: float = Field(ge=0.0, le=1.0)
    onnx: str = Name


class ModelConfig(_Open):
    vocab_size: int | None = Field(default=None, ge=1, le=MAX_VOCAB)


class ModelEntry(_Open):
    config: ModelConfig | None = None
    hf_config: ModelConfig | None = None
    seq_len: int | None = Field(default=None, ge=1, le=MAX_SEQ_LEN)

    @property
    def vocab_size(self) -> int | None:
        for cfg in (self.config, self.hf_config):
            if cfg is not None and cfg.vocab_size is not None:
                return cfg.vocab_size
        return None


class SharedEntry(_Open):
    name: str = Name
    file: str = Name


class Rt3Manifest(_Open):
    """The fields of an ``.rt3`` manifest the agent relies on (see :mod:`devices.artifact`)."""

    format: Literal["rt3-artifact"]
    format_version: Literal[1]
    model: ModelEntry
    pattern_sets: list[PatternSetEntry] = Field(min_length=1, max_length=256)
    files: dict[str, FileEntry] = Field(max_length=4096)
    shared_inputs: list[SharedEntry] = Field(default_factory=list, max_length=256)
    shared_initializers: list[SharedEntry] = Field(default_factory=list, max_length=4096)


class InputOverride(BaseModel):
    model_config = ConfigDict(extra="forbid")
    shape: list[int] | None = Field(default=None, min_length=0, max_length=8)
    dtype: Literal["int64", "int32", "float32", "float16", "float64", "bool"] | None = None
    high: int | None = Field(default=None, ge=1, le=MAX_VOCAB)


class DirPatternSet(BaseModel):
    model_config = ConfigDict(extra="allow")
    file: str = Name
    name: str | None = Field(default=None, min_length=1, max_length=256)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


class DirManifest(BaseModel):
    """``manifest.json`` of a model directory (see :mod:`devices.agent.runner`)."""

    model_config = ConfigDict(extra="allow")
    format: str | None = Field(default=None, max_length=64)
    pattern_sets: list[DirPatternSet] = Field(min_length=1, max_length=256)
    inputs: dict[str, InputOverride] = Field(default_factory=dict, max_length=64)


def _bounded_shape(shape: list[int], where: str, name: str) -> list[int]:
    total = 1
    for d in shape:
        if not 1 <= d <= MAX_DIM:
            raise BadInputError(f"{where}: input {name!r}: dimension {d} outside 1..{MAX_DIM}")
        total *= d
    if total > MAX_INPUT_ELEMENTS:
        raise BadInputError(f"{where}: input {name!r}: {total} elements is over the limit of {MAX_INPUT_ELEMENTS}")
    return shape


def check_shape(shape: list[int], where: str, name: str) -> list[int]:
    """``shape`` if every dimension is in 1..MAX_DIM and the element count is bounded; else BadInputError."""
    return _bounded_shape(shape, where, name)


def parse_rt3_manifest(raw: bytes, where: str) -> Rt3Manifest:
    data = load_json(raw, f"{where}: {MANIFEST}")
    try:
        m = Rt3Manifest.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"{where}: {MANIFEST}: {_where(exc)}") from None
    for i, ps in enumerate(m.pattern_sets):
        if ps.onnx not in m.files:
            raise BadInputError(f"{where}: {MANIFEST}: field pattern_sets.{i}.onnx: {ps.onnx[:80]} is not in files")
    for field, entries in (("shared_inputs", m.shared_inputs), ("shared_initializers", m.shared_initializers)):
        for i, e in enumerate(entries):
            if e.file not in m.files:
                raise BadInputError(f"{where}: {MANIFEST}: field {field}.{i}.file: {e.file[:80]} is not in files")
    return m


def parse_dir_manifest(raw: bytes, where: str) -> DirManifest:
    data = load_json(raw, where)
    try:
        m = DirManifest.model_validate(data)
    except ValidationError as exc:
        raise BadInputError(f"{where}: {_where(exc)}") from None
    for name, o in m.inputs.items():
        if o.shape:
            _bounded_shape(o.shape, where, name)
    return m


# ---- the archive ---------------------------------------------------------------------------------------------


def check_archive(path: Path, limits: ArtifactLimits) -> tuple[zipfile.ZipFile, Rt3Manifest]:
    """Open ``path`` as an ``.rt3`` and check its members and manifest against ``limits`` (nothing inflated yet).

    Returns the open archive (the caller closes it) and the parsed manifest."""
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadInputError(f"{path}: not an RT3 artifact ({str(exc)[:120]})") from None
    try:
        infos = zf.infolist()
        if len(infos) > limits.max_members:
            raise BadInputError(f"{path}: {len(infos)} members, more than the limit of {limits.max_members}")
        total = 0
        for info in infos:
            if info.compress_type != zipfile.ZIP_STORED:
                raise BadInputError(f"{path}: member {info.filename[:80]} is compressed; RT3 artifacts store members")
            if info.file_size != info.compress_size:
                raise BadInputError(f"{path}: member {info.filename[:80]} declares a size it does not store")
            if info.file_size > limits.max_member_bytes:
                raise BadInputError(
                    f"{path}: member {info.filename[:80]} has {info.file_size} bytes, over the limit of "
                    f"{limits.max_member_bytes}"
                )
            total += info.file_size
        if total > limits.max_total_bytes:
            raise BadInputError(f"{path}: members total {total} bytes, over the limit of {limits.max_total_bytes}")
        try:
            minfo = zf.getinfo(MANIFEST)
        except KeyError:
            raise BadInputError(f"{path}: not an RT3 artifact (no {MANIFEST})") from None
        if minfo.file_size > limits.max_manifest_bytes:
            raise BadInputError(f"{path}: {MANIFEST} is over {limits.max_manifest_bytes} bytes")
        manifest = parse_rt3_manifest(zf.read(MANIFEST), str(path))
        names = {i.filename for i in infos}
        for member, entry in manifest.files.items():
            if member not in names:
                raise BadInputError(f"{path}: member {member[:80]} listed in the manifest is missing")
            if zf.getinfo(member).file_size != entry.bytes:
                raise BadInputError(f"{path}: member {member[:80]} does not have the size its manifest states")
    except (zipfile.BadZipFile, EOFError, OSError) as exc:  # a damaged manifest member
        zf.close()
        raise BadInputError(f"{path}: not an RT3 artifact ({str(exc)[:120]})") from None
    except BaseException:
        zf.close()
        raise
    return zf, manifest


def verify_members(zf: zipfile.ZipFile, manifest: Rt3Manifest, path: Path) -> None:
    """Stream every listed member once and compare its sha256 with the manifest's (no digest is echoed)."""
    for member, entry in manifest.files.items():
        h = hashlib.sha256()
        try:
            with zf.open(member) as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise BadInputError(f"{path}: member {member[:80]} is damaged ({str(exc)[:80]})") from None
        if h.hexdigest() != entry.sha256.lower():
            raise BadInputError(f"{path}: checksum mismatch for {member[:80]} (file corrupt)")


def sha256_stream(path: Path) -> str:
    """sha256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
