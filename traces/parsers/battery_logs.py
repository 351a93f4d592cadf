"""Battery logs from desktops and phones → battery trace: upower history, Android batterystats, healthd.

- **upower** (``/var/lib/upower/history-charge-<id>.dat``, ``history-rate-<id>.dat``): one line per change,
  ``<unix s>\\t<value>\\t<state>`` (upower ``up-history.c``); ``charge`` is percent, ``rate`` the
  energy rate in W (a magnitude; the state gives its direction). Give either file or both.
- **Android** ``dumpsys batterystats --history``: lines ``+1h00m01s466ms (2) 100 charge=2829 volt=4397 …``
  (time offsets, with a ``RESET:TIME:`` stamp) or, from Android 12, ``01-11 12:11:14.405 075 status=…``;
  the three digits are the level in %, ``volt`` mV, ``temp`` 0.1 °C, ``charge`` the coulomb counter in mAh.
  A field holds until it is printed again.
- **healthd** kernel/logcat lines ``healthd: battery l=87 v=4155 t=29.0 h=2 st=3 c=-383 …`` (level %,
  mV, °C, status 2 charging / 3 discharging / 4 not charging / 5 full, current in mA — µA when any
  value exceeds 20 A in mA terms), with the ``[  12.345678]`` dmesg time or a logcat ``MM-DD HH:MM:SS.mmm``.

Times are rebased to 0. Currents and powers are discharge-positive.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from devices.errors import BadInputError, ParseError
from traces.battery import BatteryTrace
from traces.csvio import read_text

UPOWER_STATES = ("unknown", "charging", "discharging", "empty", "fully-charged", "pending-charge", "pending-discharge")
_UPOWER = re.compile(r"^(?P<t>\d{1,12})\t(?P<v>-?\d+(?:\.\d+)?)\t(?P<state>[a-z-]+)$")


def _nan(n: int) -> np.ndarray:
    return np.full(n, np.nan)


def _battery(t: list[float], cols: dict[str, list[float]], status: list[str], meta: dict[str, str]) -> BatteryTrace:
    n = len(t)
    arr = {k: np.array(v, dtype=float) for k, v in cols.items()}
    tt = np.array(t, dtype=float)
    return BatteryTrace(
        t_s=np.round(tt - tt[0], 6),
        voltage_v=arr.get("voltage_v", _nan(n)),
        current_a=arr.get("current_a", _nan(n)),
        power_w=arr.get("power_w", _nan(n)),
        soc=arr.get("soc", _nan(n)),
        temp_c=arr.get("temp_c", _nan(n)),
        charge_ah=arr.get("charge_ah"),
        status=status,
        meta=meta,
    )


# ---- upower ---------------------------------------------------------------------------------------


def _upower_rows(path: Path) -> list[tuple[int, float, str, int]]:
    name = str(path)
    rows: list[tuple[int, float, str, int]] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        if not line.strip():
            continue
        m = _UPOWER.match(line.strip())
        if m is None:
            raise ParseError(name, lineno, f"not an upower history line '<unix s>\\t<value>\\t<state>': {line[:60]!r}")
        if m.group("state") not in UPOWER_STATES:
            raise ParseError(name, lineno, f"unknown upower state {m.group('state')!r}")
        t, v = int(m.group("t")), float(m.group("v"))
        if rows and t < rows[-1][0]:
            raise ParseError(name, lineno, f"time goes backwards: {t} after {rows[-1][0]}")
        rows.append((t, v, m.group("state"), lineno))
    if not rows:
        raise ParseError(name, None, "no upower history lines")
    return rows


def _upower_kind(path: Path) -> str:
    low = path.name.lower()
    for kind in ("charge", "rate"):
        if f"history-{kind}" in low:
            return kind
    if "history-time" in low:
        raise BadInputError(f"{path}: upower's time-full/time-empty files hold predictions; give history-charge/rate")
    raise BadInputError(f"{path}: name it history-charge-*.dat or history-rate-*.dat so its values can be read")


def parse_upower(paths: Sequence[str | os.PathLike[str]]) -> BatteryTrace:
    """One or two upower history files (charge and/or rate of one device) → a battery trace.

    Raises :class:`ParseError` for lines that are not upower history, a percentage outside 0–100, a
    negative or absurd rate, time going backwards; :class:`BadInputError` for a file whose kind the name
    does not tell, or two files of one kind.
    """
    by_kind: dict[str, list[tuple[int, float, str, int]]] = {}
    first = Path(paths[0])
    for p in map(Path, paths):
        kind = _upower_kind(p)
        if kind in by_kind:
            raise BadInputError(f"{p}: two history-{kind} files given; give one charge and one rate file")
        rows = _upower_rows(p)
        for _t, v, _s, line in rows:
            if kind == "charge" and not 0 <= v <= 100:
                raise ParseError(p, line, f"charge {v:g} % is outside 0–100")
            if kind == "rate" and not 0 <= v <= 1e4:
                raise ParseError(p, line, f"rate {v:g} W is not a battery's energy rate (0–10000 W)")
        by_kind[kind] = rows
    times = sorted({r[0] for rows in by_kind.values() for r in rows})
    soc: list[float] = []
    power: list[float] = []
    status: list[str] = []
    idx = dict.fromkeys(by_kind, -1)
    for t in times:
        state = ""
        for kind, rows in by_kind.items():
            while idx[kind] + 1 < len(rows) and rows[idx[kind] + 1][0] <= t:
                idx[kind] += 1
            if idx[kind] >= 0:
                state = rows[idx[kind]][2]
        soc.append(by_kind["charge"][idx["charge"]][1] / 100 if idx.get("charge", -1) >= 0 else math.nan)
        if idx.get("rate", -1) >= 0:
            r = by_kind["rate"][idx["rate"]][1]
            power.append(-r if "charging" in state and "discharging" not in state else r)
        else:
            power.append(math.nan)
        status.append(state)
    meta = {"source": "upower", "files": ",".join(sorted(by_kind)), "t0_source_s": f"{times[0]}"}
    del first
    return _battery([float(t) for t in times], {"soc": soc, "power_w": power}, status, meta)


# ---- Android batterystats --------------------------------------------------------------------------

_OFFSET = re.compile(r"^\+?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?$")
_HIST1 = re.compile(r"^\s*(?P<off>0|\+[0-9dhms]+)\s+\((?P<n>\d+)\)\s+(?P<level>\d{3})(?:\s+(?P<rest>.*))?$")
_HIST2 = re.compile(
    r"^\s*(?P<md>\d{2}-\d{2}) (?P<hms>\d{2}:\d{2}:\d{2}\.\d{3})\s+(?P<level>\d{3})(?:\s+(?P<rest>.*))?$"
)
_KV = re.compile(r"(?<![+-])\b(status|volt|temp|charge)=(-?\w+)")
_BS_STATUS = {"discharging": "Discharging", "charging": "Charging", "full": "Full", "not-charging": "Not charging"}


def _offset_s(text: str) -> float | None:
    if text == "0":
        return 0.0
    m = _OFFSET.match(text)
    if m is None or not any(m.groups()):
        return None
    d, h, mi, s, ms = (int(g) if g else 0 for g in m.groups())
    return d * 86400 + h * 3600 + mi * 60 + s + ms / 1000


def _hms2_s(md: str, hms: str) -> float:
    mo, d = (int(x) for x in md.split("-"))
    hh, mm, ss = hms.split(":")
    days = sum((31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)[: max(0, mo - 1)]) + d
    return days * 86400 + int(hh) * 3600 + int(mm) * 60 + float(ss)


def parse_batterystats(path: str | os.PathLike[str]) -> BatteryTrace:
    """``dumpsys batterystats --history`` (either format) → a battery trace of level, voltage,
    temperature, charge counter and status (one row per line that has the level).

    Raises :class:`ParseError` for a level above 100 %, a voltage or temperature that is not a number,
    time going backwards, or a file without history lines.
    """
    name = str(path)
    t: list[float] = []
    cols: dict[str, list[float]] = {"soc": [], "voltage_v": [], "temp_c": [], "charge_ah": []}
    status: list[str] = []
    cur = {"voltage_v": math.nan, "temp_c": math.nan, "charge_ah": math.nan}
    st = ""
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        m1 = _HIST1.match(line)
        m2 = None if m1 else _HIST2.match(line)
        m = m1 or m2
        if m is None:
            continue
        if m1 is not None:
            when = _offset_s(m1.group("off"))
            if when is None:
                raise ParseError(name, lineno, f"bad time offset {m1.group('off')!r}")
        else:
            assert m2 is not None
            try:
                when = _hms2_s(m2.group("md"), m2.group("hms"))
            except ValueError:
                raise ParseError(name, lineno, f"bad time {m2.group('md')} {m2.group('hms')}") from None
        level = int(m.group("level"))
        if level > 100:
            raise ParseError(name, lineno, f"battery level {level} % is above 100")
        for key, value in _KV.findall(m.group("rest") or ""):
            if key == "status":
                st = _BS_STATUS.get(value, value)
                continue
            try:
                num = int(value)
            except ValueError:
                raise ParseError(name, lineno, f"{key}={value[:20]} is not a number") from None
            if key == "volt":
                if not 0 < num < 100000:
                    raise ParseError(name, lineno, f"volt={num} mV is not a battery voltage")
                cur["voltage_v"] = num / 1000
            elif key == "temp":
                if abs(num) > 10000:
                    raise ParseError(name, lineno, f"temp={num} (0.1 °C) is not a temperature")
                cur["temp_c"] = num / 10
            elif key == "charge":
                if not 0 <= num < 10**7:
                    raise ParseError(name, lineno, f"charge={num} mAh is not a charge counter")
                cur["charge_ah"] = num / 1000
        if t and when < t[-1]:
            raise ParseError(name, lineno, f"time goes backwards ({when:g} s after {t[-1]:g} s)")
        if t and round(when - t[0], 6) <= round(t[-1] - t[0], 6):
            for k, v in cur.items():  # same instant: the later line supersedes
                cols[k][-1] = v
            cols["soc"][-1] = level / 100
            status[-1] = st
            continue
        t.append(when)
        cols["soc"].append(level / 100)
        for k, v in cur.items():
            cols[k].append(v)
        status.append(st)
    if not t:
        raise ParseError(name, None, "no battery history lines ('+1m02s003ms (2) 095 …' or '01-11 12:11:14.405 095 …')")
    if all(math.isnan(c) for c in cols["charge_ah"]):
        del cols["charge_ah"]
    return _battery(t, cols, status, {"source": "batterystats"})


# ---- healthd -----------------------------------------------------------------------------------

_HEALTHD = re.compile(r"healthd\s*:?\s*battery\s+(?P<kv>l=.*)$")
_DMESG_T = re.compile(r"^\s*(?:<\d+>)?\[\s*(?P<t>\d+\.\d+)\]")
_LOGCAT_T = re.compile(r"^\s*(?P<md>\d{2}-\d{2}) (?P<hms>\d{2}:\d{2}:\d{2}\.\d{3})")
_HEALTHD_ST = {1: "Unknown", 2: "Charging", 3: "Discharging", 4: "Not charging", 5: "Full"}


def parse_healthd(path: str | os.PathLike[str]) -> BatteryTrace:
    """``healthd: battery l=… v=… t=… st=… c=…`` lines (dmesg or logcat) → a battery trace.

    Raises :class:`ParseError` for a line without a time, a field that is not a number, a level above
    100 %, time going backwards, or a file without healthd lines.
    """
    name = str(path)
    t: list[float] = []
    cols: dict[str, list[float]] = {"soc": [], "voltage_v": [], "temp_c": [], "current_raw": []}
    status: list[str] = []
    for lineno, line in enumerate(read_text(path).splitlines(), start=1):
        m = _HEALTHD.search(line)
        if m is None:
            continue
        dm = _DMESG_T.match(line)
        lm = None if dm else _LOGCAT_T.match(line)
        if dm is not None:
            when = float(dm.group("t"))
        elif lm is not None:
            when = _hms2_s(lm.group("md"), lm.group("hms"))
        else:
            raise ParseError(name, lineno, "healthd line without a dmesg '[  12.345]' or logcat time")
        kv = dict(p.split("=", 1) for p in m.group("kv").split() if "=" in p)
        try:
            level = int(kv["l"])
            mv = int(kv["v"])
            temp = float(kv["t"]) if "t" in kv else math.nan
            stv = int(kv.get("st", "1"))
            c = float(kv["c"]) if "c" in kv else math.nan
        except (KeyError, ValueError) as exc:
            raise ParseError(name, lineno, f"healthd field missing or not a number: {exc}") from None
        if not 0 <= level <= 100:
            raise ParseError(name, lineno, f"level l={level} is outside 0–100")
        if not 0 < mv < 100000:
            raise ParseError(name, lineno, f"v={mv} mV is not a battery voltage")
        if not (math.isnan(temp) or abs(temp) < 1000) or not (math.isnan(c) or abs(c) < 1e9):
            raise ParseError(name, lineno, "temperature or current out of range")
        if t and when < t[-1]:
            raise ParseError(name, lineno, f"time goes backwards ({when:g} s after {t[-1]:g} s)")
        if t and round(when - t[0], 6) <= round(t[-1] - t[0], 6):
            continue
        t.append(when)
        cols["soc"].append(level / 100)
        cols["voltage_v"].append(mv / 1000)
        cols["temp_c"].append(temp)
        cols["current_raw"].append(c)
        status.append(_HEALTHD_ST.get(stv, str(stv)))
    if not t:
        raise ParseError(name, None, "no 'healthd: battery l=… v=…' lines")
    raw = np.array(cols.pop("current_raw"))
    micro = bool(np.nanmax(np.abs(raw), initial=0) > 20000)
    amps = raw * (1e-6 if micro else 1e-3)
    # healthd prints current_now as the kernel reports it: negative while discharging
    cols["current_a"] = list(-amps)
    v = np.array(cols["voltage_v"])
    cols["power_w"] = list(v * -amps)
    return _battery(t, cols, status, {"source": "healthd", "current_unit": "uA" if micro else "mA"})
