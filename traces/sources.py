"""Source formats users have, by name, with content detection (``testbed trace convert|info --from``).

Each :class:`SourceFormat` says what it produces (a DVFS, battery or power trace), how sure it is that a
file is of its kind (:attr:`SourceFormat.sniff`, a score 0–1 from the first 64 KiB), and how to parse
one or more files with :class:`ParseOptions`. :func:`load` detects the format when none is named,
parses, and re-reads the result through the canonical reader (:func:`checked`), so a converted trace is
always one its reader accepts. The formats register themselves in :mod:`traces.parsers.registry`.

Failure modes: :class:`~devices.errors.ParseError` naming the file for a file no format matches (the
message lists the formats tried and the closest match), and whatever the chosen parser raises.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import traces.parsers.registry  # noqa: F401 - registers every format on import
from devices.errors import BadInputError, ParseError
from traces.battery import BatteryTrace, battery_text, read_battery
from traces.dvfs import DvfsTrace, dvfs_text, read_dvfs
from traces.power import power_text, read_power
from traces.source_types import SOURCES, ParseOptions, SourceFormat, Trace, register

__all__ = ["SOURCES", "ParseOptions", "SourceFormat", "Trace", "checked", "detect", "get_source", "load", "register"]
#: How much of a file the detectors see.
HEAD_BYTES = 65536
#: A detector score at or above this accepts the file.
ACCEPT = 0.5


def source_names() -> list[str]:
    return list(SOURCES)


def get_source(name: str) -> SourceFormat:
    """The format called ``name``; :class:`BadInputError` listing the known names otherwise."""
    return SOURCES.get(name)


def read_head(path: str | os.PathLike[str]) -> bytes:
    """The first :data:`HEAD_BYTES` of ``path``; :class:`ParseError` if it cannot be read."""
    p = Path(path)
    try:
        with open(p, "rb") as fh:
            return fh.read(HEAD_BYTES)
    except FileNotFoundError:
        raise ParseError(p, None, "file not found") from None
    except IsADirectoryError:
        raise ParseError(p, None, "is a directory, expected a file") from None
    except OSError as exc:
        raise ParseError(p, None, f"cannot read: {exc.strerror or exc}") from None


def scores(head: bytes) -> list[tuple[float, str]]:
    """Every format's score for a file starting with ``head``, best first."""
    out = []
    for name in SOURCES:
        try:
            score = SOURCES.get(name).sniff(head)
        except Exception:  # a detector never decides for or against by crashing
            score = 0.0
        out.append((score, name))
    return sorted(out, key=lambda sn: -sn[0])


def detect(path: str | os.PathLike[str]) -> SourceFormat:
    """The format of the file at ``path`` from its content.

    Raises :class:`ParseError` (naming the file, the formats tried and the closest match) when no
    detector accepts it.
    """
    head = read_head(path)
    ranked = scores(head)
    best, name = ranked[0]
    if best >= ACCEPT:
        return SOURCES.get(name)
    tried = ", ".join(n for _, n in sorted(ranked, key=lambda sn: sn[1]))
    hint = (
        f"closest match: {name} (give --from {name} to see why it does not parse)"
        if best > 0
        else ("nothing came close")
    )
    raise ParseError(path, None, f"matches no known trace format (tried {tried}); {hint}")


def checked(trace: Trace, source: str | os.PathLike[str]) -> Trace:
    """``trace`` after rendering it as canonical CSV and reading that back with the format's reader.

    Raises :class:`ParseError` naming ``source`` when the reader rejects what the parser produced, so no
    conversion ever writes a file its own reader refuses.
    """
    try:
        if isinstance(trace, DvfsTrace):
            read_dvfs("<converted>", text=dvfs_text(trace))
        elif isinstance(trace, BatteryTrace):
            read_battery("<converted>", text=battery_text(trace))
        else:
            read_power("<converted>", text=power_text(trace))
    except ParseError as exc:
        raise ParseError(source, None, f"the converted trace would be invalid: {exc.problem}") from None
    return trace


def load(
    paths: Sequence[str | os.PathLike[str]], source: str | None = None, options: ParseOptions | None = None
) -> tuple[SourceFormat, Trace]:
    """Parse ``paths`` as ``source`` (detected from the first file when ``None``) into a checked trace.

    Raises :class:`BadInputError` for no files or more files than the format takes, :class:`ParseError`
    for a file no format matches and for everything the parser rejects.
    """
    if not paths:
        raise BadInputError("no input file given")
    fmt = get_source(source) if source is not None else detect(paths[0])
    if len(paths) > fmt.max_files:
        raise BadInputError(
            f"--from {fmt.name} takes {fmt.max_files} file{'s' if fmt.max_files > 1 else ''}, got {len(paths)}"
        )
    files = [Path(p) for p in paths]
    trace = fmt.parse(files, options or ParseOptions())
    return fmt, checked(trace, files[0])
