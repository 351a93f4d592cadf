"""``rapl://`` — Intel RAPL energy counters from the powercap sysfs (the laptop / control host).

Domains live in ``sys/class/powercap/intel-rapl:N[:M]/`` with ``name`` (``package-0``, ``core``,
``uncore``, ``dram``, ``psys``), ``energy_uj`` (µJ, cumulative) and ``max_energy_range_uj``. RAPL has
no instantaneous power: each sample's ``power_w`` is the counter difference since the previous sample
divided by the time between them, and windows use the counter difference directly.

URI: ``rapl://`` sums the top-level ``package-*`` domains (disjoint sockets); ``rapl://?domain=NAME``
picks by name (``psys``, ``dram``, ``core``, ``package-0``; ``package`` = all packages, ``dram`` = all
dram domains). ``rate_hz`` (default 10) sets the poll rate.

Wraparound: a reading below the previous one adds ``max_energy_range_uj`` (once per interval; poll
faster than one wrap period, ≈ 262 kJ / power — minutes at laptop power).

Failures: ``energy_uj`` is root-only since CVE-2020-8694 → :class:`~devices.errors.PermissionDeniedError`
saying how to grant access (raised on open); no powercap tree → :class:`~devices.errors.UnsupportedError`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.errors import BadInputError, UnsupportedError
from devices.meters.base import Clock, MeterDisconnected, PowerMeter, raise_bad, rate_param
from devices.meters.samples import Sample
from devices.meters.sysfs_poll import PolledFile
from devices.meters.uri import MeterURI
from devices.sysfs import Sysfs

POWERCAP = "sys/class/powercap"


@dataclass(frozen=True)
class RaplDomain:
    """One powercap zone; ``path`` is relative to the sysfs root."""

    path: str
    name: str
    top_level: bool
    max_range_uj: int


def discover_domains(sysfs: Sysfs) -> list[RaplDomain]:
    """All ``intel-rapl`` zones under the root (empty when none). Reading names needs no privileges."""
    out: list[RaplDomain] = []
    for rel in sysfs.glob(f"{POWERCAP}/intel-rapl:*"):
        zone = rel.rsplit("/", 1)[-1]
        if not re.fullmatch(r"intel-rapl(:\d+)+", zone):
            continue
        name = sysfs.read_optional(f"{rel}/name")
        rng = sysfs.read_int_optional(f"{rel}/max_energy_range_uj")
        if not name or rng is None or not sysfs.exists(f"{rel}/energy_uj"):
            continue
        out.append(RaplDomain(rel, name, zone.count(":") == 1, rng))
    return out


def select_domains(domains: list[RaplDomain], wanted: str | None, uri: str) -> list[RaplDomain]:
    """The domains a URI asks for (see the module docstring)."""
    listed = ", ".join(sorted({d.name for d in domains}))
    if wanted in (None, "", "package"):
        chosen = [d for d in domains if d.top_level and d.name.startswith("package")]
        if not chosen:
            raise BadInputError(f"meter URI {uri!r}: no RAPL package domain; domains: {listed}")
        return chosen
    chosen = [d for d in domains if d.name == wanted]
    if not chosen and wanted is not None:
        chosen = [d for d in domains if d.name.split("-")[0] == wanted]
    if not chosen:
        raise BadInputError(f"meter URI {uri!r}: no RAPL domain {wanted!r}; domains: {listed}")
    return chosen


class RaplCounter:
    """Unwraps one ``energy_uj`` counter: cumulative µJ since the first reading."""

    def __init__(self, max_range_uj: int) -> None:
        self.max_range_uj = max_range_uj
        self.last_raw: int | None = None
        self.total_uj = 0
        self.wraps = 0

    def update(self, raw_uj: int) -> int:
        """Feed a raw reading; returns the cumulative µJ."""
        if self.last_raw is not None:
            delta = raw_uj - self.last_raw
            if delta < 0:
                delta += self.max_range_uj
                self.wraps += 1
            self.total_uj += delta
        self.last_raw = raw_uj
        return self.total_uj


class RaplMeter(PowerMeter):
    """Sum of the selected RAPL domains' counters."""

    scheme = "rapl"
    counter_resolution_j = 1e-6
    timeout_s = 1.0

    def __init__(self, uri: str, sysfs: Sysfs, domain: str | None, poll_period_s: float, *, clock: Clock) -> None:
        super().__init__(uri, clock)
        self.sysfs = sysfs
        self.wanted = domain
        self.poll_period_s = poll_period_s
        self.nominal_period_s = poll_period_s
        self.domains: list[RaplDomain] = []
        self._counters: list[RaplCounter] = []
        self._last: tuple[int, int] | None = None  # (t_ns, total µJ)
        self._power: float | None = None
        self._files: list[PolledFile] = []

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> RaplMeter:
        if parsed.target:
            raise_bad(parsed.raw, "rapl takes no target; use rapl:// or rapl://?domain=NAME")
        period = rate_param(parsed.params, 10.0, parsed.raw, max_hz=1000.0)
        return cls(parsed.raw, Sysfs(sysfs_root), parsed.params.get("domain"), period, clock=clock)

    def open(self) -> None:
        if self.is_open:
            return
        found = discover_domains(self.sysfs)
        if not found:
            raise UnsupportedError(
                f"no RAPL powercap domains under {self.sysfs.path(POWERCAP)}; rapl:// needs an Intel (or AMD "
                "with RAPL) CPU and the intel_rapl driver (modprobe intel_rapl_common)"
            )
        self.domains = select_domains(found, self.wanted, self.uri)
        keep = self._counters if len(self._counters) == len(self.domains) else None
        self._counters = keep or [RaplCounter(d.max_range_uj) for d in self.domains]
        self.notes = ["domains: " + ", ".join(f"{d.name} ({d.path.rsplit('/', 1)[-1]})" for d in self.domains)]
        self._files = [PolledFile(self.sysfs, f"{d.path}/energy_uj") for d in self.domains]
        total = self._read_total()  # raises PermissionDeniedError now, not in the sampler
        self._last = (self.clock(), total)
        self.is_open = True

    def _read_total(self) -> int:
        total = 0
        for f, ctr in zip(self._files, self._counters, strict=True):
            total += ctr.update(f.read_int())
        return total

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []
        self.is_open = False

    def read(self) -> Sample:
        if self._last is None or not self._files:
            raise MeterDisconnected("rapl: not open")
        t = self.clock()
        total = self._read_total()
        t_prev, e_prev = self._last
        dt = (t - t_prev) / 1e9
        if dt < 0.25 * (self.poll_period_s or 0.0) and self._power is not None:
            # Too soon after the last reading for a meaningful rate (µJ steps): keep the last power.
            return Sample(t, self._power, energy_j=total / 1e6)
        power = (total - e_prev) / 1e6 / dt if dt > 0 else 0.0
        self._last = (t, total)
        self._power = power
        return Sample(t, power, energy_j=total / 1e6)

    @property
    def wraps(self) -> int:
        return sum(c.wraps for c in self._counters)

    def info(self) -> dict[str, object]:
        out = super().info()
        out["domains"] = [d.name for d in self.domains]
        return out
