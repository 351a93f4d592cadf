"""The scheme registry: the one place that maps a meter URI scheme to its backend class, and :func:`open_meter`.

Backends are registered lazily (``"module:Class"``) so listing schemes imports no backend, and no backend
imports this module: they receive a parsed :class:`~devices.meters.uri.MeterURI`. Adding a meter is one
backend module with a ``from_uri`` classmethod and one :func:`register_scheme` call here. Detection of the
meters present on a machine lives in :mod:`devices.meters.detect`.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from importlib import import_module
from pathlib import Path
from typing import Any

from devices.meters.base import Clock, PowerMeter
from devices.meters.uri import MeterURI, parse_meter_uri
from devices.registry import Registry


@dataclass(frozen=True)
class SchemeInfo:
    scheme: str
    target: str  # "module:Class"
    summary: str
    example: str
    params: tuple[str, ...]  # parameters the backend accepts


SCHEMES: Registry[SchemeInfo] = Registry("meter scheme")

_SERIAL_PARAMS = ("baud", "timeout_s", "rate_hz")


def register_scheme(scheme: str, target: str, summary: str, example: str, params: tuple[str, ...] = ()) -> None:
    """Register a backend class (``"package.module:Class"``) for ``scheme``."""
    SCHEMES.register(scheme, SchemeInfo(scheme, target, summary, example, params), summary)


register_scheme(
    "um24c",
    "devices.meters.um:UMMeter",
    "RuiDeng UM24C USB meter (Bluetooth rfcomm / serial)",
    "um24c:///dev/rfcomm0",
    _SERIAL_PARAMS,
)
register_scheme(
    "um25c",
    "devices.meters.um:UMMeter",
    "RuiDeng UM25C USB meter (1 mV / 0.1 mA resolution)",
    "um25c:///dev/rfcomm0",
    _SERIAL_PARAMS,
)
register_scheme(
    "um34c",
    "devices.meters.um:UMMeter",
    "RuiDeng UM34C USB meter (checksummed frames)",
    "um34c:///dev/rfcomm0",
    _SERIAL_PARAMS,
)
register_scheme(
    "ina219+serial",
    "devices.meters.ina2xx_serial:InaSerialMeter",
    "INA219 on an Arduino streaming CSV",
    "ina219+serial:///dev/ttyACM0?baud=115200",
    ("baud", "timeout_s"),
)
register_scheme(
    "ina226+serial",
    "devices.meters.ina2xx_serial:InaSerialMeter",
    "INA226 on an Arduino streaming CSV",
    "ina226+serial:///dev/ttyACM0?baud=115200",
    ("baud", "timeout_s"),
)
register_scheme(
    "ina3221",
    "devices.meters.ina3221:Ina3221Meter",
    "Jetson on-board INA3221 rails (JetPack 4 IIO / 5+ hwmon)",
    "ina3221://?rail=VDD_IN",
    ("rail", "rate_hz"),
)
register_scheme(
    "rapl",
    "devices.meters.rapl:RaplMeter",
    "Intel RAPL powercap energy counters",
    "rapl://?domain=package",
    ("domain", "rate_hz"),
)
register_scheme(
    "pmic",
    "devices.meters.pmic:PmicMeter",
    "Raspberry Pi 5 PMIC rails via vcgencmd pmic_read_adc",
    "pmic://",
    ("rails", "estimate_input", "rate_hz"),
)
register_scheme(
    "model",
    "devices.meters.model:ModelMeter",
    "modelled power from a board profile and CPU utilisation",
    "model://rpi4",
    ("rate_hz",),
)
register_scheme(
    "replay",
    "devices.meters.replay:ReplayMeter",
    "replays a recorded sample CSV with its timestamps",
    "replay://samples.csv?speed=1",
    ("speed", "loop"),
)
register_scheme(
    "none",
    "devices.meters.empty:EmptyMeter",
    "no meter: windows report that no energy was measured (the null meter)",
    "none://",
)
register_scheme(
    "wave",
    "devices.fake.meters.waveform:WaveformMeter",
    "synthetic waveform (fake; for tests and demos)",
    "wave://square?low_w=2&high_w=6&period_s=1&rate_hz=100",
    ("low_w", "high_w", "power_w", "period_s", "duty", "rate_hz", "voltage_v"),
)


def parse_uri(uri: str) -> MeterURI:
    """Split a meter URI against the registered schemes (:func:`devices.meters.uri.parse_meter_uri`)."""
    return parse_meter_uri(uri, {e.name: e.value.params for e in SCHEMES.entries()})


def open_meter(
    uri: str,
    *,
    sysfs_root: str | os.PathLike[str] = "/",
    clock: Clock = time.monotonic_ns,
    do_open: bool = True,
    **options: Any,
) -> PowerMeter:
    """Create the meter for ``uri`` and (by default) open it.

    ``sysfs_root`` roots every sysfs read and tool lookup (an emulated board); ``clock`` timestamps the
    samples; ``options`` go to the backend (e.g. ``activity=`` for ``model://``, ``sleep=`` for
    ``replay://``). Raises the errors listed in :mod:`devices.meters.base`.
    """
    parsed = parse_uri(uri)
    info = SCHEMES.get(parsed.scheme)
    mod_name, cls_name = info.target.split(":")
    cls = getattr(import_module(mod_name), cls_name)
    meter: PowerMeter = cls.from_uri(parsed, sysfs_root=Path(sysfs_root), clock=clock, **options)
    if do_open:
        meter.open()
    return meter
