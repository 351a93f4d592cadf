"""Fake sysfs trees for sysfs-based meters: Jetson INA3221 (JetPack 4 IIO, JetPack 5 hwmon) and RAPL.

The builders write the same files, names and units as the kernel drivers, below any root directory,
so :class:`~devices.meters.ina3221.Ina3221Meter` and :class:`~devices.meters.rapl.RaplMeter` run
unchanged against them. Setters change values between reads (tests drive time with a
:class:`~devices.meters.clock.ManualClock`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

from devices.meters.ina3221 import discover_rails
from devices.meters.rapl import POWERCAP
from devices.sysfs import Sysfs

#: Jetson Nano (JetPack 4) rails: label → (mV, mA).
NANO_RAILS = {"POM_5V_IN": (5072, 760), "POM_5V_GPU": (5064, 40), "POM_5V_CPU": (5064, 280)}
#: Orin Nano / NX (JetPack 5/6) rails.
ORIN_RAILS = {"VDD_IN": (5056, 1280), "VDD_CPU_GPU_CV": (5048, 320), "VDD_SOC": (5048, 400)}
#: AGX Orin rails: no *_IN total (VIN_SYS_5V0 is not the total).
AGX_ORIN_RAILS = {"VDD_GPU_SOC": (5000, 900), "VDD_CPU_CV": (5000, 500), "VIN_SYS_5V0": (5000, 600)}

#: A typical laptop RAPL range (µJ).
RAPL_MAX_RANGE_UJ = 262143328850


def _w(path: Path, value: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"{value}\n", encoding="utf-8")


def build_ina3221_jp4(root: Path, rails: dict[str, tuple[int, int]] | None = None, device: str = "6-0040") -> Path:
    """JetPack 4 ``ina3221x`` IIO layout (``rail_name_k``, ``in_power/voltage/current<k>_input``)."""
    rails = rails if rails is not None else NANO_RAILS
    d = root / "sys/bus/i2c/drivers/ina3221x" / device / "iio:device0"
    for k, (label, (mv, ma)) in enumerate(rails.items()):
        _w(d / f"rail_name_{k}", label)
        _w(d / f"in_voltage{k}_input", mv)
        _w(d / f"in_current{k}_input", ma)
        _w(d / f"in_power{k}_input", mv * ma // 1000)
        _w(d / f"warn_current_limit_{k}", 4000)
        _w(d / f"crit_current_limit_{k}", 5000)
    return d


def build_ina3221_jp5(
    root: Path,
    rails: dict[str, tuple[int, int]] | None = None,
    device: str = "1-0040",
    hwmon: int = 3,
    update_interval_ms: int | None = 5,
) -> Path:
    """JetPack 5/6 upstream ``ina3221`` hwmon layout (``in<k>_label``, ``in<k>_input``, ``curr<k>_input``)."""
    rails = rails if rails is not None else ORIN_RAILS
    d = root / "sys/bus/i2c/drivers/ina3221" / device / "hwmon" / f"hwmon{hwmon}"
    _w(d / "name", "ina3221")
    for k, (label, (mv, ma)) in enumerate(rails.items(), start=1):
        _w(d / f"in{k}_label", label)
        _w(d / f"in{k}_input", mv)
        _w(d / f"curr{k}_input", ma)
        _w(d / f"curr{k}_max", 5000)
        _w(d / f"curr{k}_crit", 6000)
    _w(d / "in7_label", "sum of shunt voltages")
    _w(d / "in7_input", 0)
    if update_interval_ms is not None:
        _w(d / "update_interval", update_interval_ms)
    return d


def set_ina3221_rail(root: Path, label: str, mv: int, ma: int) -> None:
    """Change one rail's readings (either layout), found by label."""
    for rail in discover_rails(Sysfs(root)):
        if rail.label == label:
            _w(root / rail.voltage_file, mv)
            _w(root / rail.current_file, ma)
            if rail.power_file:
                _w(root / rail.power_file, mv * ma // 1000)
            return
    raise KeyError(label)


def build_rapl(
    root: Path,
    domains: dict[str, str] | None = None,
    max_range_uj: int = RAPL_MAX_RANGE_UJ,
) -> dict[str, Path]:
    """Powercap zones (zone → name, e.g. ``{"intel-rapl:0": "package-0", "intel-rapl:0:0": "core"}``).

    Every ``energy_uj`` starts at 0. Returns zone → directory.
    """
    domains = (
        domains
        if domains is not None
        else {
            "intel-rapl:0": "package-0",
            "intel-rapl:0:0": "core",
            "intel-rapl:0:1": "uncore",
            "intel-rapl:0:2": "dram",
            "intel-rapl:1": "psys",
        }
    )
    out: dict[str, Path] = {}
    for zone, name in domains.items():
        d = root / POWERCAP / zone
        _w(d / "name", name)
        _w(d / "energy_uj", 0)
        _w(d / "max_energy_range_uj", max_range_uj)
        _w(d / "enabled", 1)
        out[zone] = d
    return out


def set_rapl_energy(root: Path, zone: str, energy_uj: int) -> None:
    """Set a zone's raw ``energy_uj`` (the caller wraps it modulo ``max_energy_range_uj``)."""
    _w(root / POWERCAP / zone / "energy_uj", energy_uj)


#: Share of the package power each RAPL sub-zone reports in the moving fake (core, uncore, dram).
RAPL_SUBZONE_SHARE = {"core": 0.6, "uncore": 0.1, "dram": 0.1}


class RaplCounterDriver:
    """Advances the ``energy_uj`` counters of a fake RAPL tree in real time, following ``power_w(t_s)``.

    Top-level zones (``package-N``, ``psys``) count the full power, sub-zones their share of it
    (:data:`RAPL_SUBZONE_SHARE`); every counter wraps at its ``max_energy_range_uj`` like the hardware.
    ``start()`` runs a thread that writes every ``period_s``; ``stop()`` ends it. Used by
    ``testbed meter fake rapl`` so that ``rapl://`` on the fake tree reads a power that moves.
    """

    def __init__(self, root: Path, power_w: Callable[[float], float], period_s: float = 0.05) -> None:
        self.root = root
        self.power_w = power_w
        self.period_s = period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.zones: dict[str, tuple[float, int]] = {}  # zone → (share of the power, max range µJ)
        for zone_dir in sorted((root / POWERCAP).glob("intel-rapl:*")):
            name = (zone_dir / "name").read_text(encoding="utf-8").strip()
            top = zone_dir.name.count(":") == 1
            share = 1.0 if top else RAPL_SUBZONE_SHARE.get(name, 0.1)
            rng = int((zone_dir / "max_energy_range_uj").read_text(encoding="utf-8").strip())
            self.zones[zone_dir.name] = (share, rng)
        self._energy_uj = dict.fromkeys(self.zones, 0.0)
        self.advance(0.0, 0.0)  # every counter at the same (padded) width from the start

    def advance(self, t0_s: float, t1_s: float) -> None:
        """Add the energy of ``[t0_s, t1_s]`` (trapezoid, seconds since start) to every counter."""
        e_j = 0.5 * (self.power_w(t0_s) + self.power_w(t1_s)) * (t1_s - t0_s)
        for zone, (share, rng) in self.zones.items():
            self._energy_uj[zone] += e_j * share * 1e6
            # Same-length, in-place writes (zero-padded): a reader never sees a truncated, empty file.
            text = f"{int(self._energy_uj[zone]) % rng:0{len(str(rng))}d}\n".encode()
            fd = os.open(self.root / POWERCAP / zone / "energy_uj", os.O_WRONLY)
            try:
                os.pwrite(fd, text, 0)
            finally:
                os.close(fd)

    def start(self) -> RaplCounterDriver:
        def run() -> None:
            t0 = time.monotonic()
            last = 0.0
            while not self._stop.wait(self.period_s):
                now = time.monotonic() - t0
                self.advance(last, now)
                last = now

        self._thread = threading.Thread(target=run, name="fake-rapl", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2)
