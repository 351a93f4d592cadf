"""Battery life for a load: the ECM or the ideal bucket, on a power trace or a constant power.

``simulate(cell, trace, model="ecm"|"bucket")`` is what ``testbed battery simulate`` runs. The bucket
drains the cell's open-circuit energy (``3600·Q·∫OCV dsoc`` from ``soc0`` to 0) by the battery power
``(P_load + P_static) / efficiency`` with no losses and no cut-off — the "capacity / average power"
baseline next to the ECM, in the spirit of RT3's accounting (:mod:`testbed.battery.bucket`).
"""

from __future__ import annotations

import itertools
import math

from devices.errors import BadInputError
from testbed.battery.bucket import bucket_life_s
from testbed.battery.cell import Cell
from testbed.battery.ecm import SimResult, simulate_ecm, steps_from_trace
from traces.power import PowerTrace

MODELS = ("ecm", "bucket")


def simulate_bucket(
    cell: Cell, trace: PowerTrace, *, soc0: float = 1.0, static_power_w: float = 0.0, efficiency: float = 1.0
) -> SimResult:
    """Life of an ideal energy bucket holding the cell's open-circuit energy from ``soc0`` to 0."""
    if not 0.0 < soc0 <= 1.0:
        raise BadInputError(f"initial SoC must be in (0, 1], got {soc0}")
    if not (0.0 < efficiency <= 1.0):
        raise BadInputError(f"converter efficiency must be in (0, 1], got {efficiency}")
    if not (static_power_w >= 0.0 and math.isfinite(static_power_w)):
        raise BadInputError(f"static power must be ≥ 0 W, got {static_power_w}")
    energy_j = cell.energy_j(soc0, 0.0)
    dts, powers = trace.segments()
    batt = [(float(p) + static_power_w) / efficiency for p in powers]
    if not math.isfinite(float(dts[-1])):  # constant load
        if batt[-1] <= 0:
            raise BadInputError("the load draws no power: the battery would never end")
        life = energy_j / batt[-1]
        load_j = life * float(powers[-1])
    else:
        seg_j = [float(dt) * p for dt, p in zip(dts, batt, strict=True)]
        cum = [0.0, *itertools.accumulate(seg_j)]
        times = [0.0, *itertools.accumulate(float(d) for d in dts)]
        life = bucket_life_s(energy_j, cum[-1], cum, times)
        load_j = _energy_until([float(d) for d in dts], [float(p) for p in powers], life)
    return SimResult(
        model="bucket",
        life_s=life,
        end_reason="empty",
        soc_end=0.0,
        energy_delivered_j=energy_j,
        load_energy_j=load_j,
        ohmic_loss_j=0.0,
        v_end_v=math.nan,
        steps=0,
        passes=life / trace.period_s if math.isfinite(trace.period_s) else math.nan,
    )


def _energy_until(dts: list[float], values: list[float], t_end: float) -> float:
    """∫ value dt from 0 to ``t_end`` for a load repeating with period Σdts (zero-order hold)."""
    period = math.fsum(dts)
    per_pass = math.fsum(d * v for d, v in zip(dts, values, strict=True))
    passes = math.floor(t_end / period)
    rest = t_end - passes * period
    total = passes * per_pass
    for d, v in zip(dts, values, strict=True):
        if rest <= 0:
            break
        take = min(d, rest)
        total += take * v
        rest -= take
    return total


def simulate(
    cell: Cell,
    trace: PowerTrace,
    *,
    model: str = "ecm",
    soc0: float = 1.0,
    static_power_w: float = 0.0,
    efficiency: float = 1.0,
    max_step_s: float = 1.0,
    record: bool = False,
) -> SimResult:
    """Battery life of ``cell`` under ``trace`` repeated until the end (see :mod:`testbed.battery.ecm`)."""
    if model == "bucket":
        return simulate_bucket(cell, trace, soc0=soc0, static_power_w=static_power_w, efficiency=efficiency)
    if model != "ecm":
        raise BadInputError(f"unknown battery model {model!r}; use one of {', '.join(MODELS)}")
    result = simulate_ecm(
        cell,
        steps_from_trace(trace, max_step_s),
        soc0=soc0,
        static_power_w=static_power_w,
        efficiency=efficiency,
        record=record,
    )
    result.passes = result.life_s / trace.period_s if math.isfinite(trace.period_s) else math.nan
    return result
