"""Thevenin equivalent-circuit battery driven by power (or current): OCV(SoC) + R0 + 0–2 RC pairs.

Each step of length ``dt`` holds the load constant (zero-order hold) and is advanced explicitly:

1. ``e = OCV(soc) − Σ v_j``; the battery power is ``P = (P_load + P_static) / efficiency``;
2. the current solves ``P = I·(e − I·R0)``: ``disc = e² − 4·R0·P``; no real root (``disc < 0``) means
   the cell cannot deliver ``P`` (``power_limit``); else ``I = 2P / (e + √disc)`` (the smaller root,
   also valid for ``R0 = 0``) and the terminal voltage is ``V = e − I·R0``;
3. ``soc −= I·dt / (3600·Q)``; each RC voltage relaxes exactly for a constant current:
   ``v_j ← v_j·a_j + R_j·I·(1 − a_j)``, ``a_j = exp(−dt / (R_j·C_j))``.

The battery ends at the first of: ``V < v_cutoff_v`` (``cutoff``), ``disc < 0`` (``power_limit``), or
``soc ≤ 0`` (``empty``). Each condition is checked at the start and at the end of every step (same
load); a crossing inside a step is placed by linear interpolation (of ``V``, of ``disc``, or of the
charge), so life is not quantised to the step. A step whose new load fails at once ends at its start.
Slices longer than ``max_step_s`` are split into equal steps.

With ``drive="current"`` the step values are amperes drawn from the cell (static power and efficiency
do not apply, the load energy is ``V·I·dt``). The step runs in plain Python floats (no numpy): about
a microsecond, so an 8-hour 1 Hz trace takes a few tens of milliseconds.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping

from devices.errors import BadInputError
from testbed.battery.cell import Cell
from testbed.battery.model import MAX_STEPS, BatteryParams, ModelSpec, Trajectory, state_end, state_float, state_number


class EcmBattery:
    """The Thevenin cell of the module text, stepped by the caller."""

    name = "ecm"

    def __init__(self, params: BatteryParams) -> None:
        cell = params.cell
        if cell is None:
            raise BadInputError("battery.cell: ecm needs a cell (bundled name or TOML file)")
        if len(cell.rc) > 2:
            raise BadInputError(f"battery.cell: {cell.name} has {len(cell.rc)} RC pairs, ecm supports at most 2")
        self.cell: Cell = cell
        self.max_step_s = params.max_step_s
        self._power = params.drive == "power"
        self._static_w = params.static_power_w
        self._eff = params.efficiency
        self.soc = params.soc0
        self.v1 = self.v2 = 0.0
        self.ended = False
        self.end_reason: str | None = None
        self.load_energy_j = 0.0
        self.delivered_energy_j = 0.0
        self.ohmic_loss_j = 0.0
        self.trajectory: Trajectory | None = (
            {"t_s": [], "voltage_v": [], "current_a": [], "soc": []} if params.record else None
        )
        self._t = 0.0  # seconds sustained, kept while recording
        self._v = math.nan
        self._i = 0.0
        self._v_end: float | None = None
        self._n_rc = n_rc = len(cell.rc)
        self._r1 = r1 = cell.rc[0].r_ohm if n_rc > 0 else 0.0
        self._tau1 = cell.rc[0].tau_s if n_rc > 0 else 1.0
        self._r2 = r2 = cell.rc[1].r_ohm if n_rc > 1 else 0.0
        self._tau2 = cell.rc[1].tau_s if n_rc > 1 else 1.0
        self._a_dt = math.nan  # the step length the relaxation factors below belong to
        self._a1 = self._a2 = 0.0
        xs, ys = cell.ocv_soc, cell.ocv_v
        self._xs = xs
        self._slopes = [(ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k]) for k in range(len(xs) - 1)]
        self._seg = len(self._slopes) - 1
        self._find_segment()
        # the constants a step reads, in one attribute (R0, 4·R0, cut-off, OCV table, charge in A·s, 1/R_j)
        self._k = (cell.r0_ohm, 4.0 * cell.r0_ohm, cell.v_cutoff_v, xs, ys, self._slopes, 3600.0 * cell.capacity_ah,
                   1.0 / r1 if r1 else 0.0, 1.0 / r2 if r2 else 0.0)  # fmt: skip

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

    def _end(self, reason: str, v_end: float | None, i: float, part_s: float) -> None:
        """End of life ``part_s`` into the current step; a recorded trajectory gets its last point."""
        self.ended, self.end_reason, self._v_end = True, reason, v_end
        traj = self.trajectory
        if traj is not None and v_end is not None:
            t = self._t + part_s
            if not traj["t_s"] or t > traj["t_s"][-1]:
                traj["t_s"].append(t)
                traj["voltage_v"].append(v_end)
                traj["current_a"].append(i)
                traj["soc"].append(max(self.soc, 0.0))

    def _step(self, value: float, dt: float) -> float:
        power = self._power
        p = (value + self._static_w) / self._eff if power else value
        r0, four_r0, v_cut, xs, ys, slopes, q_as, g1, g2 = self._k
        soc, v1, v2, seg = self.soc, self.v1, self.v2, self._seg
        e = ys[seg] + slopes[seg] * (soc - xs[seg]) - v1 - v2
        if power:
            disc = e * e - four_r0 * p
            if disc < 0.0 or e <= 0.0:
                self._end("power_limit", None, 0.0, 0.0)
                return 0.0
            i = 2.0 * p / (e + math.sqrt(disc))
        else:
            i, disc = p, 1.0
        v = e - i * r0
        if v < v_cut:
            self._end("cutoff", v, i, 0.0)
            return 0.0
        traj = self.trajectory
        if traj is not None:
            traj["t_s"].append(self._t)
            traj["voltage_v"].append(v)
            traj["current_a"].append(i)
            traj["soc"].append(soc)
        load_w = value if power else v * i
        batt_w = v * i
        loss_w = i * i * r0 + v1 * v1 * g1 + v2 * v2 * g2
        dsoc = i * dt / q_as
        if dsoc >= soc and i > 0.0:  # the charge runs out inside the step
            frac = soc / dsoc
            self.soc = 0.0
            self._account(load_w, batt_w, loss_w, dt, frac)
            self._v, self._i = v, i
            self._end("empty", v, i, dt * frac)
            return dt * frac
        soc_new = soc - dsoc
        n1, n2 = v1, v2
        if self._n_rc:
            if dt != self._a_dt:
                self._a_dt = dt
                self._a1 = math.exp(-dt / self._tau1)
                self._a2 = math.exp(-dt / self._tau2) if self._n_rc > 1 else 0.0
            a1 = self._a1
            n1 = v1 * a1 + self._r1 * i * (1.0 - a1)
            if self._n_rc > 1:
                a2 = self._a2
                n2 = v2 * a2 + self._r2 * i * (1.0 - a2)
        while seg > 0 and soc_new < xs[seg]:
            seg -= 1
        self._seg = seg
        # the same load at the end of the step: did a condition cross inside it?
        e2 = ys[seg] + slopes[seg] * (soc_new - xs[seg]) - n1 - n2
        reason = ""
        frac = 1.0
        i2 = v2_ = math.nan
        if power:
            disc2 = e2 * e2 - four_r0 * p
            if disc2 < 0.0 or e2 <= 0.0:
                frac = disc / (disc - disc2) if disc2 < 0.0 else 1.0
                reason = "power_limit"
            else:
                i2 = 2.0 * p / (e2 + math.sqrt(disc2))
        else:
            i2 = p
        if not reason:
            v2_ = e2 - i2 * r0
            if v2_ < v_cut:
                frac = (v - v_cut) / (v - v2_)
                reason = "cutoff"
        if reason:
            self.soc = soc - dsoc * frac
            self.v1, self.v2 = v1 + (n1 - v1) * frac, v2 + (n2 - v2) * frac
            self._account(load_w, batt_w, loss_w, dt, frac)
            cutoff = reason == "cutoff"
            self._v, self._i = (v_cut if cutoff else v), i
            self._find_segment()
            self._end(reason, v_cut if cutoff else None, i, dt * frac)
            return dt * frac
        self.soc, self.v1, self.v2 = soc_new, n1, n2
        self.load_energy_j += load_w * dt
        self.delivered_energy_j += batt_w * dt
        self.ohmic_loss_j += loss_w * dt
        self._v, self._i = v2_, i2
        if traj is not None:
            self._t += dt
        return dt

    def _account(self, load_w: float, batt_w: float, loss_w: float, dt: float, frac: float) -> None:
        """Energies of the part ``frac`` of a step in which the battery ends."""
        self.load_energy_j += load_w * dt * frac
        self.delivered_energy_j += batt_w * dt * frac
        self.ohmic_loss_j += loss_w * dt * frac

    def voltage_v(self) -> float | None:
        return None if math.isnan(self._v) else self._v

    def current_a(self) -> float | None:
        return self._i

    def end_voltage_v(self) -> float | None:
        return self._v_end if self.ended else None

    def life_at_power_s(self, power_w: float) -> float:
        """Steps a copy at ``power_w`` in ``max_step_s`` steps until it ends."""
        if self.ended:
            return 0.0
        drive = (power_w + self._static_w) / self._eff if self._power else power_w
        if drive <= 0.0:
            return math.inf
        probe = copy.copy(self)
        probe.trajectory = None
        t = 0.0
        for _ in range(MAX_STEPS):
            t += probe._step(power_w, self.max_step_s)
            if probe.ended:
                return t
        raise BadInputError(f"the battery did not end within {MAX_STEPS} steps at {power_w} W")

    def state(self) -> dict[str, object]:
        return {"soc": self.soc, "v_rc": [self.v1, self.v2], "load_energy_j": self.load_energy_j,
                "ended": self.ended, "end_reason": self.end_reason or "", "v": None if math.isnan(self._v) else self._v,
                "i": self._i, "delivered_energy_j": self.delivered_energy_j, "ohmic_loss_j": self.ohmic_loss_j,
                "v_end": self._v_end}  # fmt: skip

    def restore(self, state: Mapping[str, object]) -> None:
        v_rc = state.get("v_rc")
        if not (isinstance(v_rc, list) and len(v_rc) == 2):
            raise BadInputError(f"battery checkpoint: v_rc must be two numbers, got {v_rc!r}")
        self.soc = state_float(state, "soc")
        self.v1, self.v2 = state_number(v_rc[0], "v_rc"), state_number(v_rc[1], "v_rc")
        self.load_energy_j = state_float(state, "load_energy_j")
        self.delivered_energy_j = state_float(state, "delivered_energy_j", 0.0)
        self.ohmic_loss_j = state_float(state, "ohmic_loss_j", 0.0)
        self.ended, self.end_reason = state_end(state)
        self._v = math.nan if state.get("v") is None else state_float(state, "v")
        self._i = state_float(state, "i")
        self._v_end = None if state.get("v_end") is None else state_float(state, "v_end")
        self._find_segment()


SPEC = ModelSpec(
    name="ecm",
    factory=EcmBattery,
    summary="Thevenin equivalent circuit: OCV(SoC) + R0 + 0–2 RC pairs; ends at cut-off, power limit or empty",
    sized_by=("cell",),
    voltage=True,
)
