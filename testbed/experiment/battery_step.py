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
    """The Thevenin cell of :mod:`testbed.battery.ecm`, stepped by the caller (plain floats, for speed)."""

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
        if not (max_step_s > 0 and math.isfinite(max_step_s)):
            raise BadInputError(f"max_step_s must be a positive number, got {max_step_s}")
        self.cell = cell
        self.efficiency = efficiency
        self.static_power_w = static_power_w
        self.max_step_s = max_step_s
        self.soc = soc0
        self.v1 = self.v2 = 0.0
        self.ended = False
        self.end_reason = ""
        self.load_energy_j = 0.0
        self._v = math.nan
        self._i = 0.0
        self._r0 = cell.r0_ohm
        self._v_cut = cell.v_cutoff_v
        self._q_as = 3600.0 * cell.capacity_ah
        self._n_rc = len(cell.rc)
        self._r1 = cell.rc[0].r_ohm if self._n_rc > 0 else 0.0
        self._tau1 = cell.rc[0].tau_s if self._n_rc > 0 else 1.0
        self._r2 = cell.rc[1].r_ohm if self._n_rc > 1 else 0.0
        self._tau2 = cell.rc[1].tau_s if self._n_rc > 1 else 1.0
        xs, ys = cell.ocv_soc, cell.ocv_v
        self._xs, self._ys = xs, ys
        self._slopes = [(ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k]) for k in range(len(xs) - 1)]
        self._seg = len(self._slopes) - 1
        self._find_segment()

    @property
    def v_rc(self) -> list[float]:
        """Voltages across the RC pairs (V)."""
        return [self.v1, self.v2][: self._n_rc]

    def _find_segment(self) -> None:
        """The OCV segment holding the SoC (the SoC only falls, so the search only moves down)."""
        seg, xs = len(self._slopes) - 1, self._xs
        while seg > 0 and self.soc < xs[seg]:
            seg -= 1
        self._seg = seg

    def step(self, power_w: float, dt_s: float) -> float:
        if self.ended or dt_s <= 0.0:
            return 0.0
        if dt_s <= self.max_step_s:
            return self._step(power_w, dt_s)
        done = 0.0
        n = math.ceil(dt_s / self.max_step_s - 1e-9)
        h = dt_s / n
        for _ in range(n):
            done += self._step(power_w, h)
            if self.ended:
                break
        return done

    def _step(self, power_w: float, dt: float) -> float:
        p = (power_w + self.static_power_w) / self.efficiency
        r0, v_cut, xs, ys, slopes = self._r0, self._v_cut, self._xs, self._ys, self._slopes
        soc, v1, v2, seg = self.soc, self.v1, self.v2, self._seg
        e = ys[seg] + slopes[seg] * (soc - xs[seg]) - v1 - v2
        disc = e * e - 4.0 * r0 * p
        if disc < 0.0 or e <= 0.0:
            self.ended, self.end_reason = True, "power_limit"
            return 0.0
        i = 2.0 * p / (e + math.sqrt(disc))
        v = e - i * r0
        if v < v_cut:
            self.ended, self.end_reason = True, "cutoff"
            return 0.0
        dsoc = i * dt / self._q_as
        if dsoc >= soc:  # the charge runs out inside the step
            frac = soc / dsoc
            self.soc = 0.0
            self.load_energy_j += power_w * dt * frac
            self.ended, self.end_reason = True, "empty"
            self._v, self._i = v, i
            return dt * frac
        soc_new = soc - dsoc
        n1, n2 = v1, v2
        if self._n_rc:
            a1 = math.exp(-dt / self._tau1)
            n1 = v1 * a1 + self._r1 * i * (1.0 - a1)
            if self._n_rc > 1:
                a2 = math.exp(-dt / self._tau2)
                n2 = v2 * a2 + self._r2 * i * (1.0 - a2)
        while seg > 0 and soc_new < xs[seg]:
            seg -= 1
        self._seg = seg
        e2 = ys[seg] + slopes[seg] * (soc_new - xs[seg]) - n1 - n2
        disc2 = e2 * e2 - 4.0 * r0 * p
        frac = 1.0
        i2 = v2_ = math.nan
        if disc2 < 0.0 or e2 <= 0.0:
            frac = disc / (disc - disc2) if disc2 < 0.0 else 1.0
            self.end_reason = "power_limit"
            if frac >= 1.0:
                frac = 1.0 - 1e-12
        else:
            i2 = 2.0 * p / (e2 + math.sqrt(disc2))
            v2_ = e2 - i2 * r0
            if v2_ < v_cut:
                frac = (v - v_cut) / (v - v2_)
                self.end_reason = "cutoff"
        if frac < 1.0:
            self.ended = True
            self.soc = soc - dsoc * frac
            self.v1, self.v2 = v1 + (n1 - v1) * frac, v2 + (n2 - v2) * frac
            self.load_energy_j += power_w * dt * frac
            self._v, self._i = (v_cut if self.end_reason == "cutoff" else v), i
            self._find_segment()
            return dt * frac
        self.soc, self.v1, self.v2 = soc_new, n1, n2
        self.load_energy_j += power_w * dt
        self._v, self._i = v2_, i2
        return dt

    def voltage_v(self) -> float | None:
        return None if math.isnan(self._v) else self._v

    def current_a(self) -> float | None:
        return self._i

    def state(self) -> dict[str, Any]:
        return {"soc": self.soc, "v_rc": [self.v1, self.v2], "load_energy_j": self.load_energy_j,
                "ended": self.ended, "end_reason": self.end_reason, "v": None if math.isnan(self._v) else self._v,
                "i": self._i}  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        self.soc = float(state["soc"])
        self.v1, self.v2 = (float(x) for x in state["v_rc"])
        self.load_energy_j = float(state["load_energy_j"])
        self.ended = bool(state["ended"])
        self.end_reason = str(state["end_reason"])
        self._v = math.nan if state["v"] is None else float(state["v"])
        self._i = float(state["i"])
        self._find_segment()
