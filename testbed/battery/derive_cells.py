"""Maintainer tool: derive the bundled cells' OCV tables and RC pairs from PyBaMM parameter sets.

``PYBAMM_DISABLE_TELEMETRY=1 python -m testbed.battery.derive_cells`` (needs ``pip install pybamm``)
prints, for PyBaMM's ``Ai2020`` (LiCoO2) and ``Chen2020`` (NMC811) sets:

- a pseudo-OCV table: an SPM discharge at C/50 from SoC 1 to the lower cut-off, terminal voltage
  against delivered charge, resampled to 21 SoC points (SoC 0 = the cut-off at C/50), with the
  capacity and energy of that discharge;
- one RC pair: a DFN 1C, 30 s discharge pulse at SoC 0.5 after a 10 s rest; R0 is the drop at 0.1 s,
  R1 and τ a least-squares fit of ``V = V_rest − I·R0 − I·R1·(1 − exp(−t/τ))`` to the rest of the pulse.

The numbers in ``testbed/data/cell-*.toml`` came from this script (see their ``[sources]``). It is not
used at run time; the testbed needs no PyBaMM.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

SETS = (("Ai2020", 3.0), ("Chen2020", 2.5))


def ocv_table(pybamm: Any, name: str, v_min: float, points: int = 21) -> dict[str, Any]:
    """C/50 SPM discharge → ``{capacity_ah, energy_wh, ocv: [[soc, V], …]}``."""
    pv = pybamm.ParameterValues(name)
    exp = pybamm.Experiment([f"Discharge at C/50 until {v_min} V"], period="60 s")
    sol = pybamm.Simulation(pybamm.lithium_ion.SPM(), parameter_values=pv, experiment=exp).solve(initial_soc=1.0)
    v = sol["Voltage [V]"].entries
    q = sol["Discharge capacity [A.h]"].entries
    q = q - q[0]
    soc = 1.0 - q / q[-1]
    grid = np.linspace(0.0, 1.0, points)
    table = np.interp(grid, soc[::-1], v[::-1])
    return {
        "capacity_ah": float(q[-1]),
        "energy_wh": float(np.sum((v[1:] + v[:-1]) * 0.5 * np.diff(q))),
        "ocv": [[round(float(s), 3), round(float(x), 4)] for s, x in zip(grid, table, strict=True)],
    }


def pulse_fit(
    pybamm: Any, name: str, soc0: float = 0.5, c_rate: float = 1.0, pulse_s: float = 30.0
) -> dict[str, float]:
    """DFN pulse → ``{r0_ohm, r1_ohm, tau_s, c1_f, rms_v}`` (see the module text)."""
    pv = pybamm.ParameterValues(name)
    current_a = c_rate * float(pv["Nominal cell capacity [A.h]"])
    exp = pybamm.Experiment(
        ["Rest for 10 s", pybamm.step.current(current_a, duration=pulse_s, period=0.1)], period="1 s"
    )
    sol = pybamm.Simulation(pybamm.lithium_ion.DFN(), parameter_values=pv, experiment=exp).solve(initial_soc=soc0)
    t_all = sol["Time [s]"].entries
    v_all = sol["Voltage [V]"].entries
    on = t_all > 10.0 + 1e-9
    t = t_all[on] - 10.0
    v = v_all[on]
    v_rest = float(v_all[~on][-1])
    k = int(np.searchsorted(t, 0.1))
    r0 = (v_rest - float(v[k])) / current_a
    y = v_rest - current_a * r0 - v[k:]
    best: tuple[float, float, float] | None = None
    for tau in np.linspace(1.0, 60.0, 591):
        basis = 1.0 - np.exp(-(t[k:] - t[k]) / tau)
        r1 = float(basis @ y / (basis @ basis)) / current_a
        err = float(np.sum((y - current_a * r1 * basis) ** 2))
        if best is None or err < best[0]:
            best = (err, float(tau), r1)
    assert best is not None
    err, tau, r1 = best
    return {"r0_ohm": r0, "r1_ohm": r1, "tau_s": tau, "c1_f": tau / r1, "rms_v": (err / (len(t) - k)) ** 0.5}


def main() -> None:
    os.environ.setdefault("PYBAMM_DISABLE_TELEMETRY", "1")
    import pybamm

    out = {name: {**ocv_table(pybamm, name, v_min), "pulse": pulse_fit(pybamm, name)} for name, v_min in SETS}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
