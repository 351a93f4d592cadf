"""devfreq devices (the Jetson GPU): discover, inspect, set a frequency, save and restore.

Frequencies are in **Hz**, as the devfreq ABI uses them (cpufreq uses kHz). Setting a frequency uses
the devfreq ``userspace`` governor and ``userspace/set_freq``; without it, ``min_freq = max_freq`` is
pinned in the safe order. The GPU node is found by globbing ``/sys/class/devfreq/*`` and matching
``gpu``, ``ga10b`` or ``gv11b``, because its path differs between boards and JetPack releases.
"""

from __future__ import annotations

import os
import re
from dataclasses import asdict, dataclass

from devices.errors import BadInputError, HardwareError
from devices.sysfs import Sysfs

DEVFREQ_CLASS = "sys/class/devfreq"
GPU_PATTERN = re.compile(r"gpu|ga10b|gv11b|gp10b", re.IGNORECASE)


@dataclass
class DevfreqState:
    governor: str
    min_hz: int
    max_hz: int

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class DevfreqDevice:
    """One ``/sys/class/devfreq/<name>`` device."""

    def __init__(self, sysfs: Sysfs, name: str) -> None:
        self.sysfs = sysfs
        self.name = name
        self.dir = f"{DEVFREQ_CLASS}/{name}"

    def _f(self, leaf: str) -> str:
        return f"{self.dir}/{leaf}"

    @property
    def is_gpu(self) -> bool:
        return bool(GPU_PATTERN.search(self.name))

    @property
    def available_hz(self) -> list[int]:
        text = self.sysfs.read_optional(self._f("available_frequencies")) or ""
        try:
            return sorted({int(x) for x in text.split()})
        except ValueError:
            raise HardwareError(f"{self.sysfs.path(self._f('available_frequencies'))}: not a Hz list") from None

    @property
    def governors(self) -> list[str]:
        return (self.sysfs.read_optional(self._f("available_governors")) or "").split()

    @property
    def governor(self) -> str:
        return self.sysfs.read(self._f("governor"))

    @property
    def cur_hz(self) -> int | None:
        return self.sysfs.read_int_optional(self._f("cur_freq"))

    @property
    def min_hz(self) -> int:
        return self.sysfs.read_int(self._f("min_freq"))

    @property
    def max_hz(self) -> int:
        return self.sysfs.read_int(self._f("max_freq"))

    def state(self) -> DevfreqState:
        return DevfreqState(governor=self.governor, min_hz=self.min_hz, max_hz=self.max_hz)

    def info(self) -> dict[str, object]:
        return {
            "name": self.name,
            "is_gpu": self.is_gpu,
            "available_hz": self.available_hz,
            "governors": self.governors,
            "governor": self.governor,
            "min_hz": self.min_hz,
            "max_hz": self.max_hz,
            "cur_hz": self.cur_hz,
        }

    def validate_frequency(self, freq_hz: int) -> None:
        """Raise :class:`BadInputError` unless ``freq_hz`` is listed (or in range without a list)."""
        table = self.available_hz
        if table and freq_hz not in table:
            raise BadInputError(
                f"{self.name}: {freq_hz} Hz is not an available frequency; choose one of "
                + " ".join(str(f) for f in table)
            )
        if not table and not self.min_hz <= freq_hz <= self.max_hz:
            raise BadInputError(f"{self.name}: {freq_hz} Hz is outside {self.min_hz}..{self.max_hz} Hz")

    def set_frequency(self, freq_hz: int) -> int | None:
        """Run the device at ``freq_hz`` (must be listed); returns ``cur_freq`` read back (Hz)."""
        self.validate_frequency(freq_hz)
        table = self.available_hz
        lo, hi = (table[0], table[-1]) if table else (self.min_hz, self.max_hz)
        if "userspace" in self.governors:
            if self.governor != "userspace":
                self.sysfs.write(self._f("governor"), "userspace")
            self._write_limits(lo, hi)
            self.sysfs.write(self._f("userspace/set_freq"), freq_hz)
        else:
            self._write_limits(freq_hz, freq_hz)
        return self.cur_hz

    def _write_limits(self, min_hz: int, max_hz: int) -> None:
        if min_hz > self.max_hz:
            self.sysfs.write(self._f("max_freq"), max_hz)
            self.sysfs.write(self._f("min_freq"), min_hz)
        else:
            self.sysfs.write(self._f("min_freq"), min_hz)
            self.sysfs.write(self._f("max_freq"), max_hz)

    def restore(self, state: DevfreqState) -> None:
        if self.governor != state.governor:
            self.sysfs.write(self._f("governor"), state.governor)
        self._write_limits(state.min_hz, state.max_hz)


def list_devfreq(sysfs: Sysfs) -> list[DevfreqDevice]:
    """All devfreq devices (empty on boards without devfreq)."""
    names = [os.path.basename(p) for p in sysfs.glob(f"{DEVFREQ_CLASS}/*")]
    return [DevfreqDevice(sysfs, n) for n in sorted(names)]


def find_gpu(sysfs: Sysfs) -> DevfreqDevice | None:
    """The GPU devfreq device, or ``None``."""
    for dev in list_devfreq(sysfs):
        if dev.is_gpu:
            return dev
    return None


def get_devfreq(sysfs: Sysfs, name: str) -> DevfreqDevice:
    devices = list_devfreq(sysfs)
    for dev in devices:
        if dev.name == name or (name == "gpu" and dev.is_gpu):
            return dev
    listed = ", ".join(d.name for d in devices) or "none"
    raise BadInputError(f"unknown devfreq device {name!r}; this board has: {listed}")
