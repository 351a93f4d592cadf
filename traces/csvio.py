"""Reading and writing the testbed's trace CSVs: header comments, line numbers, checked numbers.

A trace file is a CSV with ``#`` comment lines. The first comment names the format and its keys, e.g.
``# dvfs_trace v1; semantics=zero_order_hold; domains: policy0=cpu0-3``; items are separated by ``;``
and are ``kind vN``, ``key=value`` or ``key: value``. Comments may appear anywhere (a recorder appends
``# duration_s=…`` at the end); later keys override earlier ones.

Every problem raises :class:`~devices.errors.ParseError` naming the file, the line and what is wrong.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from devices.errors import BadInputError, ParseError
from traces.units import CANONICAL, UnknownUnitError, factor, split_column


@dataclass
class Table:
    """A parsed trace CSV: header keys, column names and the data rows with their line numbers."""

    path: str
    kind: str | None
    version: str | None
    meta: dict[str, str]
    columns: list[str]
    rows: list[list[str]]
    lines: list[int]
    header_line: int
    meta_lines: dict[str, int] = field(default_factory=dict)

    def index(self, name: str) -> int | None:
        """Position of column ``name`` (case-insensitive), or ``None``."""
        low = [c.lower() for c in self.columns]
        return low.index(name.lower()) if name.lower() in low else None


def read_text(path: str | os.PathLike[str]) -> str:
    """The text of ``path``; a missing or unreadable file is a :class:`ParseError` without a line."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise ParseError(p, None, "file not found") from None
    except IsADirectoryError:
        raise ParseError(p, None, "is a directory, expected a file") from None
    except PermissionError:
        raise ParseError(p, None, "permission denied") from None
    except OSError as exc:
        raise ParseError(p, None, f"cannot read: {exc.strerror or exc}") from None
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ParseError(p, line, "not UTF-8 text") from None


def parse_meta_comment(text: str) -> tuple[str | None, str | None, dict[str, str]]:
    """Split one comment (without ``#``) into ``(kind, version, {key: value})``."""
    kind: str | None = None
    version: str | None = None
    meta: dict[str, str] = {}
    for raw in text.split(";"):
        item = raw.strip()
        if not item:
            continue
        eq = item.find("=")
        colon = item.find(":")
        if colon != -1 and (eq == -1 or colon < eq):
            meta[item[:colon].strip().lower()] = item[colon + 1 :].strip()
        elif eq != -1:
            meta[item[:eq].strip().lower()] = item[eq + 1 :].strip()
        else:
            parts = item.split()
            if len(parts) == 2 and parts[1].lower().startswith("v") and parts[1][1:].isdigit():
                kind, version = parts[0].lower(), parts[1][1:]
    return kind, version, meta


def read_table(path: str | os.PathLike[str], text: str | None = None) -> Table:
    """Parse a trace CSV (``text`` when given, else the file at ``path``).

    Raises :class:`ParseError` for an empty file, a row whose field count differs from the header,
    or a malformed CSV line.
    """
    name = str(path)
    if text is None:
        text = read_text(path)
    kind: str | None = None
    version: str | None = None
    meta: dict[str, str] = {}
    meta_lines: dict[str, int] = {}
    columns: list[str] | None = None
    header_line = 0
    rows: list[list[str]] = []
    lines: list[int] = []
    at = [0]  # number of the physical line the CSV reader is on

    def data_lines() -> Iterator[str]:
        """Non-blank, non-comment lines for the CSV reader; comments are read here, never as CSV."""
        nonlocal kind, version
        for number, line in enumerate(text.split("\n"), start=1):
            at[0] = number
            stripped = line.strip()
            if not stripped:
                continue
            if stripped.startswith("#"):
                k, v, m = parse_meta_comment(stripped[1:])
                if k is not None and kind is None:
                    kind, version = k, v
                for key in m:
                    meta_lines[key] = number
                meta.update(m)
                continue
            yield line.rstrip("\r")

    reader = csv.reader(data_lines(), strict=True)
    try:
        for fields in reader:
            lineno = at[0]
            if columns is None:
                columns = [f.strip() for f in fields]
                header_line = lineno
                if len({c.lower() for c in columns}) != len(columns):
                    raise ParseError(name, lineno, f"duplicate column names in header {columns}")
                continue
            if len(fields) != len(columns):
                raise ParseError(
                    name, lineno, f"expected {len(columns)} fields ({','.join(columns)}), found {len(fields)}"
                )
            rows.append(fields)
            lines.append(lineno)
    except csv.Error as exc:
        raise ParseError(name, at[0] or None, f"malformed CSV: {exc}") from None
    if columns is None:
        raise ParseError(name, None, "no header line: the file is empty or holds only comments")
    return Table(name, kind, version, meta, columns, rows, lines, header_line, meta_lines)


def resolve_column(table: Table, quantity: str, *, required: bool = True) -> tuple[int, float] | None:
    """Find the column holding ``quantity`` in any known unit: ``(index, factor to canonical)``.

    Raises :class:`ParseError` (at the header line) when the quantity is present in an unknown unit,
    or, if ``required``, when no column holds it.
    """
    found: tuple[int, float] | None = None
    for i, col in enumerate(table.columns):
        try:
            parsed = split_column(col)
        except UnknownUnitError as exc:
            if col.lower().partition("_")[0] == quantity or col.lower() == quantity:
                raise ParseError(table.path, table.header_line, str(exc)) from None
            continue
        if parsed is None or parsed[0] != quantity:
            continue
        if found is not None:
            raise ParseError(table.path, table.header_line, f"two columns hold {quantity}: {table.columns}")
        found = (i, factor(*parsed))
    if found is None and required:
        raise ParseError(
            table.path,
            table.header_line,
            f"missing column {CANONICAL.get(quantity, quantity)!r} (header has {','.join(table.columns)})",
        )
    return found


def require_column(table: Table, quantity: str) -> tuple[int, float]:
    """Like :func:`resolve_column` with ``required=True``: ``(index, factor)`` or :class:`ParseError`."""
    found = resolve_column(table, quantity, required=True)
    assert found is not None
    return found


def parse_number(text: str, path: str, line: int | None, column: str, *, allow_empty: bool = False) -> float:
    """A finite float from a CSV field; empty → NaN only if ``allow_empty``.

    Raises :class:`ParseError` for text that is not a number, NaN or infinity.
    """
    s = text.strip()
    if not s:
        if allow_empty:
            return math.nan
        raise ParseError(path, line, f"empty value in column {column!r}")
    try:
        value = float(s)
    except ValueError:
        raise ParseError(path, line, f"not a number in column {column!r}: {s[:40]!r}") from None
    if math.isnan(value):
        raise ParseError(path, line, f"NaN in column {column!r}")
    if math.isinf(value):
        raise ParseError(path, line, f"infinite value in column {column!r}")
    return value


#: Times in trace files are written to the microsecond; two rows closer than that are one instant.
TIME_DIGITS = 6


def check_time(values: Sequence[float], lines: Sequence[int], path: str, *, strict: bool) -> None:
    """Times must be ≥ 0 and non-decreasing (``strict``: increasing) at the microsecond the files are
    written with; else :class:`ParseError`."""
    prev = -math.inf
    for t, line in zip(values, lines, strict=True):
        if t < 0:
            raise ParseError(path, line, f"negative time t_s={t}")
        tr = round(t, TIME_DIGITS)
        if tr < prev or (strict and tr == prev):
            word = "increasing" if strict else "non-decreasing"
            raise ParseError(path, line, f"time is not {word} (to the µs): t_s={t} after t_s={prev}")
        prev = tr


def format_number(value: float, digits: int = 6) -> str:
    """Compact text for a float in a CSV (empty for NaN, integers without a decimal point)."""
    if math.isnan(value):
        return ""
    if math.isinf(value):
        return "inf" if value > 0 else "-inf"  # no reader accepts it: the caller's check reports the row
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return f"{value:.{digits}f}".rstrip("0").rstrip(".")


def rows_text(header: str, columns: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """``# header``, the column line and ``rows`` as CSV text (what :func:`write_rows` writes)."""
    buf = io.StringIO()
    buf.write(f"# {header}\n")
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows(rows)
    return buf.getvalue()


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path``; :class:`BadInputError` if it cannot be written (parent must exist)."""
    p = Path(path)
    try:
        with open(p, "w", encoding="utf-8", newline="") as fh:
            fh.write(text)
    except OSError as exc:
        raise BadInputError(f"{p}: cannot write: {exc.strerror or exc}") from None


def write_rows(
    path: str | os.PathLike[str], header: str, columns: Sequence[str], rows: Iterable[Sequence[str]]
) -> None:
    """Write ``# header``, the column line and ``rows`` to ``path`` (parent directories must exist)."""
    write_text(path, rows_text(header, columns, rows))
