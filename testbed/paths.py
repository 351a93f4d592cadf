"""The one rule that turns a file named in an input (an experiment file, a command line, a run's manifest) into a path.

A value is resolved against ``base_dir``, the directory of the file that names it (the working directory
for a command line):

- an absolute path stays as it is;
- a relative path (one with a directory part or a suffix, or one that exists under ``base_dir``) is
  ``base_dir / value``, made absolute; it need not exist yet — its loader names the missing file;
- a bare name (``rpi4``, ``nmc-18650``) of a kind the testbed bundles names the bundled file
  ``testbed/data/<kind>-<name><suffix>`` (:data:`PROFILE_TABLES`, :data:`CELLS`).

:func:`resolve_path` raises :class:`~devices.errors.BadInputError` (one line) for a bare name that is
neither a file under ``base_dir`` nor a bundled file of its kind.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from devices.errors import BadInputError


def data_dir() -> Path:
    """The directory of the testbed's bundled data files (``testbed/data``)."""
    return Path(str(resources.files("testbed") / "data"))


@dataclass(frozen=True)
class BundledKind:
    """A kind of bundled data file: ``testbed/data/<prefix>-<name><suffix>``, described as ``what``."""

    prefix: str
    suffix: str
    what: str

    def path(self, name: str) -> Path | None:
        """The bundled file called ``name``, or None when there is none."""
        p = data_dir() / f"{self.prefix}-{name}{self.suffix}"
        return p if p.is_file() else None

    def names(self) -> list[str]:
        """Names of the bundled files of this kind, sorted."""
        head, tail = f"{self.prefix}-", self.suffix
        found = (p.name for p in data_dir().iterdir() if p.name.startswith(head) and p.name.endswith(tail))
        return sorted(n[len(head) : len(n) - len(tail)] for n in found)


PROFILE_TABLES = BundledKind("profile", ".csv", "profile table")
CELLS = BundledKind("cell", ".toml", "cell")


def _is_bare(value: str) -> bool:
    return "/" not in value and os.sep not in value and not Path(value).suffix


def resolve_path(
    value: str | os.PathLike[str], base_dir: str | os.PathLike[str] = ".", bundled: BundledKind | None = None
) -> Path:
    """``value`` as an absolute path by the module's rule; bundled names of ``bundled``'s kind are looked up."""
    text = os.fspath(value)
    p = Path(text)
    if p.is_absolute():
        return p
    candidate = Path(os.path.abspath(Path(base_dir) / p))
    if candidate.exists() or not _is_bare(text) or bundled is None:
        return candidate
    found = bundled.path(text)
    if found is not None:
        return found
    names = ", ".join(bundled.names()) or "none"
    raise BadInputError(f"no {bundled.what} {text!r}: not a file in {base_dir} nor a bundled name (bundled: {names})")


def profile_table_path(value: str | os.PathLike[str], base_dir: str | os.PathLike[str] = ".") -> Path:
    """A profile table CSV by path or bundled name (``rpi4`` → ``testbed/data/profile-rpi4.csv``)."""
    return resolve_path(value, base_dir, PROFILE_TABLES)
