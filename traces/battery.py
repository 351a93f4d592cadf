"""The battery discharge trace format: ``t_s,voltage_v,current_a,power_w,soc,temp_c`` (+ optional columns).

::

    # battery_trace v1; current_sign=discharge_positive; source=sysfs; cell=BAT0
    t_s,voltage_v,current_a,power_w,soc,temp_c,charge_ah,energy_wh,status
    0,4.182,0.812,3.396,0.99,28.4,,,Discharging

The header must declare ``current_sign``: ``discharge_positive`` (current leaving the cell is
positive: the canonical form) or ``charge_positive`` (Linux ``power_supply`` and Android convention);
at load, current and power are normalised to discharge-positive. Empty cells mean "not measured" and
load as NaN; a literal ``nan`` is an error. ``soc`` is a fraction 0–1 (``soc_pct`` is converted).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import numpy as np

from devices.errors import ParseError
from traces.csvio import (
    Table,
    check_time,
    format_number,
    parse_number,
    read_table,
    require_column,
    resolve_column,
    rows_text,
    write_text,
)

KIND = "battery_trace"
SIGNS = ("discharge_positive", "charge_positive")
#: Canonical columns in order; the first six are required in every file.
COLUMNS = ("t_s", "voltage_v", "current_a", "power_w", "soc", "temp_c", "charge_ah", "energy_wh")
REQUIRED = ("t", "voltage", "current", "power", "soc", "temp")
OPTIONAL = ("charge", "energy")
#: The lowest terminal voltage a battery trace holds (1 mV): below it a value is a corrupt field, and it
#: would be written as 0 V, which no reader accepts.
MIN_VOLTAGE_V = 1e-3


@dataclass
class BatteryTrace:
    """Columns as float arrays (NaN = not measured), current and power discharge-positive."""

    t_s: np.ndarray
    voltage_v: np.ndarray
    current_a: np.ndarray
    power_w: np.ndarray
    soc: np.ndarray
    temp_c: np.ndarray
    charge_ah: np.ndarray | None = None
    energy_wh: np.ndarray | None = None
    status: list[str] | None = None
    meta: dict[str, str] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.t_s)

    def delivered_energy_j(self) -> float:
        """Trapezoidal ∫P dt over the rows where power is known (discharge positive)."""
        ok = ~np.isnan(self.power_w)
        if ok.sum() < 2:
            return 0.0
        t, p = self.t_s[ok], self.power_w[ok]
        return float(np.sum((p[1:] + p[:-1]) * 0.5 * np.diff(t)))


def _sign_of(table: Table) -> str:
    sign = table.meta.get("current_sign")
    line = table.meta_lines.get("current_sign", 1)
    if sign is None:
        raise ParseError(
            table.path,
            1,
            "the header does not declare current_sign; add '# battery_trace v1; current_sign=discharge_positive' "
            "(or charge_positive)",
        )
    if sign not in SIGNS:
        raise ParseError(table.path, line, f"unknown current_sign {sign!r}; use one of {', '.join(SIGNS)}")
    return sign


def voltage_problem(voltage_v: float) -> str | None:
    """Why ``voltage_v`` cannot be a terminal voltage of a battery trace (``None`` when it can or is NaN)."""
    if math.isnan(voltage_v) or voltage_v >= MIN_VOLTAGE_V:
        return None
    return f"voltage must be positive (≥ {MIN_VOLTAGE_V:g} V), got {voltage_v:g} V"


def read_battery(path: str | os.PathLike[str], text: str | None = None) -> BatteryTrace:
    """Load a battery trace CSV (``text`` when given, else the file at ``path``) and normalise the current
    sign to discharge-positive.

    Raises :class:`ParseError` for a missing ``current_sign``, a missing required column, an unknown
    unit, a value that is not a number or is NaN, negative or non-increasing time, voltage ≤ 0 or
    ``soc`` outside 0–1.
    """
    table = read_table(path, text)
    name = table.path
    if table.kind not in (None, KIND):
        raise ParseError(name, 1, f"this is a {table.kind} file, not a {KIND}")
    sign = _sign_of(table)
    cols = {q: require_column(table, q) for q in REQUIRED}
    opt = {q: resolve_column(table, q, required=False) for q in OPTIONAL}
    si = table.index("status")
    data: dict[str, list[float]] = {q: [] for q in (*REQUIRED, *OPTIONAL)}
    status: list[str] = []
    for row, line in zip(table.rows, table.lines, strict=True):
        for q, spec in [*cols.items(), *opt.items()]:
            if spec is None:
                continue
            i, f = spec
            v = parse_number(row[i], name, line, table.columns[i], allow_empty=q != "t") * f
            data[q].append(v)
        problem = voltage_problem(data["voltage"][-1])
        if problem is not None:
            raise ParseError(name, line, problem)
        soc = data["soc"][-1]
        if not math.isnan(soc) and not 0.0 <= soc <= 1.0:
            raise ParseError(name, line, f"soc {soc} is outside 0–1 (use a soc_pct column for percent)")
        if si is not None:
            status.append(row[si].strip())
    check_time(data["t"], table.lines, name, strict=True)
    flip = -1.0 if sign == "charge_positive" else 1.0
    meta = dict(table.meta)
    meta["current_sign"] = "discharge_positive"
    if sign != "discharge_positive":
        meta["source_current_sign"] = sign
    return BatteryTrace(
        t_s=np.array(data["t"]),
        voltage_v=np.array(data["voltage"]),
        current_a=np.array(data["current"]) * flip,
        power_w=np.array(data["power"]) * flip,
        soc=np.array(data["soc"]),
        temp_c=np.array(data["temp"]),
        charge_ah=np.array(data["charge"]) if opt["charge"] is not None else None,
        energy_wh=np.array(data["energy"]) if opt["energy"] is not None else None,
        status=status if si is not None else None,
        meta=meta,
    )


def battery_header(meta: dict[str, str]) -> str:
    """The header comment of a canonical battery trace (current discharge-positive)."""
    items = [f"{KIND} v1", "current_sign=discharge_positive"]
    items.extend(f"{k}={v}" for k, v in meta.items() if k != "current_sign")
    return "; ".join(items)


def battery_columns(trace: BatteryTrace) -> list[str]:
    cols = list(COLUMNS[:6])
    if trace.charge_ah is not None:
        cols.append("charge_ah")
    if trace.energy_wh is not None:
        cols.append("energy_wh")
    if trace.status is not None:
        cols.append("status")
    return cols


def battery_row(values: dict[str, float], status: str | None) -> list[str]:
    """One CSV row from canonical values (missing → empty cell)."""
    digits = {"t_s": 6, "voltage_v": 6, "current_a": 6, "power_w": 6, "soc": 4, "temp_c": 1}
    row = [format_number(values.get(c, math.nan), digits.get(c, 6)) for c in values]
    if status is not None:
        row.append(status)
    return row


def write_battery(trace: BatteryTrace, path: str | os.PathLike[str]) -> None:
    """Write ``trace`` as a canonical (discharge-positive) battery trace CSV."""
    write_text(path, battery_text(trace))


def battery_text(trace: BatteryTrace) -> str:
    """The canonical CSV text of ``trace`` (what :func:`write_battery` writes)."""
    cols = battery_columns(trace)
    rows = []
    for k in range(len(trace)):
        values = {
            "t_s": float(trace.t_s[k]),
            "voltage_v": float(trace.voltage_v[k]),
            "current_a": float(trace.current_a[k]),
            "power_w": float(trace.power_w[k]),
            "soc": float(trace.soc[k]),
            "temp_c": float(trace.temp_c[k]),
        }
        if trace.charge_ah is not None:
            values["charge_ah"] = float(trace.charge_ah[k])
        if trace.energy_wh is not None:
            values["energy_wh"] = float(trace.energy_wh[k])
        rows.append(battery_row(values, trace.status[k] if trace.status is not None else None))
    return rows_text(battery_header(trace.meta), cols, rows)
