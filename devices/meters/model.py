"""``model://PROFILE`` — modelled board power when there is no meter.

Power follows :mod:`devices.meters.power_model` from the board profile's coefficients, the current
frequency of each policy (``scaling_cur_freq`` under the sysfs root; a policy missing there is taken at
its highest step and noted) and the CPU utilisation: by default ``psutil.cpu_percent(percpu=True)``
over each poll interval, or an ``activity`` callable passed to :func:`~devices.meters.registry.open_meter`
that returns per-CPU utilisation (0..1) from the workload itself (e.g. 1.0 on the cores running an
inference; CPUs it does not name are idle). With psutil, CPUs of the profile that the host lacks
(emulating a 4-core Pi on 2 cores) get the host's mean utilisation. The GPU term of Jetson profiles
is not modelled yet.

URI: ``model://rpi4`` or ``model://path/to/profile.toml``; ``rate_hz`` (default 10). The result is an
estimate — its accuracy is only as good as the profile's calibration (``testbed meter calibrate``).
Failures: unknown profile → :class:`~devices.errors.BadInputError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import psutil

from devices.board_profile import BoardProfile, load_profile
from devices.meters.base import Clock, PowerMeter, raise_bad, rate_param
from devices.meters.power_model import model_power_w
from devices.meters.samples import Sample
from devices.meters.uri import MeterURI
from devices.sysfs import Sysfs

Activity = Callable[[], Mapping[int, float]]

CPUFREQ_DIR = "sys/devices/system/cpu/cpufreq"


def psutil_activity() -> Activity:
    """Per-CPU utilisation since the previous call, from psutil (0..1)."""
    psutil.cpu_percent(percpu=True)  # prime: the first call measures nothing

    def read() -> dict[int, float]:
        return {i: p / 100.0 for i, p in enumerate(psutil.cpu_percent(percpu=True))}

    return read


class ModelMeter(PowerMeter):
    """Power from a board profile's model; never fails at run time."""

    scheme = "model"

    def __init__(
        self,
        uri: str,
        profile: BoardProfile,
        sysfs: Sysfs,
        poll_period_s: float,
        *,
        clock: Clock,
        activity: Activity | None = None,
    ) -> None:
        super().__init__(uri, clock)
        self.profile = profile
        self.sysfs = sysfs
        self.poll_period_s = poll_period_s
        self.nominal_period_s = poll_period_s
        self._activity_given = activity
        self._activity: Activity | None = activity
        self._noted: set[str] = set()

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> ModelMeter:
        if not parsed.target:
            raise_bad(parsed.raw, "which board profile? use e.g. model://rpi4")
        profile = load_profile(parsed.target)
        period = rate_param(parsed.params, 10.0, parsed.raw, max_hz=1000.0)
        activity = options.get("activity")
        return cls(parsed.raw, profile, Sysfs(sysfs_root), period, clock=clock, activity=activity)

    def open(self) -> None:
        if self.is_open:
            return
        if self._activity is None:
            self._activity = psutil_activity()
        self.notes = [
            f"modelled from profile {self.profile.name} ({self.profile.power_model.source[:80]})",
            "utilisation: " + ("workload activity" if self._activity_given else "psutil per-CPU"),
        ]
        self.is_open = True

    def frequencies(self) -> dict[str, float]:
        """Current frequency (kHz) of each modelled policy."""
        out: dict[str, float] = {}
        for pm in self.profile.power_model.cpu:
            khz = self.sysfs.read_int_optional(f"{CPUFREQ_DIR}/{pm.policy}/scaling_cur_freq")
            if khz is None:
                if pm.policy not in self._noted:
                    self._noted.add(pm.policy)
                    self.emit("note", f"{pm.policy}: no scaling_cur_freq under {self.sysfs.root}; using its top step")
                continue
            out[pm.policy] = float(khz)
        return out

    def utilisation(self) -> dict[int, float]:
        """Per-CPU utilisation for every CPU of the profile (host mean for CPUs the host lacks)."""
        assert self._activity is not None
        raw = dict(self._activity())
        # psutil on a host with fewer CPUs than the board: spread the host's mean load; a workload's own
        # activity means exactly what it says (a CPU it does not name is idle).
        mean = sum(raw.values()) / len(raw) if raw and self._activity_given is None else 0.0
        out: dict[int, float] = {}
        for pol in self.profile.policies:
            for c in pol.cpus:
                out[c] = raw.get(c, mean)
        return out

    def read(self) -> Sample:
        if self._activity is None:
            self.open()
        t = self.clock()
        power = model_power_w(self.profile, self.frequencies(), self.utilisation())
        v = self.profile.power_model.supply_voltage_v
        return Sample(t, power, voltage_v=v, current_a=power / v if v > 0 else None)
