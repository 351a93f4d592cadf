"""Thermal zones, Raspberry Pi throttle flags and the Jetson power mode.

Thermal zones are matched by ``type`` (never by index); ``temp`` is in millidegrees Celsius. Jetson
disabled sensors report -256 °C and are returned as ``None``. The Pi's ``vcgencmd get_throttled`` value
is decoded bit by bit: bits 0–3 describe now, bits 16–19 are sticky until reboot. A run during which
any "now" bit was set should be discarded.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass

from devices.commands import CommandRunner
from devices.sysfs import Sysfs

THERMAL_DIR = "sys/class/thermal"

#: Bit → meaning of ``vcgencmd get_throttled`` (Raspberry Pi documentation, "get_throttled").
THROTTLE_BITS: dict[int, str] = {
    0: "under_voltage_now",
    1: "arm_freq_capped_now",
    2: "throttled_now",
    3: "soft_temp_limit_now",
    16: "under_voltage_occurred",
    17: "arm_freq_capped_occurred",
    18: "throttled_occurred",
    19: "soft_temp_limit_occurred",
}
NOW_MASK = 0xF


@dataclass(frozen=True)
class ThermalZone:
    index: int
    type: str
    temp_c: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def read_thermal_zones(sysfs: Sysfs) -> list[ThermalZone]:
    """Every ``thermal_zoneN`` with its type and temperature (°C, ``None`` when unreadable/disabled)."""
    zones: list[ThermalZone] = []
    for rel in sysfs.glob(f"{THERMAL_DIR}/thermal_zone*"):
        m = re.search(r"thermal_zone(\d+)$", rel)
        if not m:
            continue
        ztype = sysfs.read_optional(f"{rel}/type") or f"zone{m.group(1)}"
        milli = sysfs.read_int_optional(f"{rel}/temp")
        temp = None if milli is None or milli <= -256000 else milli / 1000.0
        zones.append(ThermalZone(index=int(m.group(1)), type=ztype, temp_c=temp))
    zones.sort(key=lambda z: z.index)
    return zones


@dataclass(frozen=True)
class ThrottleState:
    """Decoded ``vcgencmd get_throttled`` value."""

    raw: int
    flags: tuple[str, ...]

    @property
    def throttled_now(self) -> bool:
        """True when any bit describing the present moment (0–3) is set."""
        return bool(self.raw & NOW_MASK)

    def to_dict(self) -> dict[str, object]:
        return {"raw": f"{self.raw:#x}", "flags": list(self.flags), "throttled_now": self.throttled_now}


def decode_throttled(value: int) -> ThrottleState:
    """Decode a ``get_throttled`` integer into named flags."""
    flags = tuple(name for bit, name in sorted(THROTTLE_BITS.items()) if value & (1 << bit))
    return ThrottleState(raw=value, flags=flags)


def parse_get_throttled(text: str) -> int | None:
    """The integer from ``throttled=0x50005``; ``None`` when the text has no such field."""
    m = re.search(r"throttled=(0x[0-9a-fA-F]+|\d+)", text)
    return int(m.group(1), 0) if m else None


def read_throttle(commands: CommandRunner) -> ThrottleState | None:
    """Query ``vcgencmd get_throttled``; ``None`` where the tool is absent or fails."""
    res = commands.run("vcgencmd", "get_throttled")
    if res is None or res.returncode != 0:
        return None
    raw = parse_get_throttled(res.stdout)
    return decode_throttled(raw) if raw is not None else None


def parse_nvpmodel_query(text: str) -> tuple[str, int | None] | None:
    """``(name, id)`` from ``nvpmodel -q`` output (``NV Power Mode: MAXN`` then the id)."""
    m = re.search(r"NV Power Mode:\s*(\S+)", text)
    if not m:
        return None
    after = text[m.end() :].split()
    mode_id = int(after[0]) if after and after[0].isdigit() else None
    return m.group(1), mode_id


def read_nvpmodel(commands: CommandRunner) -> dict[str, object] | None:
    """The Jetson power mode from ``nvpmodel -q``; ``None`` where the tool is absent."""
    res = commands.run("nvpmodel", "-q")
    if res is None or res.returncode != 0:
        return None
    parsed = parse_nvpmodel_query(res.stdout)
    if parsed is None:
        return None
    return {"name": parsed[0], "id": parsed[1]}
