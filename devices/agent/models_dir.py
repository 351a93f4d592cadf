"""The agent's models directory: the only place model artifacts are loaded from, and where uploads land.

A token holder names a model by a path *inside* this directory (relative, or absolute below it); any other
path is refused with the same message whether or not it exists, so the agent cannot be used to probe the
board's file system. Uploads are streamed (hashed on the way) into ``.uploads/`` below it and removed once
loaded; :meth:`ModelsDir.clean_uploads` removes what a crashed agent left there.

Failure modes: :class:`ModelPathRefused` (HTTP 403) for a path outside the directory; an unusable directory
raises :class:`~devices.errors.BadInputError` at start.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from devices.errors import BadInputError

UPLOADS = ".uploads"


class ModelPathRefused(BadInputError):
    """A model path outside the agent's models directory (HTTP 403)."""


class ModelsDir:
    """``root``: the directory models are loaded from (created if missing)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root).expanduser()

    def prepare(self) -> ModelsDir:
        """Create the directory and its upload area; remove uploads a crashed agent left."""
        try:
            (self.root / UPLOADS).mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError as exc:
            raise BadInputError(f"{self.root}: cannot use as the models directory: {exc.strerror}") from None
        self.clean_uploads()
        return self

    @property
    def uploads(self) -> Path:
        return self.root / UPLOADS

    def clean_uploads(self) -> int:
        """Delete every file in the upload area; returns how many."""
        n = 0
        with contextlib.suppress(FileNotFoundError):
            for f in self.uploads.iterdir():
                with contextlib.suppress(OSError):
                    f.unlink()
                    n += 1
        return n

    def resolve(self, name: str) -> Path:
        """The real path of model ``name`` if it lies inside the directory; :class:`ModelPathRefused` if not."""
        refused = ModelPathRefused(
            f"model paths must name a file or directory inside the agent's models directory {self.root}; "
            "upload the artifact (PUT /v1/models/upload) or copy it there"
        )
        if "\x00" in name:
            raise refused
        p = Path(name)
        candidate = p if p.is_absolute() else self.root / p
        try:
            real = candidate.resolve()
            base = self.root.resolve()
        except (OSError, RuntimeError):
            raise refused from None
        if real == base or not real.is_relative_to(base) or real.is_relative_to(base / UPLOADS):
            raise refused
        return real

    def new_upload(self) -> tuple[Path, int]:
        """A fresh upload file (mode 0600) and its open descriptor."""
        path = self.uploads / f"upload-{secrets.token_hex(8)}.part"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        return path, fd
