"""Thevenin equivalent-circuit battery driven by power: OCV(SoC) + R0 + 0–2 RC pairs.

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

Segments longer than ``max_step_s`` are split. The loop runs in plain Python floats (no numpy per
step): about a microsecond per step, so an 8-hour 1 Hz trace takes a few tens of milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from devices.errors import BadInputError
from testbed.battery.cell import Cell
from traces.power import PowerTrace

END_REASONS = ("cutoff", "power_limit", "empty")
#: Safety bound on the number of steps of one simulation (a ~30-year 1 Hz run).
MAX_STEPS = 1_000_000_000


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
    trajectory: dict[str, list[float]] | None = field(default=None, repr=False)

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

    ``periodic`` passes repeat until the battery ends; a non-periodic load holds its last value.
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


def simulate_ecm(
    cell: Cell,
    load: Load,
    *,
    mode: str = "power",
    soc0: float = 1.0,
    static_power_w: float = 0.0,
    efficiency: float = 1.0,
    record: bool = False,
) -> SimResult:
    """Run the Thevenin model until the battery ends, repeating ``load``.

    ``mode="power"``: load values are watts at the load, converted to battery power as
    ``(P + static_power_w) / efficiency``. ``mode="current"``: values are amperes drawn from the cell
    (static power and efficiency do not apply). ``record`` keeps ``t_s, voltage_v, current_a, soc``
    at every step start, and at the end of life (cut-off or empty).

    Raises :class:`BadInputError` for a bad ``soc0``, efficiency, static power or mode, and when the
    load draws nothing (the battery would never end).
    """
    if mode not in ("power", "current"):
        raise BadInputError(f"unknown drive mode {mode!r}; use power or current")
    if not 0.0 < soc0 <= 1.0:
        raise BadInputError(f"initial SoC must be in (0, 1], got {soc0}")
    if not (0.0 < efficiency <= 1.0):
        raise BadInputError(f"converter efficiency must be in (0, 1], got {efficiency}")
    if not (static_power_w >= 0.0 and math.isfinite(static_power_w)):
        raise BadInputError(f"static power must be ≥ 0 W, got {static_power_w}")
    if not load.dt_s or len(load.dt_s) != len(load.value):
        raise BadInputError("the load has no steps")
    drive = [(p + static_power_w) / efficiency for p in load.value] if mode == "power" else list(load.value)
    if max(drive) <= 0.0:
        raise BadInputError("the load draws no power: the battery would never end")
    if min(drive) < 0.0:
        raise BadInputError("the load must not be negative (charging is not modelled)")
    return _run(cell, load.dt_s, drive, load.value, mode, soc0, record)


def _run(
    cell: Cell,
    dts: Sequence[float],
    drive: Sequence[float],
    load_values: Sequence[float],
    mode: str,
    soc0: float,
    record: bool,
) -> SimResult:
    """The stepping loop (see the module text); written with local floats only, for speed."""
    r0 = cell.r0_ohm
    four_r0 = 4.0 * r0
    v_cut = cell.v_cutoff_v
    q_as = 3600.0 * cell.capacity_ah
    xs, ys = cell.ocv_soc, cell.ocv_v
    slopes = [(ys[k + 1] - ys[k]) / (xs[k + 1] - xs[k]) for k in range(len(xs) - 1)]
    n_rc = len(cell.rc)
    r1 = cell.rc[0].r_ohm if n_rc > 0 else 0.0
    r2 = cell.rc[1].r_ohm if n_rc > 1 else 0.0
    g1 = 1.0 / r1 if r1 else 0.0
    g2 = 1.0 / r2 if r2 else 0.0
    a1s = [math.exp(-dt / cell.rc[0].tau_s) if n_rc > 0 else 0.0 for dt in dts]
    a2s = [math.exp(-dt / cell.rc[1].tau_s) if n_rc > 1 else 0.0 for dt in dts]
    power_mode = mode == "power"
    n_steps = len(dts)
    sqrt = math.sqrt
    # OCV segment containing the SoC; the SoC only falls, so the index only moves down
    seg = len(slopes) - 1
    while seg > 0 and soc0 < xs[seg]:
        seg -= 1
    seg_x, seg_y, seg_m = xs[seg], ys[seg], slopes[seg]

    soc = soc0
    v1 = v2 = 0.0
    t = 0.0
    e_batt = e_load = loss = 0.0
    steps = 0
    traj: dict[str, list[float]] | None = {"t_s": [], "voltage_v": [], "current_a": [], "soc": []} if record else None
    k = 0
    have = False  # (i, v, disc) below are valid for the current state and load p_have
    p_have = i = v = disc = 0.0
    end_reason = ""
    v_end = math.nan
    while True:
        dt = dts[k]
        p = drive[k]
        if not have or p != p_have:
            e = seg_y + seg_m * (soc - seg_x) - v1 - v2
            if power_mode:
                disc = e * e - four_r0 * p
                if disc < 0.0 or e <= 0.0:
                    end_reason = "power_limit"
                    break
                i = 2.0 * p / (e + sqrt(disc))
            else:
                i, disc = p, 1.0
            v = e - i * r0
        if v < v_cut:
            end_reason, v_end = "cutoff", v
            break
        if traj is not None:
            traj["t_s"].append(t)
            traj["voltage_v"].append(v)
            traj["current_a"].append(i)
            traj["soc"].append(soc)
        pl = load_values[k] if power_mode else v * i
        p_batt = v * i
        dsoc = i * dt / q_as
        step_loss = (i * i * r0 + v1 * v1 * g1 + v2 * v2 * g2) * dt
        if dsoc >= soc and i > 0.0:  # the charge runs out inside this step
            frac = soc / dsoc
            t += frac * dt
            e_batt += p_batt * frac * dt
            e_load += pl * frac * dt
            loss += step_loss * frac
            soc = 0.0
            end_reason, v_end = "empty", v
            steps += 1
            break
        soc_prev = soc
        soc -= dsoc
        if n_rc:
            a1 = a1s[k]
            v1 = v1 * a1 + r1 * i * (1.0 - a1)
            if n_rc > 1:
                a2 = a2s[k]
                v2 = v2 * a2 + r2 * i * (1.0 - a2)
        t += dt
        e_batt += p_batt * dt
        e_load += pl * dt
        loss += step_loss
        steps += 1
        # the same load at the end of the step: did a condition cross inside it?
        while soc < seg_x and seg > 0:
            seg -= 1
            seg_x, seg_y, seg_m = xs[seg], ys[seg], slopes[seg]
        e2 = seg_y + seg_m * (soc - seg_x) - v1 - v2
        frac = -1.0
        if power_mode:
            disc2 = e2 * e2 - four_r0 * p
            if disc2 < 0.0 or e2 <= 0.0:
                frac = disc / (disc - disc2) if disc2 < 0.0 else 1.0
                end_reason, v_end = "power_limit", math.nan
            else:
                i2 = 2.0 * p / (e2 + sqrt(disc2))
        else:
            i2, disc2 = p, 1.0
        if frac < 0.0:
            v2_ = e2 - i2 * r0
            if v2_ < v_cut:
                frac = (v - v_cut) / (v - v2_)
                end_reason, v_end = "cutoff", v_cut
        if frac >= 0.0:
            back = (1.0 - frac) * dt
            t -= back
            e_batt -= p_batt * back
            e_load -= pl * back
            loss -= step_loss * (1.0 - frac)
            soc = soc_prev - dsoc * frac
            break
        have, p_have, i, v, disc = True, p, i2, v2_, disc2
        k += 1
        if k == n_steps:
            k = 0
        if steps >= MAX_STEPS:
            raise BadInputError(f"the battery did not end within {MAX_STEPS} steps; is the load tiny?")
    if traj is not None and end_reason != "power_limit" and (not traj["t_s"] or t > traj["t_s"][-1]):
        traj["t_s"].append(t)  # the end of life itself, interpolated within its step
        traj["voltage_v"].append(v_end)
        traj["current_a"].append(i)
        traj["soc"].append(max(soc, 0.0))
    period = math.fsum(dts)
    return SimResult(
        model="ecm",
        life_s=t,
        end_reason=end_reason,
        soc_end=max(soc, 0.0),
        energy_delivered_j=e_batt,
        load_energy_j=e_load,
        ohmic_loss_j=loss,
        v_end_v=v_end,
        steps=steps,
        passes=t / period,
        trajectory=traj,
    )
