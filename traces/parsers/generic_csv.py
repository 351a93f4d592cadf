"""Any CSV with a column map → battery or power trace.

The map names, for each canonical column, the source column and optionally its unit::

    t_s=Test_Time (s),voltage_v=Voltage (V),current_a=Current (A):A,temp_c=Cell_Temperature (C)
    t_s=time:ms,power_w=P:mW

Units come from :mod:`traces.units` (``s ms us min h``, ``V mV uV``, ``A mA uA``, ``W mW uW``,
``C dC``, ``Wh mWh J``, ``Ah mAh``, ``pct`` for a state of charge in percent); without one the
canonical unit is assumed. The source's current sign must be stated (``charge_positive`` for
BatteryArchive-style files). For a battery trace, a missing ``power_w`` is computed as V·I, a missing
``current_a`` as P/V; other missing columns stay empty. Times are rebased so the first row is at 0.
"""

from __future__ import annotations

import math
import os

import numpy as np

from devices.errors import BadInputError, ParseError
from traces.battery import SIGNS, BatteryTrace, voltage_problem
from traces.csvio import parse_number, read_table
from traces.power import PowerTrace
from traces.units import CANONICAL, UnknownUnitError, factor

_QUANTITY = {v: k for k, v in CANONICAL.items()}
KINDS = ("battery", "power")


def parse_column_map(text: str) -> dict[str, tuple[str, float]]:
    """``"t_s=Time:ms,power_w=P"`` → ``{"t_s": ("Time", 1e-3), "power_w": ("P", 1.0)}``.

    Raises :class:`BadInputError` for an unknown canonical name, an unknown unit or a malformed item.
    """
    out: dict[str, tuple[str, float]] = {}
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, rest = item.partition("=")
        key = key.strip()
        if not sep or not rest.strip():
            raise BadInputError(f"column map item {item.strip()!r} is not 'canonical=source[:unit]'")
        if key not in _QUANTITY:
            raise BadInputError(f"unknown canonical column {key!r}; use one of {', '.join(_QUANTITY)}")
        source, _, unit = rest.rpartition(":") if ":" in rest else (rest, "", "")
        source = source.strip()
        unit = unit.strip()
        quantity = _QUANTITY[key]
        if unit:
            try:
                f = factor(quantity, unit.lower())
            except UnknownUnitError as exc:
                raise BadInputError(f"column map {key}: {exc}") from None
        else:
            f = 1.0
        out[key] = (source, f)
    if "t_s" not in out:
        raise BadInputError("the column map must name the time column (t_s=…)")
    return out


def parse_generic_csv(
    path: str | os.PathLike[str],
    column_map: str,
    kind: str = "battery",
    sign: str = "discharge_positive",
    text: str | None = None,
) -> BatteryTrace | PowerTrace:
    """Read a CSV through a column map into a battery (``kind="battery"``) or power trace.

    Raises :class:`BadInputError` for a bad map, kind or sign; :class:`ParseError` for a mapped column
    the file lacks, NaN or non-numeric values, non-increasing time, or (power) a negative load.
    """
    if kind not in KINDS:
        raise BadInputError(f"unknown trace kind {kind!r}; use one of {', '.join(KINDS)}")
    if sign not in SIGNS:
        raise BadInputError(f"unknown current sign {sign!r}; use one of {', '.join(SIGNS)}")
    cmap = parse_column_map(column_map)
    table = read_table(path, text)
    name = table.path
    idx: dict[str, tuple[int, float]] = {}
    for key, (source, f) in cmap.items():
        i = table.index(source)
        if i is None:
            raise ParseError(
                name, table.header_line, f"mapped column {source!r} (for {key}) is not in the header {table.columns}"
            )
        idx[key] = (i, f)
    if kind == "power" and "power_w" not in idx:
        raise BadInputError("a power trace needs power_w=… in the column map")
    if not table.rows:
        raise ParseError(name, table.header_line, "no data rows")
    data: dict[str, list[float]] = {k: [] for k in idx}
    for row, line in zip(table.rows, table.lines, strict=True):
        for key, (i, f) in idx.items():
            data[key].append(parse_number(row[i], name, line, table.columns[i], allow_empty=key != "t_s") * f)
    t = np.round(np.array(data["t_s"]) - data["t_s"][0], 6)
    _check_increasing(list(t), table.lines, name)
    n = len(t)
    flip = -1.0 if sign == "charge_positive" else 1.0
    if kind == "power":
        p = np.array(data["power_w"]) * flip
        for k, v in enumerate(p):
            if math.isnan(v) or v < 0:
                raise ParseError(name, table.lines[k], f"power must be a load ≥ 0 W, got {v}")
        return PowerTrace(t, p, None, {"source": f"csv:{os.path.basename(name)}"})

    def col(key: str) -> np.ndarray:
        return np.array(data[key]) if key in data else np.full(n, np.nan)

    v, i_a, p_w = col("voltage_v"), col("current_a") * flip, col("power_w") * flip
    for k, volts in enumerate(v):
        problem = voltage_problem(float(volts))
        if problem is not None:
            raise ParseError(name, table.lines[k], problem)
    with np.errstate(over="ignore", invalid="ignore"):
        p_w = np.where(np.isnan(p_w), v * i_a, p_w)
        i_a = np.where(np.isnan(i_a), p_w / v, i_a)
    over = np.flatnonzero(np.isinf(p_w) | np.isinf(i_a))
    if len(over):
        raise ParseError(name, table.lines[int(over[0])], "voltage × current overflows: a value is far out of range")
    soc = col("soc")
    bad = np.flatnonzero((soc < 0) | (soc > 1))
    if len(bad):
        raise ParseError(
            name, table.lines[bad[0]], f"soc {soc[bad[0]]} is outside 0–1 (map a percent column with :pct)"
        )
    meta = {"source": f"csv:{os.path.basename(name)}"}
    if sign != "discharge_positive":
        meta["source_current_sign"] = sign
    return BatteryTrace(
        t_s=t,
        voltage_v=v,
        current_a=i_a,
        power_w=p_w,
        soc=soc,
        temp_c=col("temp_c"),
        charge_ah=col("charge_ah") if "charge_ah" in data else None,
        energy_wh=col("energy_wh") if "energy_wh" in data else None,
        meta=meta,
    )


def _check_increasing(times: list[float], lines: list[int], name: str) -> None:
    for k in range(1, len(times)):
        if times[k] <= times[k - 1]:
            raise ParseError(name, lines[k], f"time is not increasing: {times[k]} after {times[k - 1]}")
