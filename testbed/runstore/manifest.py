"""What a run's manifest records about the code and the machine (MLPerf power-dev style run record).

:func:`source_hash` hashes the Python sources of the testbed packages (path and content, sorted) so a
result can be tied to the code that produced it; :func:`base_manifest` gathers the run UUID, the wall
time, versions of Python and key libraries, the kernel and the host.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import platform
import time
import uuid
from pathlib import Path
from typing import Any

_PACKAGES = ("testbed", "devices", "traces")
_VERSIONED = ("rt3-testbed", "numpy", "pydantic", "typer", "onnxruntime", "torch")


def source_hash() -> str:
    """SHA-256 over the ``*.py`` files of the testbed, devices and traces packages (relative path + bytes)."""
    root = Path(__file__).resolve().parents[2]
    h = hashlib.sha256()
    for pkg in _PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            h.update(str(path.relative_to(root)).encode())
            h.update(b"\0")
            h.update(path.read_bytes())
    return h.hexdigest()


def versions() -> dict[str, str | None]:
    """Python and installed library versions (None where a library is not installed)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name in _VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = None
    return out


def base_manifest(config: dict[str, Any], fidelity: str, seed: int) -> dict[str, Any]:
    """The machine- and code-describing part of a manifest; the run executor's
    :class:`~testbed.runstore.executor.RunDescription` adds board, governor, meter and clock offsets."""
    return {
        "run_uuid": str(uuid.uuid4()),
        "created_wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "config": config,
        "source_hash": source_hash(),
        "versions": versions(),
        "kernel": platform.release(),
        "host": platform.node(),
        "fidelity": fidelity,
        "seed": seed,
    }
