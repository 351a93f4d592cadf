"""The power trace format: ``t_s,power_w``, zero-order hold — the load a battery model replays.

::

    # power_trace v1; semantics=zero_order_hold; duration_s=3600; source=synthetic
    t_s,power_w
    0,1.25
    0.5,3.10

Each value holds until the next row. The trace lasts ``duration_s`` (header or trailing comment) if
given, else until the last row plus the interval before it (a single row without ``duration_s`` is a
constant load). Time is in seconds from 0, strictly increasing; power is a load (≥ 0 W).
``power_mw``/``t_ms`` and the other units of :mod:`traces.units` are converted at load.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np

from devices.errors import BadInputError, ParseError
from traces.battery import BatteryTrace
from traces.csvio import check_time, format_number, parse_number, read_table, require_column, rows_text, write_text

KIND = "power_trace"


@dataclass
class PowerTrace:
    """Times (s) and powers (W) as float arrays, and the period over which the trace repeats."""

    t_s: np.ndarray
    power_w: np.ndarray
    duration_s: float | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.t_s = np.asarray(self.t_s, dtype=float)
        self.power_w = np.asarray(self.power_w, dtype=float)
        if self.t_s.shape != self.power_w.shape or self.t_s.ndim != 1 or len(self.t_s) == 0:
            raise BadInputError("a power trace needs equal-length, non-empty t_s and power_w")
        if not (np.all(np.isfinite(self.t_s)) and np.all(np.isfinite(self.power_w))):
            raise BadInputError("a power trace must not hold NaN or infinite values")
        if self.t_s[0] != 0.0 or np.any(np.diff(self.t_s) <= 0):
            raise BadInputError("power trace times must start at 0 and increase strictly")
        if np.any(self.power_w < 0):
            raise BadInputError("power trace values must be ≥ 0 W (a load)")

    @property
    def period_s(self) -> float:
        """How long one pass of the trace lasts (``inf`` for a single row without a duration)."""
        if self.duration_s is not None:
            return self.duration_s
        if len(self.t_s) == 1:
            return float("inf")
        return float(self.t_s[-1] + (self.t_s[-1] - self.t_s[-2]))

    def segments(self) -> tuple[np.ndarray, np.ndarray]:
        """``(dt_s, power_w)`` of each hold segment of one pass (``dt`` is ``inf`` for a constant load)."""
        ends = np.append(self.t_s[1:], self.period_s)
        return ends - self.t_s, self.power_w

    def mean_power_w(self) -> float:
        """Time-weighted mean power over one pass."""
        dt, p = self.segments()
        if not np.isfinite(dt[-1]):
            return float(p[-1])
        return float(np.sum(dt * p) / np.sum(dt))

    def energy_j(self) -> float:
        """Energy of one pass (``inf`` for a constant load)."""
        dt, p = self.segments()
        return float(np.sum(dt * p))


def constant_power(power_w: float) -> PowerTrace:
    """A constant load of ``power_w`` watts."""
    return PowerTrace(np.array([0.0]), np.array([float(power_w)]), None, {"source": "constant"})


def power_from_battery(trace: BatteryTrace) -> PowerTrace:
    """The load of a recorded discharge as a power trace (``power_w``, else V·I; rows with neither are
    skipped), times rebased to 0, to be replayed by a battery model.

    Raises :class:`BadInputError` naming the time of the first charging row (negative power is not a
    load) and when fewer than one row has a known power.
    """
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is reported below as not finite
        p = np.where(np.isnan(trace.power_w), trace.voltage_v * trace.current_a, trace.power_w)
    ok = ~np.isnan(p)
    if not ok.any():
        raise BadInputError("the battery trace has no row with a known power (power_w or voltage and current)")
    t, p = trace.t_s[ok], p[ok]
    neg = np.flatnonzero(p < 0)
    if len(neg):
        raise BadInputError(
            f"the battery charges at t_s={t[neg[0]]:g} (power {p[neg[0]]:g} W): a load cannot be negative; "
            "convert only the discharge part"
        )
    meta = {"source": f"battery_trace:{trace.meta.get('source', '?')}"}
    return PowerTrace(t - t[0], p, None, meta)


def read_power(path: str | os.PathLike[str], text: str | None = None) -> PowerTrace:
    """Load and validate a power trace CSV (``text`` when given, else the file at ``path``).

    Raises :class:`ParseError` for missing columns, unknown units, NaN/non-numeric values, negative or
    non-increasing time, a first row not at t=0, negative power, or a ``duration_s`` not after the last row.
    """
    table = read_table(path, text)
    name = table.path
    if table.kind not in (None, KIND):
        raise ParseError(name, 1, f"this is a {table.kind} file, not a {KIND}")
    ti, tf = require_column(table, "t")
    pi, pf = require_column(table, "power")
    if not table.rows:
        raise ParseError(name, table.header_line, "no data rows")
    times: list[float] = []
    powers: list[float] = []
    for row, line in zip(table.rows, table.lines, strict=True):
        t = parse_number(row[ti], name, line, table.columns[ti]) * tf
        p = parse_number(row[pi], name, line, table.columns[pi]) * pf
        if p < 0:
            raise ParseError(name, line, f"negative power {row[pi].strip()} (a power trace is a load, ≥ 0)")
        times.append(t)
        powers.append(p)
    check_time(times, table.lines, name, strict=True)
    if times[0] != 0.0:
        raise ParseError(name, table.lines[0], f"the first row must be at t_s=0, found {times[0]}")
    duration: float | None = None
    if "duration_s" in table.meta:
        dline = table.meta_lines.get("duration_s")
        duration = parse_number(table.meta["duration_s"], name, dline, "duration_s")
        if duration <= times[-1]:
            raise ParseError(name, dline, f"duration_s={duration} must be after the last row (t_s={times[-1]})")
    return PowerTrace(np.array(times), np.array(powers), duration, dict(table.meta))


def write_power(trace: PowerTrace, path: str | os.PathLike[str], source: str | None = None) -> None:
    """Write ``trace`` as a canonical power trace CSV."""
    write_text(path, power_text(trace, source))


def power_text(trace: PowerTrace, source: str | None = None) -> str:
    """The canonical CSV text of ``trace`` (what :func:`write_power` writes)."""
    items = [f"{KIND} v1", "semantics=zero_order_hold"]
    if trace.duration_s is not None:
        items.append(f"duration_s={format_number(trace.duration_s)}")
    items.extend(f"{k}={v}" for k, v in trace.meta.items() if k not in ("semantics", "duration_s"))
    if source is not None and "source" not in trace.meta:
        items.append(f"source={source}")
    rows = ([format_number(float(t)), format_number(float(p))] for t, p in zip(trace.t_s, trace.power_w, strict=True))
    return rows_text("; ".join(items), ["t_s", "power_w"], rows)
