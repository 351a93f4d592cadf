"""Timestamps in real logs → seconds since the Unix epoch.

Detected without help: unix seconds and milliseconds (a bare number; milliseconds when it is above
1e11, i.e. after 1973 in ms or after year 5138 in s), ISO 8601 (``2026-11-30T14:59:41.25+01:00``,
``…Z``), ``YYYY-MM-DD HH:MM:SS[.fff]``, tegrastats' ``MM-DD-YYYY HH:MM:SS`` and ``date`` output such as
``Mon Nov 30 14:59:41 UTC 2026``. Anything else needs a strftime ``time_format``. Times without a zone
are read in ``tz`` (an IANA name such as ``Europe/Berlin``, ``UTC``, or ``+02:00``; default UTC).

Failure modes: :class:`ValueError` with a one-line message (callers add the file and line).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone, tzinfo

#: A bare number above this is unix milliseconds, not seconds.
MS_THRESHOLD = 1e11
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")
_MDY = re.compile(r"^(\d{2})-(\d{2})-(\d{4})[ T](\d{2}):(\d{2}):(\d{2}(?:\.\d+)?)$")
_DATE_CMD = "%a %b %d %H:%M:%S %Z %Y"
_OFFSET = re.compile(r"^([+-])(\d{2}):?(\d{2})$")


def parse_tz(text: str | None) -> tzinfo:
    """``UTC``, ``+02:00`` or an IANA zone name → a tzinfo; :class:`ValueError` for an unknown one."""
    if text is None or text.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    m = _OFFSET.match(text.strip())
    if m:
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return timezone(timedelta(minutes=-minutes if m.group(1) == "-" else minutes))
    try:
        from zoneinfo import ZoneInfo

        return ZoneInfo(text)
    except Exception:  # ZoneInfoNotFoundError, ValueError for odd keys
        raise ValueError(f"unknown time zone {text!r}; use an IANA name (Europe/Berlin), UTC or +HH:MM") from None


@dataclass(frozen=True)
class TimeReader:
    """Reads one column of timestamps the same way: ``time_format`` (strftime) or auto-detected, in ``tz``."""

    time_format: str | None = None
    tz: str | None = None

    def zone(self) -> tzinfo:
        return parse_tz(self.tz)

    def seconds(self, text: str) -> float:
        """Unix seconds of ``text``; :class:`ValueError` when it is no timestamp this reader knows."""
        s = text.strip()
        if not s:
            raise ValueError("empty timestamp")
        if self.time_format is not None:
            try:
                dt = datetime.strptime(s, self.time_format)
            except ValueError:
                raise ValueError(f"timestamp {s[:40]!r} does not match --time-format {self.time_format!r}") from None
            return self._epoch(dt)
        if _NUMBER.match(s):
            v = float(s)
            if not math.isfinite(v) or v < 0:
                raise ValueError(f"timestamp {s[:40]!r} is not a finite time ≥ 0")
            return v / 1000.0 if v > MS_THRESHOLD else v
        m = _MDY.match(s)
        if m:
            mo, d, y, hh, mm, ss = m.groups()
            sec = float(ss)
            try:
                dt = datetime(int(y), int(mo), int(d), int(hh), int(mm), int(sec))
            except ValueError as exc:
                raise ValueError(f"bad date-time {s[:40]!r}: {exc}") from None
            return self._epoch(dt) + (sec - int(sec))
        try:
            dt = datetime.fromisoformat(s.replace("Z", "+00:00") if s.endswith("Z") else s)
        except ValueError:
            try:
                dt = datetime.strptime(s, _DATE_CMD)
            except ValueError:
                raise ValueError(
                    f"unknown timestamp {s[:40]!r}; expected unix seconds/ms, ISO 8601 or YYYY-MM-DD HH:MM:SS "
                    "(give --time-format for others)"
                ) from None
        return self._epoch(dt)

    def _epoch(self, dt: datetime) -> float:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=self.zone())
        try:
            return dt.timestamp()
        except (OverflowError, OSError, ValueError) as exc:
            raise ValueError(f"date-time {dt!s} is out of range: {exc}") from None


def looks_like_time(text: str) -> bool:
    """Whether ``text`` is a timestamp :class:`TimeReader` detects without a format."""
    try:
        TimeReader().seconds(text)
    except ValueError:
        return False
    return True
