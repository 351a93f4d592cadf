"""Energy over a time window from timestamped samples: trapezoids clipped at the edges, or counters.

:class:`WindowIntegrator` is fed samples in time order (live, by the sampler thread, or offline from a
list) and integrates only what lies inside ``[t_start_ns, t_end_ns]``:

* **Trapezoids.** Between two consecutive samples power is taken as linear in time; a window edge that
  falls between two samples is placed exactly by linear interpolation, so a window never gains or loses
  the part of a segment outside it.
* **Counters.** Where every sample carries a cumulative ``energy_j`` counter (RAPL, the UM's mWh), the
  counter difference between the edges (each edge interpolated between its two neighbouring samples)
  is computed too. It is the window's energy when its quantisation (two steps) is at most
  :data:`COUNTER_MAX_RELATIVE_ERROR` of the energy or smaller than the trapezoids' own uncertainty
  (half the gap between left and right Riemann sums, ``trapezoid_error_bound_j``); otherwise
  trapezoids are.
* **Gaps.** An interval between samples longer than ``gap_ns``, or one during which a fault (stall,
  disconnect) was reported, is counted as a gap; ``coverage`` is the fraction of the window not in
  gaps. Before the first and after the last sample the power is held (zero-order) and that stretch
  counts as a gap when longer than ``gap_ns``.

Mean voltage and current are time-weighted over the window when every sample reports them.
Units: ns in, J / W / V / A / s out. Nothing here reads a clock.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

from devices.errors import BadInputError
from devices.meters.samples import Sample

#: A counter is trusted when twice its resolution is at most this fraction of the window's energy.
COUNTER_MAX_RELATIVE_ERROR = 0.005


@dataclass
class WindowResult:
    """What one measurement window measured. Units are in the field names.

    Energy and mean power are ``None`` (method ``"none"``) only for a window of a meter that measures
    nothing (:class:`~devices.meters.empty.EmptyMeter`): "no energy available", never a pretended 0 J.
    """

    key: str
    t_start_ns: int
    t_end_ns: int
    duration_s: float
    energy_j: float | None
    energy_method: str  # "counter" or "trapezoid" (or "none" with no samples at all)
    trapezoid_energy_j: float | None
    #: Half the difference of the left and right Riemann sums: how far trapezoids may be off (J).
    trapezoid_error_bound_j: float | None
    counter_energy_j: float | None
    mean_power_w: float | None
    peak_power_w: float | None
    min_power_w: float | None
    mean_voltage_v: float | None
    mean_current_a: float | None
    samples: int
    coverage: float
    gap_s: float
    complete: bool
    events: list[str] = field(default_factory=list)
    idle_power_w: float | None = None
    net_energy_j: float | None = None
    net_mean_power_w: float | None = None

    @classmethod
    def no_energy(cls, key: str, t_start_ns: int, t_end_ns: int, reason: str) -> WindowResult:
        """A window over which no energy could be measured at all (no meter): energy and power ``None``."""
        duration_s = max(0, t_end_ns - t_start_ns) / 1e9
        return cls(
            key=key,
            t_start_ns=t_start_ns,
            t_end_ns=t_end_ns,
            duration_s=duration_s,
            energy_j=None,
            energy_method="none",
            trapezoid_energy_j=None,
            trapezoid_error_bound_j=None,
            counter_energy_j=None,
            mean_power_w=None,
            peak_power_w=None,
            min_power_w=None,
            mean_voltage_v=None,
            mean_current_a=None,
            samples=0,
            coverage=0.0,
            gap_s=duration_s,
            complete=False,
            events=[reason],
        )

    @property
    def energy_available(self) -> bool:
        """False for a window of a meter that measures nothing."""
        return self.energy_j is not None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    def with_idle(self, idle_power_w: float) -> WindowResult:
        """The same result with the idle baseline ``idle_power_w`` (W) subtracted into ``net_*``.

        A window without energy stays without: its ``net_*`` fields remain ``None``.
        """
        if self.energy_j is None:
            return self
        net = self.energy_j - idle_power_w * self.duration_s
        self.idle_power_w = idle_power_w
        self.net_energy_j = net
        self.net_mean_power_w = net / self.duration_s if self.duration_s > 0 else 0.0
        return self


def _lerp(t: int, t0: int, t1: int, y0: float, y1: float) -> float:
    if t1 == t0:
        return y1
    return y0 + (y1 - y0) * (t - t0) / (t1 - t0)


class WindowIntegrator:
    """Streaming integral of one window; feed samples in time order, then :meth:`result`.

    ``prev`` is the last sample seen before the window began (or ``None``). ``gap_ns`` is the longest
    interval between samples that is not a gap. ``counter_resolution_j`` is the counter's step (J), or
    ``None`` when the meter has no counter.
    """

    def __init__(
        self,
        key: str,
        t_start_ns: int,
        gap_ns: int,
        counter_resolution_j: float | None = None,
        prev: Sample | None = None,
    ) -> None:
        if gap_ns <= 0:
            raise BadInputError(f"gap threshold must be positive, got {gap_ns} ns")
        self.key = key
        self.t_start_ns = t_start_ns
        self.t_end_ns: int | None = None
        self.gap_ns = gap_ns
        self.counter_resolution_j = counter_resolution_j
        self.prev = prev
        #: No sample precedes the window start, so its leading edge cannot be interpolated.
        self.lead_missing = prev is None
        self.first_inside: Sample | None = None
        self.first_fed: Sample | None = None
        self._energy = 0.0
        self._trap_bound = 0.0  # half the left/right Riemann-sum difference: the trapezoids' uncertainty
        self._volt_int = 0.0
        self._curr_int = 0.0
        self._vi_ok = True
        self._counter = 0.0
        self._counter_ok = counter_resolution_j is not None
        self._gap = 0
        self._n = 0
        self._peak: float | None = None
        self._min: float | None = None
        self.events: list[str] = []
        self._faults = 0
        self._fault_pending = False
        if prev is not None and prev.t_ns >= t_start_ns:
            self._count(prev)

    # -- feeding ------------------------------------------------------------------------------------
    def set_end(self, t_end_ns: int) -> None:
        """Fix the window's end; samples after it only close the last segment."""
        if t_end_ns < self.t_start_ns:
            raise BadInputError(f"window {self.key!r}: end {t_end_ns} ns is before its start {self.t_start_ns} ns")
        self.t_end_ns = t_end_ns

    @property
    def closed(self) -> bool:
        """True once a sample at or after the end has been fed (the trailing edge is exact)."""
        return self.t_end_ns is not None and self.prev is not None and self.prev.t_ns >= self.t_end_ns

    def add_event(self, message: str, fault: bool = True) -> None:
        """Attach an event; a ``fault`` (stall, disconnect, error) makes the window incomplete."""
        self.events.append(message)
        self._faults += int(fault)
        # The interval from the last sample to the next one spans the fault: it counts as a gap.
        self._fault_pending = self._fault_pending or fault

    def _extreme(self, p: float) -> None:
        self._peak = p if self._peak is None else max(self._peak, p)
        self._min = p if self._min is None else min(self._min, p)

    def _count(self, s: Sample) -> None:
        self._n += 1
        self._extreme(s.power_w)
        if self.first_inside is None:
            self.first_inside = s

    def feed(self, s: Sample) -> None:
        """Add one sample (time order; a sample older than the previous one is ignored)."""
        a = self.prev
        if a is not None and s.t_ns < a.t_ns:
            return
        end = self.t_end_ns if self.t_end_ns is not None else math.inf
        if self.t_start_ns <= s.t_ns <= end:
            self._count(s)
        if a is None:
            self.prev = s
            if self.first_fed is None:
                self.first_fed = s
            return
        lo = max(a.t_ns, self.t_start_ns)
        hi = min(s.t_ns, end)
        if hi > lo:
            hi_i = int(hi)
            p_lo = _lerp(lo, a.t_ns, s.t_ns, a.power_w, s.power_w)
            p_hi = _lerp(hi_i, a.t_ns, s.t_ns, a.power_w, s.power_w)
            self._extreme(p_lo)
            self._extreme(p_hi)
            dt_s = (hi_i - lo) / 1e9
            self._energy += 0.5 * (p_lo + p_hi) * dt_s
            self._trap_bound += 0.5 * abs(p_hi - p_lo) * dt_s
            if None in (a.voltage_v, s.voltage_v, a.current_a, s.current_a):
                self._vi_ok = False
            else:
                assert a.voltage_v is not None and s.voltage_v is not None
                assert a.current_a is not None and s.current_a is not None
                v_lo = _lerp(lo, a.t_ns, s.t_ns, a.voltage_v, s.voltage_v)
                v_hi = _lerp(hi_i, a.t_ns, s.t_ns, a.voltage_v, s.voltage_v)
                i_lo = _lerp(lo, a.t_ns, s.t_ns, a.current_a, s.current_a)
                i_hi = _lerp(hi_i, a.t_ns, s.t_ns, a.current_a, s.current_a)
                self._volt_int += 0.5 * (v_lo + v_hi) * dt_s
                self._curr_int += 0.5 * (i_lo + i_hi) * dt_s
            if a.energy_j is None or s.energy_j is None:
                self._counter_ok = False
            elif s.energy_j < a.energy_j:
                if self._counter_ok:
                    self.events.append("energy counter went backwards (meter reset?); using trapezoids")
                self._counter_ok = False
            else:
                e_lo = _lerp(lo, a.t_ns, s.t_ns, a.energy_j, s.energy_j)
                e_hi = _lerp(hi_i, a.t_ns, s.t_ns, a.energy_j, s.energy_j)
                self._counter += e_hi - e_lo
            if s.t_ns - a.t_ns > self.gap_ns or self._fault_pending:
                self._gap += hi_i - lo
            self._fault_pending = False
        self.prev = s

    # -- result -------------------------------------------------------------------------------------
    def result(self, t_end_ns: int | None = None) -> WindowResult:
        """The window's result; the end defaults to the one given to :meth:`set_end`."""
        if t_end_ns is not None:
            self.set_end(t_end_ns)
        if self.t_end_ns is None:
            raise BadInputError(f"window {self.key!r}: no end time")
        t0, t1 = self.t_start_ns, self.t_end_ns
        duration_ns = t1 - t0
        energy = self._energy
        gap = self._gap
        volt_int, curr_int = self._volt_int, self._curr_int
        counter_ok = self._counter_ok
        events = list(self.events)
        last = self.prev
        # Leading stretch with no sample before it: hold the first sample inside the window.
        head = self.first_fed
        if self.lead_missing and head is not None and head.t_ns > t0:
            lead = min(head.t_ns, t1) - t0
            energy += head.power_w * lead / 1e9
            if head.voltage_v is not None and head.current_a is not None:
                volt_int += head.voltage_v * lead / 1e9
                curr_int += head.current_a * lead / 1e9
            if self.first_inside is None:
                self._extreme(head.power_w)
            if lead > self.gap_ns:
                gap += lead
                events.append(f"no sample in the first {lead / 1e9:.3f} s of the window")
            counter_ok = False
        # Trailing stretch after the last sample (none at or after the end arrived): hold its power.
        if last is not None and last.t_ns < t1:
            tail = t1 - max(last.t_ns, t0)
            energy += last.power_w * tail / 1e9
            if last.voltage_v is not None and last.current_a is not None:
                volt_int += last.voltage_v * tail / 1e9
                curr_int += last.current_a * tail / 1e9
            if tail > self.gap_ns or self._fault_pending:
                gap += tail
                events.append(f"no sample in the last {tail / 1e9:.3f} s of the window")
            counter_ok = False
            if self._peak is None:
                self._extreme(last.power_w)
        if last is None:
            gap = duration_ns
            events.append("no samples")
        duration_s = duration_ns / 1e9
        counter_energy = self._counter if counter_ok and self.counter_resolution_j is not None else None
        method = "trapezoid" if last is not None else "none"
        chosen = energy
        if counter_energy is not None:
            assert self.counter_resolution_j is not None
            scale = max(abs(counter_energy), abs(energy))
            quantisation = 2 * self.counter_resolution_j
            if quantisation <= max(COUNTER_MAX_RELATIVE_ERROR * scale, self._trap_bound) or energy == 0.0:
                method, chosen = "counter", counter_energy
        coverage = 1.0 - gap / duration_ns if duration_ns > 0 else (1.0 if last is not None else 0.0)
        coverage = min(1.0, max(0.0, coverage))
        vi_ok = self._vi_ok and last is not None and last.voltage_v is not None and last.current_a is not None
        return WindowResult(
            key=self.key,
            t_start_ns=t0,
            t_end_ns=t1,
            duration_s=duration_s,
            energy_j=chosen,
            energy_method=method,
            trapezoid_energy_j=energy,
            trapezoid_error_bound_j=self._trap_bound,
            counter_energy_j=counter_energy,
            mean_power_w=chosen / duration_s if duration_s > 0 else (last.power_w if last else 0.0),
            peak_power_w=self._peak,
            min_power_w=self._min,
            mean_voltage_v=volt_int / duration_s if vi_ok and duration_s > 0 else None,
            mean_current_a=curr_int / duration_s if vi_ok and duration_s > 0 else None,
            samples=self._n,
            coverage=coverage,
            gap_s=gap / 1e9,
            complete=gap == 0 and self._faults == 0,
            events=events,
        )


def integrate(
    samples: Iterable[Sample],
    t_start_ns: int,
    t_end_ns: int,
    *,
    gap_ns: int = 10**12,
    counter_resolution_j: float | None = None,
    key: str = "window",
) -> WindowResult:
    """Integrate a time-ordered sample sequence over ``[t_start_ns, t_end_ns]`` (offline).

    Samples before the start are used only to interpolate the leading edge, those after the end only for
    the trailing edge.
    """
    it = iter(samples)
    prev: Sample | None = None
    pending: Sample | None = None
    for s in it:
        if s.t_ns <= t_start_ns:
            prev = s
            continue
        pending = s
        break
    w = WindowIntegrator(key, t_start_ns, gap_ns, counter_resolution_j, prev=prev)
    w.set_end(t_end_ns)
    if pending is not None:
        w.feed(pending)
        for s in it:
            w.feed(s)
            if s.t_ns >= t_end_ns:
                break
    return w.result()
