"""Parsing the CSV an Arduino with an INA219/INA226 streams over serial.

Recognised line layouts (comma, semicolon, tab or space separated):

* 5 numbers ``millis,bus_V,shunt_mV,load_V,current_mA`` — the common Adafruit_INA219 sketch;
* 6 numbers ``millis,bus_V,shunt_mV,load_V,current_mA,power_mW``;
* 4 numbers ``bus_V,shunt_mV,load_V,current_mA`` — no device clock (host time is used);
* 3 numbers ``millis,bus_V,current_mA``;
* any layout announced by a header line whose names include a current column (``current_mA``,
  ``mA``, ``current``) and a voltage column (``busV``, ``bus_V``, ``voltage``, ``V``…), e.g.
  ``ms,busV,mA,mW``.

A header, or else the first two consecutive data lines with the same number of fields, fix the layout
for the rest of the stream, so a partial line with fewer fields is never read as another layout; a
layout that stops fitting (a header that arrived cut short) is re-inferred after
:data:`RELAYOUT_AFTER` consistent lines. Banners, headers and partial lines are not data:
:meth:`InaLineParser.parse` returns ``None`` for them and counts them.

Power is ``power_mW`` when the sketch prints it (the INA's power register: bus voltage × current),
else bus voltage × current — the power delivered to the device under test, which sits on the bus
(IN−) side of the shunt. Never raises.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

_SPLIT = re.compile(r"[,;\t ]+")

_ALIASES = {
    "millis": ("millis", "ms", "time_ms", "t_ms", "timestamp", "time"),
    "bus_v": ("busv", "bus_v", "bus", "busvoltage", "bus_voltage", "vbus", "bus_voltage_v", "voltage", "v",
              "voltage_v"),
    "shunt_mv": ("shunt_mv", "shuntmv", "shunt", "shuntvoltage", "shunt_voltage", "vshunt"),
    "load_v": ("loadv", "load_v", "load", "loadvoltage", "load_voltage"),
    "current_ma": ("current_ma", "currentma", "ma", "current", "i_ma", "current_ma_"),
    "power_mw": ("power_mw", "powermw", "mw", "power"),
}  # fmt: skip
_LOOKUP = {alias: field for field, names in _ALIASES.items() for alias in names}

#: Consecutive numeric lines of another field count after which the layout is re-inferred.
RELAYOUT_AFTER = 3

_DEFAULT_LAYOUTS: dict[int, tuple[str, ...]] = {
    5: ("millis", "bus_v", "shunt_mv", "load_v", "current_ma"),
    6: ("millis", "bus_v", "shunt_mv", "load_v", "current_ma", "power_mw"),
    4: ("bus_v", "shunt_mv", "load_v", "current_ma"),
    3: ("millis", "bus_v", "current_ma"),
}


@dataclass(frozen=True)
class InaRecord:
    """One data line. ``millis`` is the device clock (ms, u32) or ``None``; power in W."""

    millis: int | None
    voltage_v: float
    current_a: float
    power_w: float


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9_]", "", name.strip().lower().replace("(", "_").replace(")", ""))


class InaLineParser:
    """Turns text lines into :class:`InaRecord` objects; remembers a header layout once it sees one."""

    def __init__(self) -> None:
        self.layout: tuple[str, ...] | None = None
        self.skipped = 0
        self.relayouts = 0
        self._mismatch = (0, 0)  # (field count, consecutive lines) not fitting the layout
        self._candidate = 0  # field count of the last numeric line while no layout is known

    def parse(self, line: str) -> InaRecord | None:
        """The record on ``line`` or ``None`` (banner, header, partial or garbled line)."""
        text = line.strip().strip("\x00")
        if not text:
            return None
        fields = [f for f in _SPLIT.split(text) if f]
        values: list[float] = []
        for f in fields:
            try:
                x = float(f)
            except ValueError:
                self._maybe_header(fields)
                return None
            if not math.isfinite(x):
                self.skipped += 1
                return None
            values.append(x)
        # No header: infer the layout from the field count, but only once two consecutive lines agree,
        # so that a partial first line cannot pass for a shorter layout.
        if self.layout is None and self._candidate != len(values):
            self._candidate = len(values)
            self.skipped += 1
            return None
        layout = self.layout if self.layout is not None else _DEFAULT_LAYOUTS.get(len(values))
        if layout is not None and len(layout) != len(values):
            layout = self._relayout(len(values))
        if layout is None or len(layout) != len(values):
            self.skipped += 1  # includes a partial line once the stream's layout is known
            return None
        self.layout = layout
        self._mismatch = (0, 0)
        rec = dict(zip(layout, values, strict=True))
        if "current_ma" not in rec or ("bus_v" not in rec and "load_v" not in rec):
            self.skipped += 1
            return None
        current_a = rec["current_ma"] / 1000.0
        # Without the bus voltage only the supply-side voltage is known: subtract the shunt drop.
        voltage_v = rec["bus_v"] if "bus_v" in rec else rec["load_v"] - rec.get("shunt_mv", 0.0) / 1000.0
        power_w = rec["power_mw"] / 1000.0 if "power_mw" in rec else voltage_v * current_a
        millis: int | None = None
        if "millis" in rec:
            ms = rec["millis"]
            if ms < 0 or ms != int(ms) or ms >= 2**32:
                self.skipped += 1
                return None
            millis = int(ms)
        if not (abs(voltage_v) < 1e4 and abs(current_a) < 1e4 and abs(power_w) < 1e6):
            self.skipped += 1
            return None
        return InaRecord(millis, voltage_v, current_a, power_w)

    def _relayout(self, n_fields: int) -> tuple[str, ...] | None:
        """After :data:`RELAYOUT_AFTER` consistent lines that do not fit the layout (it came from a
        partial header, or the sketch changed), switch to the default layout for their field count."""
        count = self._mismatch[1] + 1 if self._mismatch[0] == n_fields else 1
        self._mismatch = (n_fields, count)
        if count >= RELAYOUT_AFTER and n_fields in _DEFAULT_LAYOUTS:
            self.relayouts += 1
            return _DEFAULT_LAYOUTS[n_fields]
        return self.layout

    def _maybe_header(self, fields: list[str]) -> None:
        names = [_LOOKUP.get(_norm(f)) for f in fields]
        if all(n is not None for n in names) and "current_ma" in names and ("bus_v" in names or "load_v" in names):
            self.layout = tuple(n for n in names if n is not None)
        else:
            self.skipped += 1
