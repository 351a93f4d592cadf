"""Meter URIs: parsing, the scheme registry, :func:`open_meter`, and detection of meters on a machine.

A meter URI is ``SCHEME://TARGET?key=value&…``. ``TARGET`` is everything between ``://`` and the
last ``?`` — a serial port (``/dev/rfcomm0`` or any pyserial URL such as ``socket://host:port`` or
``loop://``), a profile name, a file, or nothing. Parameters that the backend does not know are kept
with a pyserial URL target (``socket://h:p?logging=debug``) and rejected otherwise.

Backends are registered lazily (``"module:Class"``) so listing schemes imports no backend.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from devices.meters.base import Clock, PowerMeter


@dataclass(frozen=True)
class MeterURI:
    """A parsed meter URI."""

    raw: str
    scheme: str
    target: str
    params: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class SchemeInfo:
    scheme: str
    target: str  # "module:Class"
    summary: str
    example: str
    params: tuple[str, ...]  # parameters the backend accepts


SCHEMES: dict[str, SchemeInfo] = {}

_SERIAL_PARAMS = ("baud", "timeout_s", "rate_hz")


def register_scheme(scheme: str, target: str, summary: str, example: str, params: tuple[str, ...] = ()) -> None:
    """Register a backend class (``"package.module:Class"``) for ``scheme``."""
    SCHEMES[scheme] = SchemeInfo(scheme, target, summary, example, params)


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
    "wave",
    "devices.fake.meters.waveform:WaveformMeter",
    "synthetic waveform (fake; for tests and demos)",
    "wave://square?low_w=2&high_w=6&period_s=1&rate_hz=100",
    ("low_w", "high_w", "power_w", "period_s", "duty", "rate_hz", "voltage_v"),
)


def parse_uri(uri: str) -> MeterURI:
    """Split a meter URI; :class:`BadInputError` for an unknown scheme or a malformed parameter."""
    m = re.fullmatch(r"([a-z0-9][a-z0-9+.-]*)://(.*)", uri.strip(), flags=re.S)
    if m is None:
        raise BadInputError(
            f"meter URI {uri!r}: expected SCHEME://TARGET, e.g. um25c:///dev/rfcomm0 "
            f"(schemes: {', '.join(sorted(SCHEMES))})"
        )
    scheme, rest = m.group(1), m.group(2)
    info = SCHEMES.get(scheme)
    if info is None:
        raise BadInputError(f"meter URI {uri!r}: unknown scheme {scheme!r}; known: {', '.join(sorted(SCHEMES))}")
    target, params = rest, {}
    if "?" in rest:
        target, query = rest.rsplit("?", 1)
        foreign: list[str] = []
        for part in query.split("&"):
            if not part:
                continue
            if "=" not in part:
                key, value = part, "1"
            else:
                key, value = part.split("=", 1)
            if key in info.params:
                params[key] = value
            else:
                foreign.append(part)
        if foreign:
            if "://" in target:  # a pyserial URL keeps its own options
                target = target + "?" + "&".join(foreign)
            else:
                known = ", ".join(info.params) or "none"
                raise BadInputError(
                    f"meter URI {uri!r}: unknown parameter(s) {', '.join(foreign)}; {scheme} accepts: {known}"
                )
    return MeterURI(raw=uri, scheme=scheme, target=target, params=params)


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
    info = SCHEMES[parsed.scheme]
    mod_name, cls_name = info.target.split(":")
    cls = getattr(import_module(mod_name), cls_name)
    meter: PowerMeter = cls.from_uri(parsed, sysfs_root=Path(sysfs_root), clock=clock, **options)
    if do_open:
        meter.open()
    return meter


def detect_meters(sysfs_root: str | os.PathLike[str] = "/") -> list[dict[str, str]]:
    """Meters that look present on this machine (or emulated tree): ``[{uri, why}]``.

    Detection opens no meter: it globs sysfs and ports and asks ``vcgencmd pmic_read_adc`` once.
    """
    from devices.commands import CommandRunner
    from devices.meters.ina3221 import discover_rails
    from devices.meters.rapl import discover_domains
    from devices.sysfs import Sysfs

    root = Path(sysfs_root)
    sysfs = Sysfs(root)
    found: list[dict[str, str]] = []
    try:
        rails = discover_rails(sysfs)
    except BadInputError:
        rails = []
    if rails:
        names = ", ".join(r.label for r in rails)
        found.append({"uri": "ina3221://", "why": f"INA3221 rails: {names}"})
    try:
        domains = discover_domains(sysfs)
    except BadInputError:
        domains = []
    if domains:
        found.append({"uri": "rapl://", "why": "powercap domains: " + ", ".join(d.name for d in domains)})
    runner = CommandRunner(root, timeout_s=2.0)
    if runner.which("vcgencmd") is not None:
        from devices.meters.pmic import pmic_available

        if pmic_available(runner):
            found.append({"uri": "pmic://", "why": "vcgencmd pmic_read_adc answers (Raspberry Pi 5 PMIC)"})
    for pattern, scheme in (
        ("dev/rfcomm*", "um25c"),
        ("dev/ttyACM*", "ina219+serial"),
        ("dev/ttyUSB*", "ina219+serial"),
    ):
        for rel in sysfs.glob(pattern):
            found.append({"uri": f"{scheme}:///{rel}", "why": "serial port (the meter model is a guess)"})
    profile = _detect_profile(sysfs)
    if profile:
        found.append({"uri": f"model://{profile}", "why": "modelled from the board profile (always available)"})
    return found


def _detect_profile(sysfs: Any) -> str | None:
    from devices.board_profile import available_profiles, load_profile

    model = (sysfs.read_optional("proc/device-tree/model") or "").strip("\x00")
    compatible = (sysfs.read_optional("proc/device-tree/compatible") or "").replace("\x00", " ")
    for name in available_profiles():
        prof = load_profile(name)
        if any(s in model for s in prof.detect.model_contains) or any(
            s in compatible for s in prof.detect.compatible_contains
        ):
            return name
    return None
