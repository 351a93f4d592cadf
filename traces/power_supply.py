"""Linux ``power_supply`` attributes → canonical battery-trace values (for the log parser and recordings).

The live attribute reads are board-side (:class:`devices.record.SupplyRecorder`); this module only converts.

Units (``Documentation/ABI/testing/sysfs-class-power``): voltages µV, currents µA, power µW, charge µAh,
energy µWh, temperature 0.1 °C, ``capacity`` percent. The ABI says a negative ``current_now`` means
discharging, but many drivers (ACPI laptop batteries among them) report a positive current while
discharging; :data:`SIGN_RULES` chooses how to read the sign:

- ``kernel``: the ABI convention (negative = discharging);
- ``discharge_positive``: the driver reports discharge as positive;
- ``status``: the magnitude, signed by ``status`` (``Discharging`` → +, ``Charging`` → −; the ``kernel``
  rule otherwise).

Canonical values are SI with current and power discharge-positive; ``charge_ah``/``energy_wh`` are the
charge and energy *remaining* as the gauge reports them. ``power_now`` (on drivers that report power
instead of current) is taken as a magnitude, negative only while ``Charging``.
"""

from __future__ import annotations

import math

from traces.battery import MIN_VOLTAGE_V, voltage_problem

SIGN_RULES = ("kernel", "discharge_positive", "status")


def _num(attrs: dict[str, str], key: str) -> float | None:
    text = attrs.get(key)
    if text is None or text.strip() == "":
        return None
    try:
        v = float(text)
    except ValueError:
        raise ValueError(f"{key} is not a number: {text.strip()[:40]!r}") from None
    if math.isnan(v) or math.isinf(v):
        raise ValueError(f"{key} is not finite: {text.strip()!r}")
    return v


def _signed(raw: float, rule: str, status: str) -> float:
    if rule == "discharge_positive":
        return raw
    if rule == "status":
        st = status.lower()
        if st == "discharging":
            return abs(raw)
        if st == "charging":
            return -abs(raw)
    return -raw


def convert_attributes(attrs: dict[str, str], rule: str) -> tuple[dict[str, float], str]:
    """Canonical ``{voltage_v, current_a, power_w, soc, temp_c, charge_ah, energy_wh}`` (NaN when absent)
    and the status text, from raw ``power_supply`` attribute texts keyed by lower-case name.

    Raises :class:`ValueError` (the caller adds file and line) for a non-numeric value, an unknown
    sign rule, a non-positive voltage, or a capacity outside 0–100 %.
    """
    if rule not in SIGN_RULES:
        raise ValueError(f"unknown current sign rule {rule!r}; use one of {', '.join(SIGN_RULES)}")
    status = (attrs.get("status") or "").strip()
    nan = math.nan
    uv = _num(attrs, "voltage_now")
    ua = _num(attrs, "current_now")
    uw = _num(attrs, "power_now")
    cap = _num(attrs, "capacity")
    temp = _num(attrs, "temp")
    charge = _num(attrs, "charge_now")
    charge_full = _num(attrs, "charge_full")
    energy = _num(attrs, "energy_now")
    energy_full = _num(attrs, "energy_full")
    voltage_v = uv * 1e-6 if uv is not None else nan
    if uv is not None and uv <= 0:
        raise ValueError(f"voltage_now must be positive, got {uv:g} µV")
    if voltage_problem(voltage_v) is not None:
        raise ValueError(f"voltage_now {uv:g} µV is below {MIN_VOLTAGE_V * 1e6:g} µV: not a battery voltage")
    current_a = _signed(ua * 1e-6, rule, status) if ua is not None else nan
    if ua is not None and not math.isnan(voltage_v):
        power_w = voltage_v * current_a
    elif uw is not None:
        # power_now is a magnitude on the drivers that have it; the status gives the direction
        power_w = -abs(uw) * 1e-6 if status.lower() == "charging" else abs(uw) * 1e-6
        if ua is None and not math.isnan(voltage_v):
            current_a = power_w / voltage_v
    else:
        power_w = nan
    if cap is not None:
        if not 0.0 <= cap <= 100.0:
            raise ValueError(f"capacity {cap:g} % is outside 0–100")
        soc = cap / 100.0
    elif energy is not None and energy_full:
        soc = min(max(energy / energy_full, 0.0), 1.0)
    elif charge is not None and charge_full:
        soc = min(max(charge / charge_full, 0.0), 1.0)
    else:
        soc = nan
    values = {
        "voltage_v": voltage_v,
        "current_a": current_a,
        "power_w": power_w,
        "soc": soc,
        "temp_c": temp / 10.0 if temp is not None else nan,
        "charge_ah": charge * 1e-6 if charge is not None else nan,
        "energy_wh": energy * 1e-6 if energy is not None else nan,
    }
    return values, status


def detect_sign_rule(samples: list[dict[str, str]]) -> str:
    """``kernel`` or ``discharge_positive`` from the samples whose status is ``Discharging``.

    Falls back to ``kernel`` (the ABI) when no sample is discharging with a nonzero current; raises
    :class:`ValueError` when discharging samples show both signs.
    """
    signs: set[int] = set()
    for attrs in samples:
        if (attrs.get("status") or "").strip().lower() != "discharging":
            continue
        v = _num(attrs, "current_now")
        if v is not None and v != 0:
            signs.add(1 if v > 0 else -1)
    if signs == {1, -1}:
        raise ValueError("discharging samples report both positive and negative current; pass the sign rule")
    if signs == {1}:
        return "discharge_positive"
    return "kernel"
