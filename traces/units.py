"""Units the trace readers understand, and the factor that converts each to the canonical SI unit.

A column is named ``<quantity>_<unit>`` (``t_s``, ``power_mw``, ``freq_mhz``); the readers look up the
unit here and scale to the canonical unit of the quantity (seconds, watts, kHz, volts, amperes, °C,
watt-hours, ampere-hours, fraction). An unknown unit is an error, never a guess.
"""

from __future__ import annotations

#: quantity -> canonical unit -> (unit -> factor to canonical); ``soc`` has the bare name as its unit ``""``.
UNITS: dict[str, dict[str, float]] = {
    "t": {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9, "min": 60.0, "h": 3600.0},
    "power": {"w": 1.0, "mw": 1e-3, "uw": 1e-6, "kw": 1e3},
    "freq": {"khz": 1.0, "hz": 1e-3, "mhz": 1e3, "ghz": 1e6},
    "voltage": {"v": 1.0, "mv": 1e-3, "uv": 1e-6},
    "current": {"a": 1.0, "ma": 1e-3, "ua": 1e-6},
    "temp": {"c": 1.0, "dc": 0.1},
    "energy": {"wh": 1.0, "mwh": 1e-3, "uwh": 1e-6, "j": 1.0 / 3600.0, "kj": 1.0 / 3.6},
    "charge": {"ah": 1.0, "mah": 1e-3, "uah": 1e-6, "c": 1.0 / 3600.0},
    "soc": {"": 1.0, "pct": 0.01},
}

#: The canonical column name of each quantity.
CANONICAL: dict[str, str] = {
    "t": "t_s",
    "power": "power_w",
    "freq": "freq_khz",
    "voltage": "voltage_v",
    "current": "current_a",
    "temp": "temp_c",
    "energy": "energy_wh",
    "charge": "charge_ah",
    "soc": "soc",
}


class UnknownUnitError(ValueError):
    """A column names a known quantity with a unit this module does not know."""


def split_column(name: str) -> tuple[str, str] | None:
    """``"power_mw"`` → ``("power", "mw")``; ``"soc"`` → ``("soc", "")``; ``None`` for other names.

    Raises :class:`UnknownUnitError` when the quantity is known but the unit is not.
    """
    key = name.strip().lower()
    if key in UNITS:
        if "" in UNITS[key]:
            return key, ""
        raise UnknownUnitError(
            f"column {name!r} has no unit; use one of {', '.join(key + '_' + u for u in UNITS[key])}"
        )
    quantity, sep, unit = key.partition("_")
    if not sep or quantity not in UNITS:
        return None
    if unit not in UNITS[quantity]:
        known = ", ".join(u or "(none)" for u in UNITS[quantity])
        raise UnknownUnitError(f"unknown unit {unit!r} in column {name!r}; known units for {quantity}: {known}")
    return quantity, unit


def factor(quantity: str, unit: str) -> float:
    """The factor that converts ``unit`` of ``quantity`` to its canonical unit.

    Raises :class:`UnknownUnitError` for an unknown quantity or unit.
    """
    table = UNITS.get(quantity)
    if table is None or unit.lower() not in table:
        known = ", ".join(u or "(none)" for u in (table or {}))
        raise UnknownUnitError(f"unknown unit {unit!r} for {quantity}; known: {known or 'none'}")
    return table[unit.lower()]
