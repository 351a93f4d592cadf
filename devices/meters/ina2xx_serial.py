"""``ina219+serial://PORT`` and ``ina226+serial://PORT`` — an Arduino streaming INA219/INA226 CSV.

URI: ``ina219+serial:///dev/ttyACM0?baud=115200[&timeout_s=2]`` (any pyserial URL as target). The line
formats are in :mod:`devices.meters.ina_csv`. The first line after (re)connecting is discarded because
it may be partial; banners, headers and garbled lines are skipped.

Timestamps: the device's ``millis`` gives the spacing of samples; it is mapped to the host clock once,
at the first data line (``t_ns = offset + millis·10⁶``). ``millis`` wraps at 2³² ms (49.7 days) —
unwrapped here — and a jump backwards that is not a wrap (the Arduino reset) or a drift of more than
:data:`MAX_DRIFT_S` between the mapped and the host clock remaps the offset and reports a ``clock``
event. Lines without ``millis`` are stamped with the host clock on arrival.

Plausibility: a record that fails :class:`~devices.meters.ina_csv.InaChecker` (the line's own consistency,
the chip's ranges) or whose ``millis`` does not move forward by a plausible step (:class:`MillisGuard`: a
jump back or far ahead is believed only when the next line continues from it — a real reset or gap) is
dropped and counted in ``rejected_readings``.

Failures: no complete data line within ``timeout_s`` → :class:`MeterStall`; the port vanishing →
:class:`MeterDisconnected`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import serial

from devices.meters.base import Clock, MeterDisconnected, MeterStall, float_param, raise_bad
from devices.meters.ina_csv import InaChecker, InaLineParser, InaRecord
from devices.meters.samples import Sample
from devices.meters.serialport import SerialMeter, int_param
from devices.meters.uri import MeterURI

MILLIS_WRAP = 2**32
#: Remap device to host time when the two disagree by more than this (s).
MAX_DRIFT_S = 0.5
#: Longest line accepted before it is treated as garbage (bytes).
MAX_LINE = 256


class MillisMapper:
    """Maps a device ``millis`` counter (u32 ms, wrapping) to host nanoseconds, once, with remaps."""

    def __init__(self, max_drift_s: float = MAX_DRIFT_S) -> None:
        self.offset_ns: int | None = None
        self.wraps = 0
        self._last_ms: int | None = None
        self.max_drift_ns = round(max_drift_s * 1e9)

    def map(self, millis: int, host_ns: int) -> tuple[int, str | None]:
        """Host time of ``millis`` received at ``host_ns``, and a message when the mapping was redone."""
        note: str | None = None
        if self._last_ms is not None and millis < self._last_ms:
            if self._last_ms - millis > MILLIS_WRAP // 2:
                self.wraps += 1
                note = f"device millis wrapped ({self._last_ms} -> {millis})"
            else:
                self.offset_ns = None
                self.wraps = 0
                note = f"device clock went back ({self._last_ms} -> {millis} ms): device reset, clock remapped"
        self._last_ms = millis
        dev_ns = (millis + self.wraps * MILLIS_WRAP) * 1_000_000
        if self.offset_ns is None:
            self.offset_ns = host_ns - dev_ns
        t = self.offset_ns + dev_ns
        if abs(t - host_ns) > self.max_drift_ns:
            drift = (host_ns - t) / 1e9
            self.offset_ns = host_ns - dev_ns
            t = host_ns
            note = f"device clock drifted {drift:+.3f} s from the host clock: remapped"
        return t, note


class MillisGuard:
    """Device time must move forward by a plausible step; a jump is believed once the next line confirms it."""

    def __init__(self, min_step_ms: int = 1000, periods: int = 50) -> None:
        self.min_step_ms = min_step_ms
        self.periods = periods
        self._last: int | None = None
        self._pending: int | None = None
        self._steps: list[int] = []

    def _max_step(self) -> int:
        typical = sorted(self._steps)[len(self._steps) // 2] if self._steps else 10
        return max(self.min_step_ms, self.periods * typical)

    def check(self, millis: int) -> str | None:
        """``None`` to accept ``millis`` (and remember it), else why it was rejected."""
        last, limit = self._last, self._max_step()
        ok = last is None or 0 < millis - last <= limit or last - millis > MILLIS_WRAP // 2
        if not ok and self._pending is not None and 0 < millis - self._pending <= limit:
            ok = True  # the previous jump was real (a reset or a gap): this line continues from it
        if not ok:
            self._pending = millis
            return f"device time jumped from {last} to {millis} ms"
        if last is not None and 0 < millis - last <= limit and len(self._steps) < 64:
            self._steps.append(millis - last)
        self._last, self._pending = millis, None
        return None


class InaSerialMeter(SerialMeter):
    """An INA219/INA226 breakout read by a microcontroller that prints one CSV line per sample."""

    nominal_period_s = 0.01

    def __init__(
        self, uri: str, chip: str, port: str, *, baudrate: int = 115200, timeout_s: float = 2.0, clock: Clock
    ) -> None:
        super().__init__(uri, port, baudrate=baudrate, timeout_s=timeout_s, clock=clock)
        self.scheme = f"{chip}+serial"
        self.chip = chip
        self.poll_period_s = None
        self._discard_first = True
        self.parser = InaLineParser()
        self.checker = InaChecker(chip)
        self.millis_guard = MillisGuard()
        self.mapper = MillisMapper()
        self.lines = 0
        self._last_t: int | None = None
        self._intervals: list[int] = []
        self._line_t = 0

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> InaSerialMeter:
        if not parsed.target:
            raise_bad(parsed.raw, f"no port; use e.g. {parsed.scheme}:///dev/ttyACM0?baud=115200")
        timeout_s = float_param(parsed.params, "timeout_s", 2.0, parsed.raw)
        if timeout_s <= 0:
            raise_bad(parsed.raw, "timeout_s must be positive")
        return cls(
            parsed.raw,
            parsed.scheme.split("+")[0],
            parsed.target,
            baudrate=int_param(parsed.params, "baud", 115200, parsed.raw),
            timeout_s=timeout_s,
            clock=clock,
        )

    def _on_open(self) -> None:
        self._discard_first = True  # the first line after opening may be cut

    def _next_line(self, deadline: int) -> tuple[str, int] | None:
        """The next complete line and the host time its newline arrived, or ``None`` at the deadline."""
        while True:
            nl = self._buf.find(b"\n")
            if nl >= 0:
                raw = bytes(self._buf[:nl])
                del self._buf[: nl + 1]
                return raw.decode("ascii", errors="replace"), self._line_t
            if len(self._buf) > MAX_LINE:
                self.emit("garbage", f"dropped {len(self._buf)} bytes without a newline")
                self._buf.clear()
                self._discard_first = True
            if self.clock() >= deadline:
                return None
            try:
                chunk = self._port.read(max(1, self._port.in_waiting if hasattr(self._port, "in_waiting") else 1))
            except (serial.SerialException, OSError) as exc:
                raise MeterDisconnected(f"{self.port_name}: read failed: {exc}") from None
            if chunk:
                self._line_t = self.clock()
                self._buf += chunk.replace(b"\r", b"\n")

    def read(self) -> Sample:
        if not self.is_open or self._port is None:
            raise MeterDisconnected(f"{self.port_name}: not connected")
        deadline = self.clock() + round(self.timeout_s * 1e9)
        while True:
            got = self._next_line(deadline)
            if got is None:
                raise MeterStall(f"{self.port_name}: no {self.chip.upper()} data line within {self.timeout_s:g} s")
            line, host_ns = got
            if not line.strip():
                continue
            self.lines += 1
            if self._discard_first:
                self._discard_first = False
                continue
            rec = self.parser.parse(line)
            if rec is None:
                continue
            bad = self.checker.problem(rec)
            if bad is None and rec.millis is not None:
                bad = self.millis_guard.check(rec.millis)
            if bad is not None:
                self.reject(bad)  # garbled on the wire: not a reading
                continue
            return self._to_sample(rec, host_ns)

    def _to_sample(self, rec: InaRecord, host_ns: int) -> Sample:
        if rec.millis is None:
            t = host_ns
        else:
            t, note = self.mapper.map(rec.millis, host_ns)
            if note:
                self.emit("clock", note)
        if self._last_t is not None and t <= self._last_t:
            t = self._last_t + 1  # keep time strictly increasing after a remap
        if self._last_t is not None and len(self._intervals) < 64:
            self._intervals.append(t - self._last_t)
            self.nominal_period_s = sorted(self._intervals)[len(self._intervals) // 2] / 1e9
        self._last_t = t
        return Sample(t, rec.power_w, voltage_v=rec.voltage_v, current_a=rec.current_a)

    def info(self) -> dict[str, object]:
        out = super().info()
        out.update({"port": self.port_name, "chip": self.chip, "baud": self.baudrate})
        return out
