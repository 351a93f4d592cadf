"""The bundled example experiments (``testbed/data/examples/``): list them and copy one out to edit.

Each example is a TOML experiment whose every key is commented; files it names (a DVFS trace) sit beside it
and are copied with it. The first comment line of a file is its summary.

Failure modes: :class:`~devices.errors.BadInputError` for an unknown name or an existing destination file.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import tomllib

from devices.errors import BadInputError

EXAMPLES_DIR = Path(__file__).resolve().parent / "data" / "examples"


@dataclass(frozen=True)
class Example:
    """One bundled experiment: its name (file stem), path, summary line, mode and the files it needs."""

    name: str
    path: Path
    summary: str
    mode: str
    companions: tuple[Path, ...]


def _companions(path: Path, data: dict[str, object]) -> tuple[Path, ...]:
    """Bundled files beside the example that it names (a policy trace, a request trace)."""
    out = []
    for section in ("policy", "requests"):
        part = data.get(section)
        trace = part.get("trace") if isinstance(part, dict) else None
        if isinstance(trace, str) and (path.parent / trace).is_file():
            out.append(path.parent / trace)
    return tuple(out)


def list_examples() -> list[Example]:
    """Every bundled example, sorted by name."""
    found = []
    for path in sorted(EXAMPLES_DIR.glob("*.toml")):
        text = path.read_text(encoding="utf-8")
        first = next((ln for ln in text.splitlines() if ln.startswith("#")), "# (no description)")
        data = tomllib.loads(text)
        found.append(Example(path.stem, path, first.lstrip("# ").strip(), str(data.get("mode", "sim")),
                             _companions(path, data)))  # fmt: skip
    return found


def get_example(name: str) -> Example:
    """The example called ``name`` (with or without ``.toml``)."""
    stem = name.removesuffix(".toml")
    for ex in list_examples():
        if ex.name == stem:
            return ex
    known = ", ".join(e.name for e in list_examples())
    raise BadInputError(f"unknown example {name!r}; bundled examples: {known}")


def copy_example(name: str, out_dir: Path, force: bool = False) -> list[Path]:
    """Copy the example and its companion files into ``out_dir`` (created); returns the files written.

    Nothing is written when a destination file exists and ``force`` is not set.
    """
    ex = get_example(name)
    sources = (ex.path, *ex.companions)
    targets = [out_dir / s.name for s in sources]
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: exists and is not a directory")
    clash = [t for t in targets if t.exists()]
    if clash and not force:
        raise BadInputError(f"{clash[0]}: already exists; choose another --out or pass --force")
    out_dir.mkdir(parents=True, exist_ok=True)
    for s, t in zip(sources, targets, strict=True):
        shutil.copyfile(s, t)
    return targets
