"""Live recorders: sample a board's sysfs at a fixed period into typed events.

:class:`DvfsRecorder` polls every cpufreq policy (and optionally the GPU's devfreq clock) and reports
each frequency *change* as a :class:`FreqEvent`; :class:`SupplyRecorder` reads a ``power_supply``'s raw
attribute texts as a :class:`SupplyReading`. Both read through :class:`~devices.sysfs.Sysfs`, so an
emulated board's root works like ``/``. Turning events into a trace file is the trace formats' job
(:mod:`traces.record`); nothing here knows a file format.

Samples are scheduled on absolute times (``start + k·period``, :func:`run_schedule`), so the period does
not drift; a sample that runs late is taken at once. Ctrl-C (``KeyboardInterrupt``) ends a recording
early and is reported as ``interrupted``, keeping what was delivered.

Failure modes: :class:`~devices.errors.BadInputError` for a bad period/duration/sample count, an unknown
frequency source, a board without a GPU devfreq device when one is asked for, or an unknown supply; a
root without cpufreq raises :class:`~devices.errors.UnsupportedError`; sysfs read errors propagate as
the project's errors.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from devices.cpufreq import list_policies
from devices.devfreq import find_gpu
from devices.errors import BadInputError
from devices.sysfs import Sysfs

#: Frequency files a DVFS recording may sample: the kernel's request, or the hardware clock (root-only).
DVFS_SOURCES = ("scaling_cur_freq", "cpuinfo_cur_freq")
POWER_SUPPLY_DIR = "sys/class/power_supply"
#: ``power_supply`` attributes a supply recording reads (those absent on a driver are skipped).
SUPPLY_ATTRIBUTES = (
    "status",
    "voltage_now",
    "current_now",
    "power_now",
    "capacity",
    "temp",
    "charge_now",
    "charge_full",
    "energy_now",
    "energy_full",
)


class Clock(Protocol):
    """Time source of a recorder (seconds); tests pass a simulated one."""

    def now(self) -> float: ...

    def sleep_until(self, t: float) -> None: ...


class MonotonicClock:
    """``time.monotonic`` and ``time.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, t: float) -> None:
        delay = t - time.monotonic()
        if delay > 0:
            time.sleep(delay)


#: ``on_sample(k, t_s)`` after the k-th sample (1-based), at ``t_s`` seconds into the recording.
OnSample = Callable[[int, float], None]


@dataclass(frozen=True)
class Schedule:
    """When to sample: every ``period_s`` seconds until ``duration_s`` has passed or ``max_samples`` were taken.

    At least one bound is required; :class:`BadInputError` (naming the CLI option) otherwise.
    """

    period_s: float
    duration_s: float | None = None
    max_samples: int | None = None

    def __post_init__(self) -> None:
        if not (self.period_s > 0 and math.isfinite(self.period_s)):
            raise BadInputError(f"--period-s must be a positive number of seconds, got {self.period_s}")
        if self.duration_s is not None and not (self.duration_s >= 0 and math.isfinite(self.duration_s)):
            raise BadInputError(f"--duration-s must be ≥ 0 seconds, got {self.duration_s}")
        if self.max_samples is not None and self.max_samples < 1:
            raise BadInputError(f"--samples must be ≥ 1, got {self.max_samples}")
        if self.duration_s is None and self.max_samples is None:
            raise BadInputError("give --duration-s or --samples (or both)")


@dataclass(frozen=True)
class RecordingStats:
    """How a recording went: samples taken, seconds covered (time of the last sample), Ctrl-C or not."""

    samples: int
    duration_s: float
    interrupted: bool


def run_schedule(
    schedule: Schedule,
    take: Callable[[float], None],
    clock: Clock | None = None,
    on_sample: OnSample | None = None,
) -> RecordingStats:
    """Call ``take(t_s)`` at ``t_s = k · period_s`` (seconds since the start) until the schedule ends."""
    clock = clock or MonotonicClock()
    start = clock.now()
    k = 0
    t = 0.0
    try:
        while True:
            target = start + k * schedule.period_s
            if schedule.duration_s is not None and target - start > schedule.duration_s + 1e-9:
                break
            if schedule.max_samples is not None and k >= schedule.max_samples:
                break
            clock.sleep_until(target)
            t = clock.now() - start
            take(t)
            k += 1
            if on_sample is not None:
                on_sample(k, t)
    except KeyboardInterrupt:
        return RecordingStats(k, t, True)
    return RecordingStats(k, t, False)


@dataclass(frozen=True)
class FreqEvent:
    """A frequency domain's clock changed: at ``time_s`` (s since the start) ``domain`` runs at ``freq_khz``."""

    time_s: float
    domain: str
    freq_khz: int


class DvfsRecorder:
    """Frequency changes of every cpufreq policy (and with ``gpu`` the GPU's devfreq clock, in kHz).

    ``source`` is ``scaling_cur_freq`` (the kernel's last request, readable by anyone) or
    ``cpuinfo_cur_freq`` (the hardware clock; root-only on real kernels). :attr:`domains` maps each
    domain to its CPUs (``()`` for the GPU); :attr:`gpu_device` names the devfreq device when recorded.
    """

    def __init__(self, sysfs: Sysfs, source: str = "scaling_cur_freq", gpu: bool = False) -> None:
        if source not in DVFS_SOURCES:
            raise BadInputError(f"unknown frequency source {source!r}; use one of {', '.join(DVFS_SOURCES)}")
        policies = list_policies(sysfs)
        if not policies:
            raise BadInputError(f"{sysfs.path('sys/devices/system/cpu/cpufreq')}: no cpufreq policies")
        self.sysfs = sysfs
        self.source = source
        #: (domain, file, divisor to kHz) per domain, read in this order at every sample.
        self._reads: list[tuple[str, str, int]] = [(p.name, f"{p.dir}/{source}", 1) for p in policies]
        self.domains: dict[str, tuple[int, ...]] = {p.name: tuple(p.cpus) for p in policies}
        self.gpu_device: str | None = None
        if gpu:
            dev = find_gpu(sysfs)
            if dev is None:
                raise BadInputError(f"{sysfs.path('sys/class/devfreq')}: no GPU devfreq device on this board")
            self._reads.append(("gpu", f"{dev.dir}/cur_freq", 1000))
            self.domains["gpu"] = ()
            self.gpu_device = dev.name
        self._current: dict[str, int] = {}

    def sample(self, time_s: float) -> list[FreqEvent]:
        """The domains whose clock differs from the last sample (all of them the first time).

        A domain whose file cannot be read (or reads ≤ 0) is skipped for that sample.
        """
        events: list[FreqEvent] = []
        for name, path, divisor in self._reads:
            value = self.sysfs.read_int_optional(path)
            if value is None or value <= 0:
                continue
            khz = round(value / divisor)
            if self._current.get(name) == khz:
                continue
            self._current[name] = khz
            events.append(FreqEvent(time_s, name, khz))
        return events


def find_battery(sysfs: Sysfs) -> str:
    """The first ``power_supply`` whose ``type`` is ``Battery``; :class:`BadInputError` if none."""
    names = sysfs.listdir(POWER_SUPPLY_DIR) if sysfs.is_dir(POWER_SUPPLY_DIR) else []
    for n in names:
        if (sysfs.read_optional(f"{POWER_SUPPLY_DIR}/{n}/type") or "").strip() == "Battery":
            return n
    listed = ", ".join(names) or "none"
    raise BadInputError(
        f"{sysfs.path(POWER_SUPPLY_DIR)}: no power_supply of type Battery (found: {listed}); pass --supply"
    )


@dataclass(frozen=True)
class SupplyReading:
    """The raw attribute texts of a ``power_supply`` at ``time_s`` (s since the start), keyed by name."""

    time_s: float
    attrs: dict[str, str]


class SupplyRecorder:
    """Reads ``/sys/class/power_supply/<supply>`` (default: the first Battery); units as the kernel ABI."""

    def __init__(self, sysfs: Sysfs, supply: str | None = None) -> None:
        name = supply or find_battery(sysfs)
        base = f"{POWER_SUPPLY_DIR}/{name}"
        if not sysfs.is_dir(base):
            raise BadInputError(f"{sysfs.path(base)}: no such power_supply")
        self.present = [a for a in SUPPLY_ATTRIBUTES if sysfs.exists(f"{base}/{a}")]
        if "voltage_now" not in self.present:
            raise BadInputError(f"{sysfs.path(base)}: no voltage_now; is {name} a battery?")
        self.sysfs = sysfs
        self.name = name
        self.base = base

    def where(self) -> str:
        """The supply's directory (real path), for error messages."""
        return str(self.sysfs.path(self.base))

    def sample(self, time_s: float) -> SupplyReading:
        """The attributes readable now (one that vanished or fails to read is left out)."""
        attrs = {a: v for a in self.present if (v := self.sysfs.read_optional(f"{self.base}/{a}")) is not None}
        return SupplyReading(time_s, attrs)
