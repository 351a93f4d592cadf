"""What a battery log says about its discharge: time spent discharging, energy delivered, gaps.

``status`` splits the log: an interval between two rows counts as discharging when both rows say
``Discharging`` (any case); without a status column every interval with a positive (or unknown) power
counts. The delivered energy comes from the best source the log has, in this order:

1. ``energy_wh`` — the gauge's remaining-energy counter (``energy_now``): the sum of its falls;
2. ``charge_ah`` × voltage — the charge counter's falls times the mean voltage of each interval;
3. power (``power_w``, else V·I) integrated with trapezoids.

A summary is never 0 J when one of these has data; when none has, :attr:`DischargeSummary.reason` says
why. Intervals longer than :data:`GAP_FACTOR` × the median sampling period are reported as gaps (and
still counted: a counter difference spans them correctly; an integral bridges them linearly).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from traces.battery import BatteryTrace

GAP_FACTOR = 5.0


@dataclass(frozen=True)
class DischargeSummary:
    """Seconds discharging, joules delivered while discharging, the method used, gaps (start s, length s)."""

    discharging_s: float
    delivered_energy_j: float | None
    method: str
    reason: str | None = None
    gaps: list[tuple[float, float]] = field(default_factory=list)
    period_s: float | None = None


def _discharging(trace: BatteryTrace, power_w: np.ndarray) -> np.ndarray:
    """Per interval (len n-1): True when the battery discharged over it."""
    if trace.status is not None and any(s.strip() for s in trace.status):
        st = np.array([s.strip().lower() == "discharging" for s in trace.status])
        return st[:-1] & st[1:]
    p = np.where(np.isnan(power_w), 1.0, power_w)
    return (p[:-1] >= 0) & (p[1:] >= 0)


def summarize_discharge(trace: BatteryTrace) -> DischargeSummary:
    """The discharge summary of ``trace`` (see the module text)."""
    t = trace.t_s
    n = len(t)
    if n < 2:
        return DischargeSummary(0.0, None, "none", "fewer than two rows: no interval to measure")
    dt = np.diff(t)
    period = float(np.median(dt))
    gaps = [(float(t[k]), float(dt[k])) for k in np.flatnonzero(dt > GAP_FACTOR * period)]
    power = np.where(np.isnan(trace.power_w), trace.voltage_v * trace.current_a, trace.power_w)
    dis = _discharging(trace, power)
    discharging_s = float(np.sum(dt[dis]))
    if not dis.any():
        return DischargeSummary(
            0.0,
            None,
            "none",
            "the log has no discharging interval (status never Discharging on two consecutive rows)",
            gaps,
            period,
        )

    def pair_ok(a: np.ndarray) -> np.ndarray:
        return dis & ~np.isnan(a[:-1]) & ~np.isnan(a[1:])

    if trace.energy_wh is not None:
        ok = pair_ok(trace.energy_wh)
        if ok.any():
            fall_wh = -np.diff(trace.energy_wh)[ok]
            return DischargeSummary(
                discharging_s, float(np.sum(fall_wh)) * 3600.0, "energy_counter", None, gaps, period
            )
    if trace.charge_ah is not None:
        v_mid = (trace.voltage_v[:-1] + trace.voltage_v[1:]) / 2
        ok = pair_ok(trace.charge_ah) & ~np.isnan(v_mid)
        if ok.any():
            fall_ah = -np.diff(trace.charge_ah)[ok]
            return DischargeSummary(
                discharging_s, float(np.sum(fall_ah * v_mid[ok])) * 3600.0, "charge_counter*voltage", None, gaps, period
            )
    ok = pair_ok(power)
    if ok.any():
        e = (power[:-1] + power[1:]) * 0.5 * dt
        return DischargeSummary(discharging_s, float(np.sum(e[ok])), "power_integral", None, gaps, period)
    missing = "no energy_now, no charge_now with voltage, and no power or voltage×current on two discharging rows"
    return DischargeSummary(discharging_s, None, "none", missing, gaps, period)
