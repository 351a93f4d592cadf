"""Analytic power waveforms (with exact integrals) and the ``wave://`` fake meter.

Waveforms give power (W) as a function of seconds since the start and their exact energy over any
interval, so tests and benchmarks compare measured energy with ground truth:

* ``const`` — ``power_w``;
* ``square`` — ``high_w`` for ``duty·period_s`` then ``low_w``, repeating;
* ``ramp`` — sawtooth from ``low_w`` up to ``high_w`` over each ``period_s``;
* ``sine`` — ``(low_w+high_w)/2 + (high_w-low_w)/2·sin(2πt/period_s)``.

``wave://square?low_w=2&high_w=6&period_s=1&duty=0.5&rate_hz=100&voltage_v=5`` is a polled meter that
samples the waveform on its clock (so with a :class:`~devices.meters.clock.ManualClock` it runs
instantly and deterministically).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.meters.base import Clock, PowerMeter, float_param, raise_bad, rate_param
from devices.meters.samples import Sample
from devices.meters.uri import MeterURI

SHAPES = ("const", "square", "ramp", "sine")


@dataclass(frozen=True)
class Waveform:
    """A periodic power waveform; ``power_w(t_s)`` and the exact ``energy_j(t0_s, t1_s)``."""

    shape: str = "const"
    low_w: float = 2.0
    high_w: float = 6.0
    period_s: float = 1.0
    duty: float = 0.5

    def power_w(self, t_s: float) -> float:
        if self.shape == "const":
            return self.high_w
        phase = (t_s / self.period_s) % 1.0
        if self.shape == "square":
            return self.high_w if phase < self.duty else self.low_w
        if self.shape == "ramp":
            return self.low_w + (self.high_w - self.low_w) * phase
        mid, amp = (self.low_w + self.high_w) / 2, (self.high_w - self.low_w) / 2
        return mid + amp * math.sin(2 * math.pi * t_s / self.period_s)

    def _cumulative(self, t_s: float) -> float:
        """Exact energy from 0 to ``t_s`` (J)."""
        if self.shape == "const":
            return self.high_w * t_s
        n, rem = divmod(t_s, self.period_s)
        per = self._within(self.period_s)
        return n * per + self._within(rem)

    def _within(self, x: float) -> float:
        """Energy over ``[0, x]`` inside one period (0 ≤ x ≤ period)."""
        p = self.period_s
        if self.shape == "square":
            on = min(x, self.duty * p)
            return self.high_w * on + self.low_w * (x - on)
        if self.shape == "ramp":
            return self.low_w * x + (self.high_w - self.low_w) * x * x / (2 * p)
        mid, amp = (self.low_w + self.high_w) / 2, (self.high_w - self.low_w) / 2
        return mid * x + amp * p / (2 * math.pi) * (1 - math.cos(2 * math.pi * x / p))

    def energy_j(self, t0_s: float, t1_s: float) -> float:
        """Exact energy between ``t0_s`` and ``t1_s`` (J)."""
        return self._cumulative(t1_s) - self._cumulative(t0_s)


def waveform_from_params(shape: str, params: dict[str, str], uri: str) -> Waveform:
    if shape not in SHAPES:
        raise_bad(uri, f"unknown waveform {shape!r}; shapes: {', '.join(SHAPES)}")
    if shape == "const":
        p = float_param(params, "power_w", float_param(params, "high_w", 3.0, uri), uri)
        return Waveform("const", p, p)
    wf = Waveform(
        shape,
        low_w=float_param(params, "low_w", 2.0, uri),
        high_w=float_param(params, "high_w", 6.0, uri),
        period_s=float_param(params, "period_s", 1.0, uri),
        duty=float_param(params, "duty", 0.5, uri),
    )
    if wf.period_s <= 0 or not 0 <= wf.duty <= 1:
        raise_bad(uri, "period_s must be positive and duty within 0..1")
    return wf


class WaveformMeter(PowerMeter):
    """Samples a :class:`Waveform` at ``rate_hz`` on the meter clock (time 0 = open)."""

    scheme = "wave"

    def __init__(self, uri: str, waveform: Waveform, poll_period_s: float, voltage_v: float, *, clock: Clock) -> None:
        super().__init__(uri, clock)
        self.waveform = waveform
        self.poll_period_s = poll_period_s
        self.nominal_period_s = poll_period_s
        self.voltage_v = voltage_v
        self.t0_ns = 0

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> WaveformMeter:
        wf = waveform_from_params(parsed.target or "const", parsed.params, parsed.raw)
        period = rate_param(parsed.params, 100.0, parsed.raw)
        volts = float_param(parsed.params, "voltage_v", 5.0, parsed.raw)
        if volts <= 0:
            raise_bad(parsed.raw, "voltage_v must be positive")
        return cls(parsed.raw, wf, period, volts, clock=clock)

    def open(self) -> None:
        if not self.is_open:
            self.t0_ns = self.clock()
            self.notes = [f"synthetic {self.waveform.shape} waveform (fake meter)"]
            self.is_open = True

    def read(self) -> Sample:
        t = self.clock()
        p = self.waveform.power_w((t - self.t0_ns) / 1e9)
        return Sample(t, p, voltage_v=self.voltage_v, current_a=p / self.voltage_v)

    def energy_between_ns(self, t0_ns: int, t1_ns: int) -> float:
        """Exact energy between two clock times (J)."""
        return self.waveform.energy_j((t0_ns - self.t0_ns) / 1e9, (t1_ns - self.t0_ns) / 1e9)
