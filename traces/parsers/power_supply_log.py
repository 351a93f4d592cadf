"""Logs of a Linux ``power_supply`` device → battery trace.

Accepted layouts (``#`` lines without a time are comments):

- ``uevent`` blocks, as ``while :; do date +%s.%N; cat /sys/class/power_supply/BAT0/uevent; sleep 1; done``
  writes: a time line (a bare number, ``=== <t>`` or ``# t_s=<t>``) followed by ``POWER_SUPPLY_*=`` lines;
- the same blocks with ``grep . /sys/class/power_supply/BAT0/*`` lines (``…/voltage_now:12000000``);
- a CSV whose header has the time (``t_s``/``time``) and attribute names (``voltage_now,current_now,…``),
  or a header-less one whose columns ``columns`` names (``time,status,energy_full,energy_now``), as a cron
  job appending ``$(date -Is),$(cat status),…`` writes.

Times may be unix seconds/milliseconds or date-times (ISO 8601, ``YYYY-MM-DD HH:MM:SS``; ``time_format``
for others, naive ones read in ``tz``; see :mod:`traces.timefmt`). Any subset of the attributes is fine:
a laptop log often has ``energy_now``/``power_now`` and no ``voltage_now``.

Values are in the kernel's units (µV, µA, µW, µWh, µAh, 0.1 °C, %) and converted with
:func:`traces.power_supply.convert_attributes`. ``sign="auto"`` picks the current convention from the
samples whose status is ``Discharging`` and records it in the header. Times are rebased to 0.
"""

from __future__ import annotations

import csv
import io
import math
import os
import re

import numpy as np

from devices.errors import ParseError
from devices.record import SUPPLY_ATTRIBUTES
from traces.battery import BatteryTrace
from traces.csvio import read_text
from traces.power_supply import SIGN_RULES, convert_attributes, detect_sign_rule
from traces.timefmt import TimeReader, looks_like_time

#: Attribute names (lower case) that mark a CSV as a power_supply log: those a live supply recording reads,
#: plus the averaged readings some drivers expose.
ATTRIBUTES = (*SUPPLY_ATTRIBUTES, "voltage_avg", "current_avg")
_TIME_COLUMNS = ("t_s", "time", "t", "timestamp", "date", "datetime")

_TIME = re.compile(r"^\s*(?:=+|#|@)?\s*(?:t_s\s*=\s*|t\s*=\s*|time\s*=\s*)?(?P<t>[-+0-9.eE]+)\s*=*\s*$")
_UEVENT = re.compile(r"^\s*POWER_SUPPLY_(?P<key>[A-Z0-9_]+)=(?P<value>.*)$")
_GREP = re.compile(r"^\s*(?:\S*/)?(?P<key>[a-z0-9_]+):(?P<value>.*)$")


def _float_time(text: str, name: str, lineno: int) -> float:
    try:
        t = float(text)
    except ValueError:
        raise ParseError(name, lineno, f"time is not a number: {text[:40]!r}") from None
    if math.isnan(t) or math.isinf(t):
        raise ParseError(name, lineno, f"time is not finite: {text!r}")
    return t


def _blocks(name: str, text: str) -> list[tuple[float, dict[str, str], int]]:
    blocks: list[tuple[float, dict[str, str], int]] = []
    current: dict[str, str] | None = None
    for lineno, line in enumerate(text.splitlines(), start=1):
        s = line.strip()
        if not s:
            continue
        m = _TIME.match(s)
        if m is not None:
            current = {}
            blocks.append((_float_time(m.group("t"), name, lineno), current, lineno))
            continue
        if s.startswith("#"):
            continue
        u = _UEVENT.match(s) or _GREP.match(s)
        if u is None:
            raise ParseError(name, lineno, f"not a power_supply attribute line: {s[:60]!r}")
        if current is None:
            raise ParseError(name, lineno, "attribute line before the first time line (e.g. '=== <t_s>')")
        current[u.group("key").lower()] = u.group("value").strip()
    return blocks


def _csv_samples(
    name: str, text: str, columns: tuple[str, ...] | None, reader_t: TimeReader
) -> list[tuple[float, dict[str, str], int]]:
    out: list[tuple[float, dict[str, str], int]] = []
    reader = csv.reader(io.StringIO(text))
    header: list[str] | None = [c.strip().lower() for c in columns] if columns else None
    if header is not None and header[0] not in _TIME_COLUMNS:
        raise ParseError(name, None, f"--columns must start with the time column (time or t_s), found {header[0]!r}")
    try:
        for fields in reader:
            lineno = reader.line_num
            if not fields or fields[0].lstrip().startswith("#") or not "".join(fields).strip():
                continue
            if header is None:
                header = [f.strip().lower() for f in fields]
                if header[0] not in _TIME_COLUMNS and looks_like_time(fields[0]):
                    raise ParseError(
                        name,
                        lineno,
                        "the log has no header line; name its columns with --columns "
                        "(e.g. --columns time,status,energy_full,energy_now)",
                    )
                if header[0] not in _TIME_COLUMNS:
                    raise ParseError(name, lineno, f"the first column must be the time, found {fields[0]!r}")
                continue
            if len(fields) != len(header):
                raise ParseError(
                    name, lineno, f"expected {len(header)} fields ({','.join(header)}), found {len(fields)}"
                )
            try:
                t = reader_t.seconds(fields[0])
            except ValueError as exc:
                raise ParseError(name, lineno, str(exc)) from None
            out.append((t, dict(zip(header[1:], fields[1:], strict=True)), lineno))
    except csv.Error as exc:
        raise ParseError(name, reader.line_num, f"malformed CSV: {exc}") from None
    return out


def _is_csv_log(text: str, columns: tuple[str, ...] | None) -> bool:
    first = next((ln for ln in text.splitlines() if ln.strip() and not ln.lstrip().startswith("#")), "")
    if "," not in first:
        return False
    return columns is not None or any(a in first.lower() for a in ATTRIBUTES) or looks_like_time(first.split(",")[0])


def parse_power_supply(
    path: str | os.PathLike[str],
    sign: str = "auto",
    columns: tuple[str, ...] | None = None,
    time_format: str | None = None,
    tz: str | None = None,
) -> BatteryTrace:
    """Parse a ``power_supply`` log into a discharge-positive battery trace.

    Raises :class:`ParseError` for unparseable lines, non-numeric or NaN values, a non-positive voltage,
    a capacity outside 0–100 %, time not strictly increasing, an unknown sign rule, contradictory
    current signs under ``auto``, or a log without samples.
    """
    name = str(path)
    if sign != "auto" and sign not in SIGN_RULES:
        raise ParseError(name, None, f"unknown current sign rule {sign!r}; use auto or one of {', '.join(SIGN_RULES)}")
    text = read_text(path)
    reader_t = TimeReader(time_format, tz)
    try:
        reader_t.zone()
    except ValueError as exc:
        raise ParseError(name, None, str(exc)) from None
    if _is_csv_log(text, columns):
        samples = _csv_samples(name, text, columns, reader_t)
    elif columns is not None:
        raise ParseError(name, None, "--columns applies to a comma-separated log; this file has no commas")
    else:
        samples = _blocks(name, text)
    if not samples:
        raise ParseError(name, None, "no samples (expected time lines followed by POWER_SUPPLY_* lines)")
    if sign == "auto":
        try:
            rule = detect_sign_rule([a for _, a, _ in samples])
        except ValueError as exc:
            raise ParseError(name, None, str(exc)) from None
    else:
        rule = sign
    cols: dict[str, list[float]] = {
        k: [] for k in ("t_s", "voltage_v", "current_a", "power_w", "soc", "temp_c", "charge_ah", "energy_wh")
    }
    status: list[str] = []
    prev: float | None = None
    t0 = samples[0][0]
    for t, attrs, lineno in samples:
        if prev is not None and round(t - t0, 6) <= round(prev - t0, 6):
            raise ParseError(name, lineno, f"time is not increasing: {t} after {prev}")
        prev = t
        if not attrs:
            raise ParseError(name, lineno, "sample without any attribute lines")
        try:
            values, st = convert_attributes(attrs, rule)
        except ValueError as exc:
            raise ParseError(name, lineno, str(exc)) from None
        cols["t_s"].append(round(t - t0, 6))
        for k, v in values.items():
            cols[k].append(v)
        status.append(st)
    arr = {k: np.array(v) for k, v in cols.items()}
    meta = {
        "source": "power_supply",
        "source_sign_rule": rule,
        "charge_energy": "remaining",
        "t0_source_s": f"{t0:.6f}",
    }
    return BatteryTrace(
        t_s=arr["t_s"],
        voltage_v=arr["voltage_v"],
        current_a=arr["current_a"],
        power_w=arr["power_w"],
        soc=arr["soc"],
        temp_c=arr["temp_c"],
        charge_ah=None if np.all(np.isnan(arr["charge_ah"])) else arr["charge_ah"],
        energy_wh=None if np.all(np.isnan(arr["energy_wh"])) else arr["energy_wh"],
        status=status if any(status) else None,
        meta=meta,
    )
