"""cpufreq policies: enumerate, inspect, set a frequency safely, read back the hardware clock.

Kernel semantics this module relies on (``Documentation/admin-guide/pm/cpufreq.rst``):
frequencies are in kHz; ``scaling_setspeed`` works only under the ``userspace`` governor; the kernel
keeps ``scaling_min_freq <= scaling_max_freq``; ``scaling_cur_freq`` is usually the last *requested*
frequency, while ``cpuinfo_cur_freq`` (root-only) is what the hardware reports.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field

from devices.commands import CommandRunner
from devices.errors import BadInputError, HardwareError, UnsupportedError
from devices.sysfs import Sysfs

CPUFREQ_DIR = "sys/devices/system/cpu/cpufreq"

#: Relative difference between requested and hardware frequency above which a mismatch is flagged.
MISMATCH_TOLERANCE = 0.02


def parse_cpu_list(text: str) -> list[int]:
    """Parse a kernel CPU list (``"0-3"``, ``"0 1 2 3"``, ``"0-1,4-5"``) into sorted CPU numbers.

    Raises :class:`ValueError` on anything else.
    """
    cpus: set[int] = set()
    for part in re.split(r"[,\s]+", text.strip()):
        if not part:
            continue
        if "-" in part:
            lo_s, hi_s = part.split("-", 1)
            lo, hi = int(lo_s), int(hi_s)
            if hi < lo:
                raise ValueError(f"bad CPU range {part!r}")
            cpus.update(range(lo, hi + 1))
        else:
            cpus.add(int(part))
    return sorted(cpus)


@dataclass
class PolicyState:
    """The user-visible state of one policy, as saved before a change and restored after."""

    governor: str
    min_khz: int
    max_khz: int
    setspeed_khz: int | None = None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, object]) -> PolicyState:
        setspeed = data.get("setspeed_khz")
        return cls(
            governor=str(data["governor"]),
            min_khz=int(str(data["min_khz"])),
            max_khz=int(str(data["max_khz"])),
            setspeed_khz=int(str(setspeed)) if setspeed is not None else None,
        )


@dataclass
class ReadBack:
    """Result of a frequency change: what was asked, what the kernel and the hardware report."""

    policy: str
    requested_khz: int
    method: str  # "userspace" or "min-max-pin"
    scaling_cur_khz: int | None
    hardware_khz: int | None
    hardware_source: str | None  # "cpuinfo_cur_freq", "vcgencmd", or None
    mismatch: bool
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


class CpufreqPolicy:
    """One ``policyN`` directory: a set of CPUs that share a clock."""

    def __init__(self, sysfs: Sysfs, name: str, commands: CommandRunner | None = None) -> None:
        self.sysfs = sysfs
        self.name = name
        self.dir = f"{CPUFREQ_DIR}/{name}"
        self.commands = commands

    def __repr__(self) -> str:
        return f"CpufreqPolicy({self.name!r}, root={str(self.sysfs.root)!r})"

    def _f(self, leaf: str) -> str:
        return f"{self.dir}/{leaf}"

    # ---- inspection -------------------------------------------------------------------------
    @property
    def cpus(self) -> list[int]:
        """All CPUs of the policy (``related_cpus``), falling back to ``affected_cpus``."""
        text = self.sysfs.read_optional(self._f("related_cpus"))
        if text is None:
            text = self.sysfs.read_optional(self._f("affected_cpus")) or ""
        try:
            return parse_cpu_list(text)
        except ValueError:
            raise HardwareError(f"{self.sysfs.path(self._f('related_cpus'))}: bad CPU list {text!r}") from None

    @property
    def driver(self) -> str | None:
        return self.sysfs.read_optional(self._f("scaling_driver"))

    @property
    def hw_min_khz(self) -> int:
        return self.sysfs.read_int(self._f("cpuinfo_min_freq"))

    @property
    def hw_max_khz(self) -> int:
        return self.sysfs.read_int(self._f("cpuinfo_max_freq"))

    @property
    def has_frequency_table(self) -> bool:
        return self.sysfs.exists(self._f("scaling_available_frequencies"))

    @property
    def available_khz(self) -> list[int]:
        """Listed frequencies, ascending. Drivers without a table (e.g. ``intel_pstate``) list none."""
        text = self.sysfs.read_optional(self._f("scaling_available_frequencies"))
        if not text:
            return []
        try:
            return sorted({int(x) for x in text.split()})
        except ValueError:
            raise HardwareError(
                f"{self.sysfs.path(self._f('scaling_available_frequencies'))}: not a kHz list: {text!r}"
            ) from None

    @property
    def governors(self) -> list[str]:
        text = self.sysfs.read_optional(self._f("scaling_available_governors")) or ""
        return text.split()

    @property
    def governor(self) -> str:
        return self.sysfs.read(self._f("scaling_governor"))

    @property
    def min_khz(self) -> int:
        return self.sysfs.read_int(self._f("scaling_min_freq"))

    @property
    def max_khz(self) -> int:
        return self.sysfs.read_int(self._f("scaling_max_freq"))

    @property
    def cur_khz(self) -> int | None:
        """``scaling_cur_freq``: usually the last requested frequency."""
        return self.sysfs.read_int_optional(self._f("scaling_cur_freq"))

    def setspeed_khz(self) -> int | None:
        """``scaling_setspeed`` under ``userspace``; ``None`` otherwise (the kernel prints ``<unsupported>``)."""
        return self.sysfs.read_int_optional(self._f("scaling_setspeed"))

    def hardware_khz(self) -> tuple[int | None, str | None]:
        """The clock the hardware runs at and where it was read.

        ``cpuinfo_cur_freq`` (root-only on real kernels) first; on a Raspberry Pi, ``vcgencmd
        measure_clock arm`` is preferred because the firmware may override the kernel's request.
        """
        if self.commands is not None and 0 in self.cpus:
            res = self.commands.run("vcgencmd", "measure_clock", "arm")
            if res is not None and res.returncode == 0:
                hz = parse_measure_clock(res.stdout)
                if hz is not None:
                    return hz // 1000, "vcgencmd"
        khz = self.sysfs.read_int_optional(self._f("cpuinfo_cur_freq"))
        if khz is not None:
            return khz, "cpuinfo_cur_freq"
        return None, None

    def state(self) -> PolicyState:
        """The governor and limits to save before changing anything."""
        governor = self.governor
        setspeed = self.setspeed_khz() if governor == "userspace" else None
        return PolicyState(governor=governor, min_khz=self.min_khz, max_khz=self.max_khz, setspeed_khz=setspeed)

    def info(self) -> dict[str, object]:
        """JSON-ready description (the ``board info --json`` item)."""
        hw_khz, hw_src = self.hardware_khz()
        return {
            "name": self.name,
            "cpus": self.cpus,
            "driver": self.driver,
            "available_khz": self.available_khz,
            "hw_min_khz": self.hw_min_khz,
            "hw_max_khz": self.hw_max_khz,
            "governors": self.governors,
            "governor": self.governor,
            "min_khz": self.min_khz,
            "max_khz": self.max_khz,
            "cur_khz": self.cur_khz,
            "hardware_khz": hw_khz,
            "hardware_source": hw_src,
        }

    # ---- control ----------------------------------------------------------------------------
    def validate_frequency(self, freq_khz: int) -> None:
        """Raise :class:`BadInputError` unless ``freq_khz`` is one the policy can run at."""
        table = self.available_khz
        if table:
            if freq_khz not in table:
                listed = " ".join(str(f) for f in table)
                raise BadInputError(
                    f"{self.name}: {freq_khz} kHz is not an available frequency; choose one of {listed}"
                )
            return
        lo, hi = self.hw_min_khz, self.hw_max_khz
        if not lo <= freq_khz <= hi:
            raise BadInputError(f"{self.name}: {freq_khz} kHz is outside the hardware range {lo}..{hi} kHz")

    def set_frequency(self, freq_khz: int) -> ReadBack:
        """Run the policy at ``freq_khz`` and report what the hardware does.

        With the ``userspace`` governor: switch to it, widen the limits to the hardware range and
        write ``scaling_setspeed``. Without it: pin ``scaling_min_freq = scaling_max_freq`` under
        ``performance`` (or the current governor), writing max first when raising and min first
        when lowering so that min <= max holds at every step. Callers save the policy state first
        (see :class:`devices.guard.BoardGuard`).
        """
        self.validate_frequency(freq_khz)
        if "userspace" in self.governors:
            method = "userspace"
            if self.governor != "userspace":
                self.sysfs.write(self._f("scaling_governor"), "userspace")
            self._write_limits(self.hw_min_khz, self.hw_max_khz)
            self.sysfs.write(self._f("scaling_setspeed"), freq_khz)
        else:
            method = "min-max-pin"
            if "performance" in self.governors and self.governor != "performance":
                self.sysfs.write(self._f("scaling_governor"), "performance")
            self._write_limits(freq_khz, freq_khz)
        return self.read_back(freq_khz, method)

    def _write_limits(self, min_khz: int, max_khz: int) -> None:
        """Set both limits in the order that keeps min <= max throughout."""
        if min_khz > self.max_khz:  # going up: raise max first
            self.sysfs.write(self._f("scaling_max_freq"), max_khz)
            self.sysfs.write(self._f("scaling_min_freq"), min_khz)
        else:  # going down (or within): lower min first
            self.sysfs.write(self._f("scaling_min_freq"), min_khz)
            self.sysfs.write(self._f("scaling_max_freq"), max_khz)

    def restore(self, state: PolicyState) -> None:
        """Put governor, limits and (under ``userspace``) setspeed back as saved."""
        if self.governor != state.governor:
            self.sysfs.write(self._f("scaling_governor"), state.governor)
        self._write_limits(state.min_khz, state.max_khz)
        if state.governor == "userspace" and state.setspeed_khz:
            self.sysfs.write(self._f("scaling_setspeed"), state.setspeed_khz)

    def read_back(self, requested_khz: int, method: str) -> ReadBack:
        """Compare the request with ``scaling_cur_freq`` and the hardware clock."""
        cur = self.cur_khz
        hw, src = self.hardware_khz()
        warnings: list[str] = []
        mismatch = False
        if cur is not None and cur != requested_khz:
            mismatch = True
            warnings.append(f"{self.name}: requested {requested_khz} kHz but scaling_cur_freq reads {cur} kHz")
        if hw is not None and abs(hw - requested_khz) > MISMATCH_TOLERANCE * requested_khz:
            mismatch = True
            warnings.append(
                f"{self.name}: requested {requested_khz} kHz but the hardware runs at {hw} kHz ({src}); "
                "the firmware or thermal throttling overrides the request"
            )
        if hw is None:
            warnings.append(
                f"{self.name}: hardware frequency unknown (cpuinfo_cur_freq unreadable: run as root to verify)"
            )
        return ReadBack(
            policy=self.name,
            requested_khz=requested_khz,
            method=method,
            scaling_cur_khz=cur,
            hardware_khz=hw,
            hardware_source=src,
            mismatch=mismatch,
            warnings=warnings,
        )


def parse_measure_clock(text: str) -> int | None:
    """Hz from ``vcgencmd measure_clock arm`` output (``frequency(48)=1500398464``)."""
    m = re.search(r"frequency\(\d+\)=(\d+)", text)
    return int(m.group(1)) if m else None


def list_policies(sysfs: Sysfs, commands: CommandRunner | None = None) -> list[CpufreqPolicy]:
    """All cpufreq policies, sorted by number.

    Raises :class:`UnsupportedError` when the kernel exposes no cpufreq directory.
    """
    if not sysfs.is_dir(CPUFREQ_DIR):
        raise UnsupportedError(
            f"{sysfs.path(CPUFREQ_DIR)}: no cpufreq directory; the kernel has no CPU frequency scaling "
            "(check CONFIG_CPU_FREQ, or pass --sysfs-root for an emulated board)"
        )
    names = [n for n in sysfs.listdir(CPUFREQ_DIR) if re.fullmatch(r"policy\d+", n)]
    names.sort(key=lambda n: int(n[len("policy") :]))
    return [CpufreqPolicy(sysfs, n, commands) for n in names]


def get_policy(sysfs: Sysfs, name: str, commands: CommandRunner | None = None) -> CpufreqPolicy:
    """The policy called ``name``; :class:`BadInputError` listing the valid names otherwise."""
    policies = list_policies(sysfs, commands)
    for p in policies:
        if p.name == name:
            return p
    listed = ", ".join(p.name for p in policies) or "none"
    raise BadInputError(f"unknown policy {name!r}; this board has: {listed}")
