"""Where a figure or table came from, as ``report.json`` records it: the runs (id, content digest, fidelity)
and any other input files (profile tables, search logs) with the SHA-256 of their bytes."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from testbed.runstore.reader import RunReader


@dataclass(frozen=True)
class RunRef:
    """A run drawn from: its id (the manifest's UUID), the SHA-256 of the run store's content
    (:func:`testbed.runstore.reader.content_sha256`), its fidelity label and the file it was read from."""

    run_id: str
    content_sha256: str
    fidelity: str
    path: str

    @classmethod
    def of(cls, reader: RunReader) -> RunRef:
        return cls(reader.run_id, reader.content_sha256, reader.fidelity, str(reader.path))


@dataclass(frozen=True)
class InputFile:
    """A file other than a run store that was drawn from, with the SHA-256 of its bytes."""

    path: str
    sha256: str

    @classmethod
    def of(cls, path: Path) -> InputFile:
        """Hash ``path`` (it must exist: it was just read)."""
        return cls(str(path), hashlib.sha256(path.read_bytes()).hexdigest())


@dataclass(frozen=True)
class Source:
    """What one figure or table was drawn from."""

    runs: tuple[RunRef, ...] = ()
    inputs: tuple[InputFile, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"runs": [asdict(r) for r in self.runs], "inputs": [asdict(i) for i in self.inputs]}
