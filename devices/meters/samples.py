"""Timestamped power samples, a bounded thread-safe buffer, and the sample CSV format.

A :class:`Sample` is one reading of a meter: ``t_ns`` is the host's ``time.monotonic_ns()`` (or the
injected clock) at the moment the reading was taken, ``power_w`` the power in watts, and — where the
meter reports them — ``voltage_v`` (V), ``current_a`` (A) and ``energy_j``, a cumulative energy counter
in joules (already unwrapped by the meter, origin arbitrary, never decreasing while the meter runs).

Sample CSV (written by ``testbed meter read --csv`` and read by ``replay://``): ``# key=value`` comment
lines (several per line separated by ``;``), a header, then one row per sample::

    # meter=um25c:///dev/rfcomm0; semantics=linear
    t_s,monotonic_ns,power_w,voltage_v,current_a,energy_j
    0.000000,1234567890,4.8210,5.0710,0.9507,
    ...

``t_s`` is seconds since the first sample and ``monotonic_ns`` the sampling host's monotonic clock;
empty cells mean "not reported"; ``semantics=linear`` says power is linear between samples (what the
integration assumes). Only ``power_w`` and one of ``t_s``/``monotonic_ns``/``t_ns`` are required when
reading; columns are found by name, in any order, so a battery trace (``t_s,voltage_v,current_a,
power_w,…``) or a ``traces`` power trace (``# power_trace v1; semantics=zero_order_hold``) also reads,
and :func:`traces.power.read_power` reads this format. Bad input raises
:class:`~devices.errors.ParseError` naming the file, the line and the problem.
"""

from __future__ import annotations

import csv
import io
import itertools
import math
import threading
from collections import deque
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from devices.errors import BadInputError, ParseError

CSV_COLUMNS = ("t_s", "monotonic_ns", "power_w", "voltage_v", "current_a", "energy_j")
_NS_COLUMNS = ("monotonic_ns", "t_ns")


@dataclass(frozen=True, slots=True)
class Sample:
    """One meter reading. Units: ns, W, V, A, J (cumulative counter)."""

    t_ns: int
    power_w: float
    voltage_v: float | None = None
    current_a: float | None = None
    energy_j: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


class SampleBuffer:
    """A bounded FIFO of samples, safe to append from the sampler thread and read from others.

    When full the oldest samples are dropped and counted in :attr:`dropped`.
    """

    def __init__(self, maxlen: int = 200_000) -> None:
        if maxlen < 1:
            raise BadInputError(f"sample buffer size must be at least 1, got {maxlen}")
        self._items: deque[Sample] = deque(maxlen=maxlen)
        self._lock = threading.Lock()
        self.dropped = 0

    @property
    def maxlen(self) -> int:
        return self._items.maxlen or 0

    def append(self, sample: Sample) -> None:
        with self._lock:
            if len(self._items) == self._items.maxlen:
                self.dropped += 1
            self._items.append(sample)

    def snapshot(self) -> list[Sample]:
        """A copy of the buffered samples, oldest first."""
        with self._lock:
            return list(self._items)

    def since(self, t_ns: int | None, limit: int) -> list[Sample]:
        """The first ``limit`` samples later than ``t_ns`` (all when None), oldest first; walks back from the
        newest end, so asking for recent samples costs what it returns, not the buffer's length."""
        with self._lock:
            if t_ns is None:
                return list(itertools.islice(self._items, limit))
            newer: list[Sample] = []
            for s in reversed(self._items):
                if s.t_ns <= t_ns:
                    break
                newer.append(s)
        newer.reverse()
        return newer[:limit]

    def latest(self) -> Sample | None:
        with self._lock:
            return self._items[-1] if self._items else None

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)


def _cell(x: float | int | None, fmt: str) -> str:
    return "" if x is None else format(x, fmt)


def write_samples_csv(path: str | Path, samples: Iterable[Sample], meta: dict[str, str] | None = None) -> int:
    """Write samples in the sample CSV format; returns the number of rows written."""
    rows = 0
    p = Path(path)
    with open(p, "w", encoding="utf-8", newline="") as fh:
        for k, v in ({"semantics": "linear"} | (meta or {})).items():
            fh.write(f"# {k}={v}\n")
        fh.write(",".join(CSV_COLUMNS) + "\n")
        t0: int | None = None
        for s in samples:
            if t0 is None:
                t0 = s.t_ns
            fh.write(
                f"{(s.t_ns - t0) / 1e9:.6f},{s.t_ns},{s.power_w:.6f},{_cell(s.voltage_v, '.6f')},"
                f"{_cell(s.current_a, '.6f')},{_cell(s.energy_j, '.6f')}\n"
            )
            rows += 1
    return rows


def _float(text: str, path: object, line: int, column: str) -> float | None:
    text = text.strip()
    if text == "":
        return None
    try:
        value = float(text)
    except ValueError:
        raise ParseError(path, line, f"column {column}: {text!r} is not a number") from None
    if not math.isfinite(value):
        raise ParseError(path, line, f"column {column}: {text!r} is not a finite number")
    return value


def parse_samples_csv(text: str, path: object = "<samples>") -> tuple[list[Sample], dict[str, str]]:
    """Parse sample CSV text into samples (time-ordered) and the ``# key=value`` metadata.

    ``monotonic_ns`` (or ``t_ns``) is used when present, else ``t_s`` (converted to ns). Raises
    :class:`ParseError` on a missing header or column, a non-numeric cell, or time going backwards.
    """
    meta: dict[str, str] = {}
    samples: list[Sample] = []
    header: list[str] | None = None
    idx: dict[str, int] = {}
    ns_col: str | None = None
    last_t: int | None = None
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ParseError(path, None, f"not a CSV file: {exc}") from None
    for lineno, row in enumerate(rows, start=1):
        if not row or all(not c.strip() for c in row):
            continue
        if row[0].lstrip().startswith("#"):
            body = ",".join(row).lstrip()[1:].strip()
            for item in body.split(";"):
                if "=" in item:
                    k, v = item.split("=", 1)
                    meta[k.strip()] = v.strip()
            continue
        if header is None:
            header = [c.strip() for c in row]
            idx = {name: i for i, name in enumerate(header)}
            if "power_w" not in idx:
                raise ParseError(path, lineno, f"header has no power_w column (found: {', '.join(header)})")
            ns_col = next((c for c in _NS_COLUMNS if c in idx), None)
            if ns_col is None and "t_s" not in idx:
                raise ParseError(path, lineno, "header has neither a t_s nor a monotonic_ns column")
            continue
        if len(row) != len(header):
            raise ParseError(path, lineno, f"expected {len(header)} fields, found {len(row)}")

        def get(name: str, row: list[str] = row, lineno: int = lineno, idx: dict[str, int] = idx) -> float | None:
            i = idx.get(name)
            return None if i is None else _float(row[i], path, lineno, name)

        power = get("power_w")
        if power is None:
            raise ParseError(path, lineno, "power_w is empty")
        if ns_col is not None:
            cell = row[idx[ns_col]].strip()
            try:
                t_ns = int(cell)
            except ValueError:
                raise ParseError(path, lineno, f"column {ns_col}: {cell!r} is not an integer") from None
        else:
            t_s = get("t_s")
            if t_s is None:
                raise ParseError(path, lineno, "t_s is empty")
            t_ns = round(t_s * 1e9)
        if last_t is not None and t_ns < last_t:
            raise ParseError(path, lineno, "time goes backwards")
        last_t = t_ns
        samples.append(
            Sample(t_ns, power, voltage_v=get("voltage_v"), current_a=get("current_a"), energy_j=get("energy_j"))
        )
    if header is None:
        raise ParseError(path, None, "empty file: no header line")
    return samples, meta


def read_samples_csv(path: str | Path) -> tuple[list[Sample], dict[str, str]]:
    """Read a sample CSV file; see :func:`parse_samples_csv`."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise BadInputError(f"{p}: file not found") from None
    except IsADirectoryError:
        raise BadInputError(f"{p}: is a directory, expected a CSV file") from None
    return parse_samples_csv(text, p)
