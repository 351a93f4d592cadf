"""Power-meter and power-analyser CSV exports → power trace: rd-usb (UM24C/25C/34C), Monsoon, Otii.

The columns are found by name and unit, as the tools write them:

- rd-usb's data export: ``Time,Voltage (V),Current (A),Power (W),Temperature (°C),Data+ (V),Data- (V),
  …,Accumulated power (mWh),…,Unix time,…`` (``kolinger/rd-usb`` ``utils/formatting.py``);
- Monsoon (PowerTool / PyMonsoon CSV output): ``Time(ms),Main(mA),Main Voltage(V)`` (+ ``USB(mA)`` …);
- Otii exports: ``Time [s]`` or ``Timestamp (s)`` with ``Main current [A]``/``Main voltage [V]`` or a
  ``Main power [W]`` column.

Time: a ``Unix time`` column wins over ``Time`` (a local date-time in rd-usb); units in ``()`` or ``[]``.
Power is the power column when there is one, else voltage × the main current. Rows with the same time
(a meter faster than its clock column) are averaged into one. Times are rebased to 0.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from devices.errors import ParseError
from traces.csvio import read_table
from traces.power import PowerTrace
from traces.timefmt import TimeReader

_UNIT = re.compile(r"[\(\[]\s*(?P<unit>[µu]?[mk]?(?:a|v|w|s|ms|us|µs|h))\s*[\)\]]")
_SCALE = {"": 1.0, "m": 1e-3, "u": 1e-6, "µ": 1e-6, "k": 1e3}
_MAX_POWER_W = 1e6


@dataclass(frozen=True)
class Column:
    index: int
    factor: float


def _unit(col: str) -> tuple[str, float] | None:
    """``"Main(mA)"`` → ``("a", 1e-3)``; ``None`` without a unit."""
    m = _UNIT.search(col.lower())
    if m is None:
        return None
    u = m.group("unit")
    if u in ("ms", "us", "µs"):
        return "s", _SCALE[u[0]]
    if u == "h":
        return "s", 3600.0
    prefix, base = u[:-1], u[-1]
    return base, _SCALE.get(prefix.replace("µ", "u"), math.nan)


def find_columns(columns: list[str]) -> dict[str, Column]:
    """The time, power, voltage and (main) current columns of a meter export, by name and unit."""
    found: dict[str, Column] = {}
    for i, col in enumerate(columns):
        low = col.strip().lower()
        unit = _unit(low)
        if low in ("unix time", "unix_time", "timestamp") or low.startswith("unix time"):
            found["unix"] = Column(i, 1.0)
            continue
        if unit is None:
            if low == "time":
                found.setdefault("clock", Column(i, 1.0))
            continue
        base, f = unit
        if any(w in low for w in ("accumulated", "zeroed", "zerod", "data+", "data-", "avg")) or not math.isfinite(f):
            continue
        if base == "s" and ("time" in low or low.startswith("t")):
            found.setdefault("time", Column(i, f))
        elif base == "w" and "power" in low:
            found.setdefault("power", Column(i, f))
        elif base == "v" and ("volt" in low):
            key = "voltage" if "main" in low or "voltage" not in found else "voltage_other"
            found.setdefault(key, Column(i, f))
        elif base == "a" and ("current" in low or "main" in low):
            if "main" in low:
                found["current"] = Column(i, f)
            else:
                found.setdefault("current", Column(i, f))
    return found


def parse_meter_csv(
    path: str | os.PathLike[str], tool: str = "meter", tz: str | None = None, text: str | None = None
) -> PowerTrace:
    """Read a meter export (see the module text) into a power trace.

    Raises :class:`ParseError` for a header without a time column or without power (or voltage and
    current), a value that is not a number, time going backwards, or a negative or absurd power.
    """
    table = read_table(path, text)
    name = table.path
    cols = find_columns(table.columns)
    tcol = cols.get("unix") or cols.get("time") or cols.get("clock")
    if tcol is None:
        raise ParseError(name, table.header_line, f"no time column (Time (s), Time(ms), Unix time) in {table.columns}")
    if "power" not in cols and not ("voltage" in cols and "current" in cols):
        raise ParseError(
            name, table.header_line, f"no power column and no voltage and current columns in {table.columns}"
        )
    if not table.rows:
        raise ParseError(name, table.header_line, "no data rows")
    reader = TimeReader(tz=tz)
    merged: list[tuple[float, float, int]] = []  # t, sum of power, count
    prev_t: float | None = None
    t_first: float | None = None
    for row, line in zip(table.rows, table.lines, strict=True):
        cells = {k: row[c.index].strip() for k, c in cols.items()}
        try:
            t = reader.seconds(cells["unix"] if "unix" in cols else cells["time" if "time" in cols else "clock"])
            if "time" in cols and "unix" not in cols:
                t = float(cells["time"]) * cols["time"].factor
            if "power" in cols:
                p = float(cells["power"]) * cols["power"].factor
            else:
                p = float(cells["voltage"]) * cols["voltage"].factor * float(cells["current"]) * cols["current"].factor
        except ValueError as exc:
            raise ParseError(name, line, f"not a number or time: {exc}") from None
        if not (math.isfinite(t) and math.isfinite(p)):
            raise ParseError(name, line, "value is not finite")
        if p < 0 or p > _MAX_POWER_W:
            raise ParseError(name, line, f"power {p:g} W is not a load this reader accepts (0–{_MAX_POWER_W:g} W)")
        if prev_t is not None and t < prev_t:
            raise ParseError(name, line, f"time goes backwards: {t:g} after {prev_t:g}")
        if t_first is None:
            t_first = t
        t_rel = round(t - t_first, 6)
        if merged and t_rel <= merged[-1][0]:
            last = merged[-1]
            merged[-1] = (last[0], last[1] + p, last[2] + 1)
        else:
            merged.append((t_rel, p, 1))
        prev_t = t
    times = [m[0] for m in merged]
    powers = [m[1] / m[2] for m in merged]
    meta = {"source": tool, "power": "power column" if "power" in cols else "voltage*current"}
    return PowerTrace(times, powers, None, meta)  # type: ignore[arg-type]
