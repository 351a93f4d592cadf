"""``ina3221://`` — the Jetson's on-board INA3221 power monitors, read from sysfs.

Two layouts, both discovered by globbing and matched by rail *label* (hwmon numbers change between
boots):

* JetPack 4 (L4T 32, Nano/TX2/Xavier): NVIDIA IIO driver ``ina3221x`` —
  ``sys/bus/i2c/drivers/ina3221x/*/iio:device*/rail_name_<k>`` with ``in_power<k>_input`` (mW),
  ``in_voltage<k>_input`` (mV), ``in_current<k>_input`` (mA), k = 0..2;
* JetPack 5/6 (L4T 35/36, Orin): upstream hwmon ``ina3221`` —
  ``sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*/in<k>_label`` with ``in<k>_input`` (mV) and
  ``curr<k>_input`` (mA), k = 1..3; power = mV·mA. ``in7`` ("sum of shunt voltages") and rails
  labelled ``NC`` are skipped.

URI: ``ina3221://`` measures the board input rail — the one labelled ``*_IN`` (``POM_5V_IN``,
``VDD_IN``), which is already the total and is never added to the other rails; ``ina3221://?rail=NAME``
measures one rail; ``rate_hz`` sets the poll rate (default: the sensor's ``update_interval`` if
exported, capped to 100 Hz; else 50 Hz). Without an ``*_IN`` rail (AGX Orin, whose ``VIN_SYS_5V0`` is
not the total) ``?rail=`` is required. The rails measure module power, not the carrier board.

Failures: no INA3221 under the sysfs root → :class:`~devices.errors.UnsupportedError`; an unknown rail
→ :class:`~devices.errors.BadInputError` listing the rails; files vanishing while sampling →
:class:`MeterDisconnected` (the sampler re-discovers on reconnect).
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

JP4_GLOB = "sys/bus/i2c/drivers/ina3221x/*/iio:device*"
JP5_GLOB = "sys/bus/i2c/drivers/ina3221/*/hwmon/hwmon*"


@dataclass(frozen=True)
class Rail:
    """One measured rail: its label and the sysfs files (relative to the root) to read."""

    label: str
    layout: str  # "jp4-iio" or "jp5-hwmon"
    voltage_file: str  # mV
    current_file: str  # mA
    power_file: str | None  # mW (JP4 only)
    device_dir: str

    @property
    def is_total(self) -> bool:
        return self.label.upper().endswith("_IN")


def discover_rails(sysfs: Sysfs) -> list[Rail]:
    """All labelled INA3221 rails under the root (JetPack 4 and 5+ layouts); empty when none."""
    rails: list[Rail] = []
    for dev in sysfs.glob(JP4_GLOB):
        for name_file in sysfs.glob(f"{dev}/rail_name_*"):
            m = re.search(r"rail_name_(\d+)$", name_file)
            label = sysfs.read_optional(name_file)
            if m is None or not label:
                continue
            k = m.group(1)
            power = f"{dev}/in_power{k}_input"
            rails.append(
                Rail(
                    label=label,
                    layout="jp4-iio",
                    voltage_file=f"{dev}/in_voltage{k}_input",
                    current_file=f"{dev}/in_current{k}_input",
                    power_file=power if sysfs.exists(power) else None,
                    device_dir=dev,
                )
            )
    for dev in sysfs.glob(JP5_GLOB):
        for label_file in sysfs.glob(f"{dev}/in*_label"):
            m = re.search(r"/in(\d+)_label$", label_file)
            label = sysfs.read_optional(label_file)
            if m is None or not label:
                continue
            k = m.group(1)
            if label.strip().upper() == "NC" or "sum of" in label.lower():
                continue
            curr = f"{dev}/curr{k}_input"
            if not sysfs.exists(curr):
                continue
            rails.append(
                Rail(
                    label=label.strip(),
                    layout="jp5-hwmon",
                    voltage_file=f"{dev}/in{k}_input",
                    current_file=curr,
                    power_file=None,
                    device_dir=dev,
                )
            )
    return rails


def choose_rail(rails: list[Rail], wanted: str | None, uri: str) -> Rail:
    """The rail named ``wanted`` (case-insensitive), or the single ``*_IN`` total rail."""
    listed = ", ".join(r.label for r in rails)
    if wanted:
        for r in rails:
            if r.label.lower() == wanted.lower():
                return r
        raise BadInputError(f"meter URI {uri!r}: no INA3221 rail {wanted!r}; rails: {listed}")
    totals = [r for r in rails if r.is_total]
    if len(totals) == 1:
        return totals[0]
    if not totals:
        raise BadInputError(
            f"meter URI {uri!r}: no *_IN total rail on this board (rails: {listed}); the other rails do not "
            "add up to the input power, so pick one with ?rail=NAME"
        )
    names = ", ".join(r.label for r in totals)
    raise BadInputError(f"meter URI {uri!r}: several input rails ({names}); pick one with ?rail=NAME")


class Ina3221Meter(PowerMeter):
    """One INA3221 rail (by default the board input), polled from sysfs."""

    scheme = "ina3221"
    timeout_s = 1.0

    def __init__(self, uri: str, sysfs: Sysfs, rail: str | None, poll_period_s: float | None, *, clock: Clock) -> None:
        super().__init__(uri, clock)
        self.sysfs = sysfs
        self.wanted = rail
        self._fixed_period = poll_period_s
        self.poll_period_s = poll_period_s or 0.02
        self.nominal_period_s = self.poll_period_s
        self.rail: Rail | None = None
        self.rails: list[Rail] = []
        self._files: list[PolledFile] = []

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> Ina3221Meter:
        if parsed.target:
            raise_bad(parsed.raw, "ina3221 takes no target; use ina3221:// or ina3221://?rail=NAME")
        period = rate_param(parsed.params, 50.0, parsed.raw, max_hz=1000.0) if "rate_hz" in parsed.params else None
        return cls(parsed.raw, Sysfs(sysfs_root), parsed.params.get("rail"), period, clock=clock)

    def open(self) -> None:
        if self.is_open:
            return
        self.rails = discover_rails(self.sysfs)
        if not self.rails:
            raise UnsupportedError(
                f"no INA3221 power monitor under {self.sysfs.root} (looked for {JP4_GLOB} and {JP5_GLOB}); "
                "ina3221:// works on a Jetson"
            )
        self.rail = choose_rail(self.rails, self.wanted, self.uri)
        if self._fixed_period is None:
            interval_ms = self.sysfs.read_int_optional(f"{self.rail.device_dir}/update_interval")
            self.poll_period_s = max(0.01, interval_ms / 1000.0) if interval_ms and interval_ms > 0 else 0.02
            self.nominal_period_s = self.poll_period_s
        self.notes = [f"rail {self.rail.label} ({self.rail.layout}); module power, not the carrier board"]
        files = [self.rail.voltage_file, self.rail.current_file]
        if self.rail.power_file:
            files.append(self.rail.power_file)
        self._files = [PolledFile(self.sysfs, f) for f in files]
        self.read()  # fail now on permissions rather than in the sampler
        self.is_open = True

    def close(self) -> None:
        for f in self._files:
            f.close()
        self._files = []
        self.is_open = False

    def read(self) -> Sample:
        rail = self.rail
        if rail is None or not self._files:
            raise MeterDisconnected("ina3221: not open")
        t = self.clock()
        files = self._files
        mv = files[0].read_int()
        ma = files[1].read_int()
        mw = files[2].read_int() if len(files) > 2 else None
        voltage_v = mv / 1000.0
        current_a = ma / 1000.0
        power_w = mw / 1000.0 if mw is not None else voltage_v * current_a
        return Sample(t, power_w, voltage_v=voltage_v, current_a=current_a)

    def info(self) -> dict[str, object]:
        out = super().info()
        out["rails"] = [r.label for r in self.rails]
        out["rail"] = self.rail.label if self.rail else None
        return out
