"""Optional cross-check of the ECM against PyBaMM's Thevenin model (``pip install pybamm``).

The same cell (OCV table as a linear interpolant in SoC, constant R0 and RC pairs, capacity, cut-off)
and the same power load are given to ``pybamm.equivalent_circuit.Thevenin``, which is solved with its
own DAE solver until the voltage cut-off; its battery life is compared with :func:`simulate_ecm`.
PyBaMM's telemetry prompt is disabled (``PYBAMM_DISABLE_TELEMETRY``) before it is imported.

Failure modes: :class:`~devices.errors.UnsupportedError` when PyBaMM is not installed;
:class:`~devices.errors.TestbedError` when its solver fails.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from devices.errors import BadInputError, TestbedError, UnsupportedError
from testbed.battery.cell import Cell
from testbed.battery.simulate import simulate_ecm, steps_from_trace
from traces.power import PowerTrace

#: PyBaMM's Thevenin refuses an initial SoC of exactly 1 ("Maximum SoC" event), so both start here.
DEFAULT_SOC0 = 0.99


@dataclass
class CrossCheck:
    """ECM and PyBaMM battery life on the same cell and load, and their relative difference."""

    ecm_life_s: float
    ecm_end_reason: str
    pybamm_life_s: float
    relative_difference: float
    ecm_wall_s: float
    pybamm_wall_s: float
    pybamm_version: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def import_pybamm() -> Any:
    """``pybamm`` with telemetry disabled; :class:`UnsupportedError` if it is not installed."""
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "1")
    try:
        import pybamm
    except ImportError:
        raise UnsupportedError(
            "the PyBaMM cross-check needs PyBaMM: pip install pybamm (about 800 MB with its dependencies)"
        ) from None
    return pybamm


def pybamm_life_s(cell: Cell, trace: PowerTrace, soc0: float, horizon_s: float) -> float:
    """Time until PyBaMM's Thevenin model reaches the cut-off under ``trace`` (repeated to ``horizon_s``)."""
    pybamm = import_pybamm()
    n_rc = len(cell.rc)
    model = pybamm.equivalent_circuit.Thevenin(options={"number of rc elements": n_rc})
    pv = pybamm.ParameterValues("ECM_Example")
    soc_pts = np.array(cell.ocv_soc)
    ocv_pts = np.array(cell.ocv_v)

    def ocv(sto: Any) -> Any:
        return pybamm.Interpolant(soc_pts, ocv_pts, sto, name="ocv", interpolator="linear")

    updates: dict[str, Any] = {
        "Cell capacity [A.h]": cell.capacity_ah,
        "Nominal cell capacity [A.h]": cell.capacity_ah,
        "Initial SoC": soc0,
        "Open-circuit voltage [V]": ocv,
        "Entropic change [V/K]": 0.0,
        "R0 [Ohm]": cell.r0_ohm,
        "Lower voltage cut-off [V]": cell.v_cutoff_v,
        "Upper voltage cut-off [V]": cell.v_max_v + 0.5,
    }
    for j, pair in enumerate(cell.rc, start=1):
        updates[f"R{j} [Ohm]"] = pair.r_ohm
        updates[f"C{j} [F]"] = pair.c_f
        updates[f"Element-{j} initial overpotential [V]"] = 0.0
    pv.update(updates, check_already_exists=False)
    dts, powers = trace.segments()
    if not math.isfinite(float(dts[-1])):
        step = pybamm.step.power(float(powers[-1]), duration=horizon_s, termination=f"< {cell.v_cutoff_v} V")
    else:
        reps = max(1, math.ceil(horizon_s / trace.period_s))
        starts = np.concatenate([trace.t_s + r * trace.period_s for r in range(reps)])
        values = np.tile(trace.power_w, reps)
        # zero-order hold as a linear interpolant: a second point just before each change
        eps = 1e-6
        t_pts = np.empty(2 * len(starts))
        p_pts = np.empty(2 * len(starts))
        t_pts[0::2] = starts
        t_pts[1::2] = np.append(starts[1:] - eps, starts[-1] + trace.period_s - eps)
        p_pts[0::2] = values
        p_pts[1::2] = values
        step = pybamm.step.power(np.column_stack([t_pts, p_pts]), termination=f"< {cell.v_cutoff_v} V")
    sim = pybamm.Simulation(model, parameter_values=pv, experiment=pybamm.Experiment([step]))
    try:
        sol = sim.solve()
    except Exception as exc:  # PyBaMM raises its own solver errors
        raise TestbedError(f"PyBaMM failed: {type(exc).__name__}: {exc}") from None
    return float(sol["Time [s]"].entries[-1])


def crosscheck(cell: Cell, trace: PowerTrace, soc0: float = DEFAULT_SOC0, max_step_s: float = 1.0) -> CrossCheck:
    """Battery life from the ECM and from PyBaMM on the same cell and load."""
    if not 0.0 < soc0 < 1.0:
        raise BadInputError(f"the cross-check needs 0 < soc0 < 1 (PyBaMM rejects 1), got {soc0}")
    pybamm = import_pybamm()
    t0 = time.perf_counter()
    ecm = simulate_ecm(cell, steps_from_trace(trace, max_step_s), soc0=soc0)
    t1 = time.perf_counter()
    life = pybamm_life_s(cell, trace, soc0, horizon_s=ecm.life_s * 1.5 + 60.0)
    t2 = time.perf_counter()
    return CrossCheck(
        ecm_life_s=ecm.life_s,
        ecm_end_reason=ecm.end_reason,
        pybamm_life_s=life,
        relative_difference=(ecm.life_s - life) / life,
        ecm_wall_s=t1 - t0,
        pybamm_wall_s=t2 - t1,
        pybamm_version=str(getattr(pybamm, "__version__", "?")),
    )
