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

A line that parses is not yet a reading: a dropped or flipped byte can turn ``4.987`` into ``4.97`` or
``49.87``. :class:`InaChecker` applies the line's own consistency before a record is believed — the load
voltage equals bus + shunt voltage, the power column equals bus voltage × current, the current follows the
shunt voltage with the one ratio (the shunt resistor) the stream has shown so far, and every value lies
inside the chip's range — and the meter drops and counts what fails.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

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
    #: The raw columns the line had (None where the layout lacks them), for :class:`InaChecker`.
    bus_v: float | None = None
    shunt_mv: float | None = None
    load_v: float | None = None
    power_mw: float | None = None
    #: The printed resolution of each raw column (e.g. 0.001 for ``4.987``), by column name.
    steps: dict[str, float] = field(default_factory=dict, compare=False)


def _step(text: str) -> float:
    """The resolution a number was printed with: ``4.987`` → 0.001, ``70`` → 1 (exponents honoured)."""
    mant, _, exp = text.lower().partition("e")
    decimals = len(mant.split(".", 1)[1]) if "." in mant else 0
    try:
        e = int(exp) if exp else 0
    except ValueError:
        e = 0
    return 10.0 ** (e - decimals)


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
        steps: list[float] = []
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
            steps.append(_step(f))
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
        return InaRecord(
            millis, voltage_v, current_a, power_w,
            rec.get("bus_v"), rec.get("shunt_mv"), rec.get("load_v"), rec.get("power_mw"),
            dict(zip(layout, steps, strict=True)),
        )  # fmt: skip

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


#: Bus voltage, shunt voltage (full scale) per chip.
CHIP_RANGES: dict[str, tuple[float, float]] = {"ina219": (26.0, 320.0), "ina226": (36.0, 81.92)}
#: Relative slack of current against shunt voltage × the stream's ratio, on top of half a printed step of each
#: and one step of the chip's own quantisation (:data:`CHIP_CURRENT_STEP_MA`).
SHUNT_RATIO_REL_TOL = 0.002
POWER_REL_TOL = 0.002
CHIP_CURRENT_STEP_MA = 0.1


class InaChecker:
    """Plausibility of INA records (see the module text); one per stream (it learns the shunt ratio).

    Tolerances follow the finest resolution each column has been printed with in the stream, so a sketch
    printing two decimals is held to two and one printing three to three, and a line that lost a digit is
    held to the stream's resolution, not its own."""

    def __init__(self, chip: str = "ina219") -> None:
        self.max_bus_v, self.max_shunt_mv = CHIP_RANGES.get(chip, CHIP_RANGES["ina219"])
        self._ratios: list[float] = []  # mA per mV of shunt voltage seen in accepted lines
        self._steps: dict[str, float] = {}  # the finest printed step per column so far

    def problem(self, r: InaRecord) -> str | None:
        """Why ``r`` cannot be a reading of the chip, or ``None``."""
        # held to the finest resolution the stream has printed each column with: a lost digit widens nothing
        st = {col: min(step, self._steps.get(col, step)) for col, step in r.steps.items()}
        if r.bus_v is not None and not -0.05 <= r.bus_v <= self.max_bus_v:
            return f"bus voltage {r.bus_v:g} V outside 0..{self.max_bus_v:g} V"
        if r.shunt_mv is not None and abs(r.shunt_mv) > self.max_shunt_mv * 1.001:
            return f"shunt voltage {r.shunt_mv:g} mV beyond ±{self.max_shunt_mv:g} mV"
        if r.load_v is not None and r.bus_v is not None and r.shunt_mv is not None:
            tol = (st.get("load_v", 0.001) + st.get("bus_v", 0.001)) / 2 + st.get("shunt_mv", 0.01) / 2000 + 1e-9
            if abs(r.load_v - (r.bus_v + r.shunt_mv / 1000.0)) > tol:
                return f"load voltage {r.load_v:g} V is not bus + shunt ({r.bus_v + r.shunt_mv / 1000:.4g} V)"
        current_ma = r.current_a * 1000.0
        if r.power_mw is not None and r.bus_v is not None:
            expect = r.bus_v * current_ma
            tol = st.get("power_mw", 0.01) / 2 + abs(r.bus_v) * (st.get("current_ma", 0.01) / 2 + CHIP_CURRENT_STEP_MA)
            tol += abs(current_ma) * st.get("bus_v", 0.001) / 2 + POWER_REL_TOL * abs(expect) + 1e-9
            if abs(r.power_mw - expect) > tol:
                return f"power {r.power_mw:g} mW is not bus voltage × current ({expect:.4g} mW)"
        if r.shunt_mv is not None and abs(r.shunt_mv) >= 0.5:
            if len(self._ratios) >= 3:  # the median of the first accepted lines: one bad line cannot set it
                ref = sorted(self._ratios)[len(self._ratios) // 2]
                slack = st.get("current_ma", 0.01) / 2 + abs(ref) * st.get("shunt_mv", 0.01) / 2 + CHIP_CURRENT_STEP_MA
                slack += SHUNT_RATIO_REL_TOL * abs(current_ma)
                if abs(current_ma - ref * r.shunt_mv) > slack:
                    return f"current {current_ma:g} mA does not follow the shunt voltage ({r.shunt_mv:g} mV)"
            if len(self._ratios) < 32:
                self._ratios.append(current_ma / r.shunt_mv)
        for col, step in st.items():
            self._steps[col] = min(step, self._steps.get(col, step))
        return None
