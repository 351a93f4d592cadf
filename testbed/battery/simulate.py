"""Battery life under a repeating load: any registered model, stepped until it ends.

``simulate(cell, trace, model="ecm"|"energy-bucket"|…)`` is what ``testbed battery simulate`` runs:
the power trace is cut into steps no longer than ``max_step_s`` (:func:`steps_from_trace`) and
:func:`run_load` steps the model (:mod:`testbed.battery.registry`) pass after pass until it ends.
The bucket models hold the cell's open-circuit energy (``3600·Q·∫OCV dsoc`` from ``soc0`` to 0) and
drain it by ``(P_load + P_static) / efficiency`` with no losses and no cut-off — the "capacity /
average power" baseline next to the ECM. :func:`simulate_ecm` drives the ECM by a :class:`Load` of
power or of current.

Failure modes: :class:`BadInputError` for bad parameters (:class:`~testbed.battery.model.BatteryParams`),
a negative load, or a load that draws nothing (the battery would never end).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

from devices.errors import BadInputError
from testbed.battery import registry
from testbed.battery.cell import Cell
from testbed.battery.ecm import EcmBattery
from testbed.battery.model import MAX_STEPS, BatteryModel, BatteryParams, Drive, Trajectory
from traces.power import PowerTrace


@dataclass
class SimResult:
    """Outcome of a battery simulation (SI units)."""

    model: str
    life_s: float
    end_reason: str
    soc_end: float
    energy_delivered_j: float
    load_energy_j: float
    ohmic_loss_j: float
    v_end_v: float
    steps: int
    passes: float
    trajectory: Trajectory | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, object]:
        d = asdict(self)
        d.pop("trajectory")
        for key, value in d.items():
            if isinstance(value, float) and not math.isfinite(value):
                d[key] = None  # JSON has no NaN
        d["life_h"] = self.life_s / 3600.0
        return d


@dataclass(frozen=True)
class Load:
    """One pass of a piecewise-constant load: step lengths (s) and values (W, or A in current mode).

    :func:`run_load` repeats the pass until the battery ends.
    """

    dt_s: tuple[float, ...]
    value: tuple[float, ...]


def steps_from_trace(trace: PowerTrace, max_step_s: float = 1.0) -> Load:
    """Split a power trace into steps no longer than ``max_step_s`` (a constant load → one step)."""
    if not (max_step_s > 0 and math.isfinite(max_step_s)):
        raise BadInputError(f"max_step_s must be a positive number, got {max_step_s}")
    dts, powers = trace.segments()
    if not math.isfinite(float(dts[-1])):  # a constant load: one step, repeated
        return Load((max_step_s,), (float(powers[-1]),))
    n = np.maximum(1, np.ceil(dts / max_step_s - 1e-9)).astype(np.int64)
    return Load(tuple(np.repeat(dts / n, n).tolist()), tuple(np.repeat(powers, n).tolist()))


def run_load(battery: BatteryModel, load: Load, name: str | None = None) -> SimResult:
    """Step ``battery`` through ``load``, pass after pass, until it ends; ``name`` labels the result.

    Raises :class:`BadInputError` for an empty or negative load, and when a whole pass draws nothing.
    """
    dts, values = load.dt_s, load.value
    if not dts or len(dts) != len(values):
        raise BadInputError("the load has no steps")
    if min(values) < 0.0:
        raise BadInputError("the load must not be negative (charging is not modelled)")
    n = len(dts)
    step = battery.step
    t = 0.0
    steps = 0
    k = 0
    while True:
        got = step(values[k], dts[k])
        t += got
        if battery.ended:
            if got > 0.0:  # it ended inside this step
                steps += 1
            break
        steps += 1
        k += 1
        if k == n:
            k = 0
            if battery.delivered_energy_j <= 0.0:
                raise BadInputError("the load draws no power: the battery would never end (it would last forever)")
        if steps >= MAX_STEPS:
            raise BadInputError(f"the battery did not end within {MAX_STEPS} steps; is the load tiny?")
    v_end = battery.end_voltage_v()
    return SimResult(
        model=name or battery.name,
        life_s=t,
        end_reason=battery.end_reason or "",
        soc_end=max(battery.soc, 0.0),
        energy_delivered_j=battery.delivered_energy_j,
        load_energy_j=battery.load_energy_j,
        ohmic_loss_j=battery.ohmic_loss_j,
        v_end_v=math.nan if v_end is None else v_end,
        steps=steps,
        passes=t / math.fsum(dts),
        trajectory=battery.trajectory,
    )


def simulate_ecm(
    cell: Cell,
    load: Load,
    *,
    mode: Drive = "power",
    soc0: float = 1.0,
    static_power_w: float = 0.0,
    efficiency: float = 1.0,
    record: bool = False,
) -> SimResult:
    """Run the ECM until the battery ends, repeating ``load``.

    ``mode="power"``: load values are watts at the load, converted to battery power as
    ``(P + static_power_w) / efficiency``. ``mode="current"``: values are amperes drawn from the cell
    (static power and efficiency do not apply). ``record`` keeps ``t_s, voltage_v, current_a, soc``
    at every step start, and at the end of life (cut-off or empty). The load's steps are taken as they are
    (cut a trace with :func:`steps_from_trace`).
    """
    longest_s = max(load.dt_s) if load.dt_s else 1.0
    params = BatteryParams(
        cell=cell,
        soc0=soc0,
        efficiency=efficiency,
        static_power_w=static_power_w,
        max_step_s=longest_s if math.isfinite(longest_s) and longest_s > 0 else 1.0,
        drive=mode,
        record=record,
    )
    return run_load(EcmBattery(params), load)


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
    """Battery life of ``cell`` under ``trace`` repeated until the end, with the model named ``model``."""
    spec = registry.spec(model)
    params = BatteryParams(
        cell=cell,
        soc0=soc0,
        efficiency=efficiency,
        static_power_w=static_power_w,
        max_step_s=max_step_s,
        record=record,
    )
    result = run_load(spec.factory(params), steps_from_trace(trace, max_step_s), name=model)
    result.passes = result.life_s / trace.period_s if math.isfinite(trace.period_s) else math.nan
    return result
