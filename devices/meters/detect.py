"""Which meters look present on a machine (or an emulated tree), as URIs with the reason for each.

Detection opens no meter: it globs sysfs and ports and asks ``vcgencmd pmic_read_adc`` once. The board
(and so the ``model://PROFILE`` fallback) comes from the one board detector,
:func:`devices.detect.detect_profile_name`, so ``testbed meter list`` and ``testbed board info`` always
name the same board.
"""

from __future__ import annotations

import os
from pathlib import Path

from devices.commands import CommandRunner
from devices.detect import detect_profile_name
from devices.errors import BadInputError
from devices.sysfs import Sysfs

#: Serial device globs and the scheme a meter on them most likely speaks.
SERIAL_GUESSES = (
    ("dev/rfcomm*", "um25c"),
    ("dev/ttyACM*", "ina219+serial"),
    ("dev/ttyUSB*", "ina219+serial"),
)


def detect_meters(sysfs_root: str | os.PathLike[str] = "/") -> list[dict[str, str]]:
    """Meters that look present below ``sysfs_root``: ``[{uri, why}]``, on-board sensors first."""
    from devices.meters.ina3221 import discover_rails  # backends load on use, as in the registry
    from devices.meters.pmic import pmic_available
    from devices.meters.rapl import discover_domains

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
    if runner.which("vcgencmd") is not None and pmic_available(runner):
        found.append({"uri": "pmic://", "why": "vcgencmd pmic_read_adc answers (Raspberry Pi 5 PMIC)"})
    for pattern, scheme in SERIAL_GUESSES:
        for rel in sysfs.glob(pattern):
            found.append({"uri": f"{scheme}:///{rel}", "why": "serial port (the meter model is a guess)"})
    profile = detect_profile_name(sysfs)
    if profile:
        found.append({"uri": f"model://{profile}", "why": "modelled from the board profile (always available)"})
    return found
