"""``replay://FILE.csv`` — replays a recorded sample CSV (``testbed meter read --csv``) in real time.

Samples come out with their recorded spacing, shifted so that the first one is "now" when the meter is
opened, and divided by ``speed`` (``?speed=10`` replays ten times faster; timestamps are compressed
accordingly). ``?loop=1`` starts over at the end; otherwise the meter is exhausted
(:class:`~devices.meters.base.MeterExhausted`) after the last sample. Counters (``energy_j``) are kept
continuous across loops.

A trace marked ``# semantics=zero_order_hold`` (the ``traces`` power-trace format, ``t_s,power_w``)
is replayed as steps: each value holds until the next row, as that format means.

Failures: a missing or malformed file → :class:`~devices.errors.ParseError` /
:class:`~devices.errors.BadInputError` at open, naming the file and line.
"""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

from devices.meters.base import Clock, MeterExhausted, PowerMeter, Sleep, float_param, raise_bad
from devices.meters.samples import Sample, read_samples_csv
from devices.meters.uri import MeterURI


def hold_steps(samples: list[Sample]) -> list[Sample]:
    """A zero-order-hold trace as samples that linear integration reads as steps.

    Each value is repeated 1 ns before the next change, so trapezoids integrate exactly the held power.
    """
    out: list[Sample] = []
    for a, b in itertools.pairwise(samples):
        out.append(a)
        if b.t_ns - a.t_ns > 1 and b.power_w != a.power_w:
            out.append(Sample(b.t_ns - 1, a.power_w, a.voltage_v, a.current_a, a.energy_j))
    out.append(samples[-1])
    return out


class ReplayMeter(PowerMeter):
    """A recorded trace played back on the meter's clock."""

    scheme = "replay"

    def __init__(
        self, uri: str, path: Path, *, speed: float = 1.0, loop: bool = False, clock: Clock, sleep: Sleep | None = None
    ) -> None:
        super().__init__(uri, clock)
        self.path = path
        self.speed = speed
        self.loop = loop
        self.poll_period_s = None
        self._sleep: Sleep = sleep if sleep is not None else time.sleep
        self.samples: list[Sample] = []
        self._i = 0
        self._base_ns = 0
        self._loop_shift_ns = 0
        self._energy_shift = 0.0

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> ReplayMeter:
        if not parsed.target:
            raise_bad(parsed.raw, "which file? use replay://samples.csv")
        speed = float_param(parsed.params, "speed", 1.0, parsed.raw)
        if speed <= 0:
            raise_bad(parsed.raw, "speed must be positive")
        loop = parsed.params.get("loop", "0").lower() in ("1", "true", "yes")
        return cls(parsed.raw, Path(parsed.target), speed=speed, loop=loop, clock=clock, sleep=options.get("sleep"))

    def open(self) -> None:
        if self.is_open:
            return
        if not self.samples:
            samples, meta = read_samples_csv(self.path)
            if not samples:
                raise_bad(self.uri, f"{self.path} has no samples")
            if meta.get("semantics") == "zero_order_hold":
                samples = hold_steps(samples)
                self.notes = ["zero-order-hold trace: replayed as steps"]
            self.samples = samples
            spacing = [(b.t_ns - a.t_ns) for a, b in zip(self.samples, self.samples[1:], strict=False)]
            if spacing:
                self.nominal_period_s = max(1e-6, sorted(spacing)[len(spacing) // 2] / 1e9 / self.speed)
        self._base_ns = self.clock()
        self._i = 0
        self._loop_shift_ns = 0
        self.is_open = True

    def reconnect(self) -> None:
        """A replay has nothing to reconnect: keep the position."""

    def read(self) -> Sample:
        if not self.is_open:
            self.open()
        if self._i >= len(self.samples):
            if not self.loop:
                raise MeterExhausted(f"{self.path}: end of the recorded trace")
            first, last = self.samples[0], self.samples[-1]
            self._loop_shift_ns += last.t_ns - first.t_ns + round(self.nominal_period_s * self.speed * 1e9)
            if last.energy_j is not None and first.energy_j is not None:
                self._energy_shift += last.energy_j - first.energy_j
            self._i = 0
        rec = self.samples[self._i]
        self._i += 1
        offset = rec.t_ns - self.samples[0].t_ns + self._loop_shift_ns
        due = self._base_ns + round(offset / self.speed)
        now = self.clock()
        if due > now:
            self._sleep((due - now) / 1e9)
        energy = rec.energy_j + self._energy_shift if rec.energy_j is not None else None
        return Sample(due, rec.power_w, voltage_v=rec.voltage_v, current_a=rec.current_a, energy_j=energy)
