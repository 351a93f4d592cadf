"""Stepped batteries for the event-driven simulator: draw a power for a time, report when it ends.

:mod:`testbed.battery` simulates a whole repeating load at once; the simulator needs to step a
battery request by request because the policy reads the state of charge. These thin adapters do that
with the same accounting:

- :class:`BucketBattery` — RT3's ideal energy bucket: ``(P + static) / efficiency`` drains the
  energy linearly; SoC = remaining / capacity. No voltage, no rate effects.
- :class:`EcmBattery` — the Thevenin model of :mod:`testbed.battery.ecm` (same cell files, same
  equations: current from power via the smaller root of ``P = I(e − I·R0)``, exact RC relaxation,
  end at cut-off voltage, power limit or empty charge; a crossing inside a step is placed by linear
  interpolation). Steps longer than ``max_step_s`` are split.

``step(power_w, dt_s)`` returns the time the battery sustained (``dt_s`` unless it ended inside the
step, when ``ended`` becomes true and ``end_reason`` says why). ``load_energy_j`` counts the energy
delivered to the load (before static power and converter loss). ``state()``/``restore()`` make the
battery resumable from a checkpoint.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

from devices.errors import BadInputError
from testbed.battery.cell import Cell


class SteppedBattery(Protocol):
    soc: float
    ended: bool
    end_reason: str
    load_energy_j: float

    def step(self, power_w: float, dt_s: float) -> float: ...

    def voltage_v(self) -> float | None: ...

    def current_a(self) -> float | None: ...

    def state(self) -> dict[str, Any]: ...

    def restore(self, state: dict[str, Any]) -> None: ...


def _check_common(soc0: float, efficiency: float, static_power_w: float) -> None:
    if not 0.0 < soc0 <= 1.0:
        raise BadInputError(f"battery.soc0 must be in (0, 1], got {soc0}")
    if not 0.0 < efficiency <= 1.0:
        raise BadInputError(f"battery.efficiency must be in (0, 1], got {efficiency}")
    if not (static_power_w >= 0.0 and math.isfinite(static_power_w)):
        raise BadInputError(f"battery.static_power_w must be ≥ 0 W, got {static_power_w}")


class BucketBattery:
    """An ideal bucket of ``energy_j`` joules (RT3's accounting)."""

    def __init__(self, energy_j: float, soc0: float = 1.0, efficiency: float = 1.0, static_power_w: float = 0.0):
        if not (energy_j > 0 and math.isfinite(energy_j)):
            raise BadInputError(f"battery.energy_j must be a positive number, got {energy_j}")
        _check_common(soc0, efficiency, static_power_w)
        self.capacity_j = float(energy_j)
        self.remaining_j = energy_j * soc0
        self.efficiency = efficiency
        self.static_power_w = static_power_w
        self.soc = soc0
        self.ended = False
        self.end_reason = ""
        self.load_energy_j = 0.0

    def step(self, power_w: float, dt_s: float) -> float:
        if self.ended or dt_s <= 0.0:
            return 0.0
        drain_w = (power_w + self.static_power_w) / self.efficiency
        e = drain_w * dt_s
        if e >= self.remaining_j:
            frac = self.remaining_j / e if e > 0 else 1.0
            self.load_energy_j += power_w * dt_s * frac
            self.remaining_j = 0.0
            self.soc = 0.0
            self.ended, self.end_reason = True, "empty"
            return dt_s * frac
        self.remaining_j -= e
        self.soc = self.remaining_j / self.capacity_j
        self.load_energy_j += power_w * dt_s
        return dt_s

    def voltage_v(self) -> float | None:
        return None

    def current_a(self) -> float | None:
        return None

    def state(self) -> dict[str, Any]:
        return {"remaining_j": self.remaining_j, "load_energy_j": self.load_energy_j, "ended": self.ended,
                "end_reason": self.end_reason}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.remaining_j = float(state["remaining_j"])
        self.load_energy_j = float(state["load_energy_j"])
        self.ended = bool(state["ended"])
        self.end_reason = str(state["end_reason"])
        self.soc = self.remaining_j / self.capacity_j


class EcmBattery:
    """The Thevenin cell of :mod:`testbed.battery.ecm`, stepped by the caller."""

    def __init__(
        self,
        cell: Cell,
        soc0: float = 1.0,
        efficiency: float = 1.0,
        static_power_w: float = 0.0,
        max_step_s: float = 1.0,
    ) -> None:
        _check_common(soc0, efficiency, static_power_w)
        if len(cell.rc) > 2:
            raise BadInputError(f"cell {cell.name}: at most two RC pairs are supported")
        self.cell = cell
        self.efficiency = efficiency
        self.static_power_w = static_power_w
        self.max_step_s = max_step_s
        self.soc = soc0
        self.v_rc = [0.0 for _ in cell.rc]
        self.ended = False
        self.end_reason = ""
        self.load_energy_j = 0.0
        self._v = math.nan
        self._i = 0.0
        self._xs, self._ys = cell.ocv_soc, cell.ocv_v

    def _ocv(self, soc: float) -> float:
        xs, ys = self._xs, self._ys
        if soc <= xs[0]:
            return ys[0]
        lo, hi = 0, len(xs) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if xs[mid] <= soc:
                lo = mid
            else:
                hi = mid
        return ys[lo] + (ys[hi] - ys[lo]) * (soc - xs[lo]) / (xs[hi] - xs[lo])

    def _solve(self, soc: float, v_rc: list[float], p: float) -> tuple[float, float, float]:
        """(current A, terminal V, discriminant) for battery power ``p`` at a state; disc < 0: cannot deliver."""
        e = self._ocv(soc) - sum(v_rc)
        disc = e * e - 4.0 * self.cell.r0_ohm * p
        if disc < 0.0 or e <= 0.0:
            return math.nan, math.nan, min(disc, -1e-300)
        i = 2.0 * p / (e + math.sqrt(disc))
        return i, e - i * self.cell.r0_ohm, disc

    def step(self, power_w: float, dt_s: float) -> float:
        if self.ended or dt_s <= 0.0:
            return 0.0
        done = 0.0
        n = max(1, math.ceil(dt_s / self.max_step_s - 1e-9))
        h = dt_s / n
        for _ in range(n):
            got = self._step(power_w, h)
            done += got
            if self.ended:
                break
        return done

    def _step(self, power_w: float, dt: float) -> float:
        cell = self.cell
        p = (power_w + self.static_power_w) / self.efficiency
        i, v, disc = self._solve(self.soc, self.v_rc, p)
        if disc < 0.0:
            self.ended, self.end_reason = True, "power_limit"
            return 0.0
        if v < cell.v_cutoff_v:
            self.ended, self.end_reason = True, "cutoff"
            return 0.0
        q_as = 3600.0 * cell.capacity_ah
        dsoc = i * dt / q_as
        if dsoc >= self.soc:  # the charge runs out inside the step
            frac = self.soc / dsoc
            self.soc = 0.0
            self.load_energy_j += power_w * dt * frac
            self.ended, self.end_reason = True, "empty"
            self._v, self._i = v, i
            return dt * frac
        soc_new = self.soc - dsoc
        rc_new = []
        for pair, vj in zip(cell.rc, self.v_rc, strict=True):
            a = math.exp(-dt / pair.tau_s)
            rc_new.append(vj * a + pair.r_ohm * i * (1.0 - a))
        i2, v2, disc2 = self._solve(soc_new, rc_new, p)
        frac = 1.0
        if disc2 < 0.0:
            frac = disc / (disc - disc2)
            self.end_reason = "power_limit"
        elif v2 < cell.v_cutoff_v:
            frac = (v - cell.v_cutoff_v) / (v - v2)
            self.end_reason = "cutoff"
        if frac < 1.0:
            self.ended = True
            self.soc -= dsoc * frac
            self.v_rc = [vj + (vn - vj) * frac for vj, vn in zip(self.v_rc, rc_new, strict=True)]
            self.load_energy_j += power_w * dt * frac
            self._v, self._i = (cell.v_cutoff_v if self.end_reason == "cutoff" else v), i
            return dt * frac
        self.soc, self.v_rc = soc_new, rc_new
        self.load_energy_j += power_w * dt
        self._v, self._i = v2, i2
        return dt

    def voltage_v(self) -> float | None:
        return None if math.isnan(self._v) else self._v

    def current_a(self) -> float | None:
        return self._i

    def state(self) -> dict[str, Any]:
        return {"soc": self.soc, "v_rc": list(self.v_rc), "load_energy_j": self.load_energy_j, "ended": self.ended,
                "end_reason": self.end_reason, "v": None if math.isnan(self._v) else self._v, "i": self._i}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.soc = float(state["soc"])
        self.v_rc = [float(x) for x in state["v_rc"]]
        self.load_energy_j = float(state["load_energy_j"])
        self.ended = bool(state["ended"])
        self.end_reason = str(state["end_reason"])
        self._v = math.nan if state["v"] is None else float(state["v"])
        self._i = float(state["i"])
