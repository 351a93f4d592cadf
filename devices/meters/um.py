"""``um24c://``, ``um25c://``, ``um34c://`` — RuiDeng USB meters over Bluetooth rfcomm or serial.

URI: ``um25c:///dev/rfcomm0[?baud=9600&timeout_s=1&rate_hz=3]``; the target may be any pyserial URL
(``um25c://socket://127.0.0.1:7000``). Pair and bind first: ``bluetoothctl`` (PIN 1234), then
``sudo rfcomm bind 0 <MAC>``.

Each :meth:`UMMeter.read` sends ``0xF0`` and reads until a valid 130-byte frame of the expected model
arrives (garbage and frames of another model are dropped byte by byte and reported as a ``resync``
event), timestamped at the midpoint of request and reply. The meters refresh about twice a second and
answer usefully up to about 3 Hz, so the default poll rate is 3 Hz and windows shorter than about
0.5 s mean little. The selected data group's mWh counter is reported as ``energy_j`` (3.6 J steps);
windows use it when it is fine enough (long windows) and trapezoids otherwise.

Frames that pass the protocol checks but hold an implausible reading (:func:`~devices.meters.um_protocol.
implausible`: P ≠ V·I, out of range, …) are corrupted on the wire: they are dropped, counted in
``rejected_readings`` and the meter is asked again.

Failures: no valid frame within ``timeout_s`` → :class:`~devices.meters.base.MeterStall` (with the
reason, e.g. "received frames of a UM24C; use um24c://"); port gone → :class:`MeterDisconnected`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import serial

from devices.meters.base import (
    Clock,
    MeterDisconnected,
    MeterStall,
    float_param,
    raise_bad,
    rate_param,
)
from devices.meters.samples import Sample
from devices.meters.serialport import SerialMeter, int_param
from devices.meters.um_protocol import (
    FRAME_LEN,
    MODELS,
    REQUEST,
    UMModel,
    UMReading,
    decode_frame,
    extract_frame,
    implausible,
)
from devices.meters.uri import MeterURI

#: Consecutive readings disagreeing with the last accepted counter after which the counter is believed instead.
COUNTER_REBASE_AFTER = 3


class UMMeter(SerialMeter):
    """A UM24C/UM25C/UM34C on a serial port or pyserial URL."""

    counter_resolution_j = 3.6  # 1 mWh
    nominal_period_s = 1 / 3

    def __init__(
        self,
        uri: str,
        model: UMModel,
        port: str,
        *,
        baudrate: int = 9600,
        timeout_s: float = 1.0,
        poll_period_s: float = 1 / 3,
        clock: Clock,
    ) -> None:
        super().__init__(uri, port, baudrate=baudrate, timeout_s=timeout_s, clock=clock)
        self.scheme = model.name
        self.model = model
        self.poll_period_s = poll_period_s
        self.nominal_period_s = max(poll_period_s, 1 / 3)
        self._group: int | None = None
        self._last: tuple[UMReading, int] | None = None  # the last accepted reading and when (host ns)
        self._counter_rejects = 0
        self.garbage_bytes = 0
        self.frames = 0

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> UMMeter:
        if not parsed.target:
            raise_bad(parsed.raw, f"no port; use e.g. {parsed.scheme}:///dev/rfcomm0")
        timeout_s = float_param(parsed.params, "timeout_s", 1.0, parsed.raw)
        if timeout_s <= 0:
            raise_bad(parsed.raw, "timeout_s must be positive")
        return cls(
            parsed.raw,
            MODELS[parsed.scheme],
            parsed.target,
            baudrate=int_param(parsed.params, "baud", 9600, parsed.raw),
            timeout_s=timeout_s,
            poll_period_s=rate_param(parsed.params, 3.0, parsed.raw, max_hz=20.0),
            clock=clock,
        )

    def _on_open(self) -> None:
        self._group = None
        try:
            self._port.reset_input_buffer()
        except (serial.SerialException, OSError, AttributeError):
            pass

    def read(self) -> Sample:
        if not self.is_open or self._port is None:
            raise MeterDisconnected(f"{self.port_name}: not connected")
        port = self._port
        try:
            port.write(REQUEST)
            port.flush()
        except (serial.SerialException, OSError) as exc:
            raise MeterDisconnected(f"{self.port_name}: write failed: {exc}") from None
        t0 = self.clock()
        deadline = t0 + round(self.timeout_s * 1e9)
        problem: str | None = None
        received = 0
        while True:
            want = max(1, FRAME_LEN - len(self._buf))
            try:
                chunk = port.read(want)
                if not chunk and received >= FRAME_LEN:
                    # A whole answer arrived but was not a valid frame: ask again instead of waiting.
                    port.write(REQUEST)
                    received = 0
            except (serial.SerialException, OSError) as exc:
                raise MeterDisconnected(f"{self.port_name}: read failed: {exc}") from None
            received += len(chunk)
            self._buf += chunk
            frame, dropped, why = extract_frame(self._buf, self.model)
            if dropped:
                self.garbage_bytes += dropped
                problem = why or problem
                self.emit("resync", f"dropped {dropped} bytes: {why}")
            if frame is not None:
                reading = decode_frame(frame, self.model)
                bad = implausible(reading, self.model) or self._counter_problem(reading)
                if bad is None:
                    break
                self.reject(bad)  # a corrupted frame that still looked like one: ask again
                problem = f"implausible reading: {bad}"
                try:
                    port.write(REQUEST)
                except (serial.SerialException, OSError) as exc:
                    raise MeterDisconnected(f"{self.port_name}: write failed: {exc}") from None
                received = 0
            if self.clock() >= deadline:
                detail = f": {problem}" if problem else ""
                raise MeterStall(
                    f"{self.port_name}: no valid {self.model.name.upper()} frame within {self.timeout_s:g} s{detail}"
                )
        t1 = self.clock()
        self.frames += 1
        energy: float | None = reading.energy_j
        if self._group is not None and reading.group != self._group:
            self.emit("note", f"data group changed {self._group} -> {reading.group}; counter restarts")
            energy = None
        self._group = reading.group
        self._last = (reading, t1)
        return Sample(
            (t0 + t1) // 2,
            reading.power_w,
            voltage_v=reading.voltage_v,
            current_a=reading.current_a,
            energy_j=energy,
        )

    def _counter_problem(self, r: UMReading) -> str | None:
        """Counters only move as the meter can move them since the last accepted reading: the selected group's
        mWh and mAh grow by no more than full scale allows (a reset to 0 is the user clearing it), the other
        groups' counters stay as they were, the recorded totals never go back."""
        if self._last is None:
            return None
        prev, t_ns = self._last
        if r.group != prev.group:
            return None  # the user selected another group: its counter is not comparable
        dt_h = max(0.0, (self.clock() - t_ns) / 3.6e12)
        most_mwh = self.model.max_voltage_v * self.model.max_current_a * 1000.0 * dt_h + 2
        most_mah = self.model.max_current_a * 1000.0 * dt_h + 2
        g = r.group
        problem = None
        for name, now, was, most in (
            ("mWh", r.group_mwh[g], prev.group_mwh[g], most_mwh),
            ("mAh", r.group_mah[g], prev.group_mah[g], most_mah),
        ):
            if now < was and now != 0:
                problem = f"{name} counter went back from {was} to {now}"
            elif now - was > most:
                problem = f"{name} counter jumped {now - was} in {dt_h * 3600:.2f} s"
        others = [k for k in range(10) if k != g]
        if problem is None and any(
            (r.group_mwh[k], r.group_mah[k]) != (prev.group_mwh[k], prev.group_mah[k]) and r.group_mwh[k] != 0
            for k in others
        ):
            problem = "a counter of a group that is not selected changed"
        if problem is None and (
            (r.record_mwh < prev.record_mwh and r.record_mwh != 0)
            or (r.record_mah < prev.record_mah and r.record_mah != 0)
            or (r.record_time_s < prev.record_time_s and r.record_time_s != 0)
            or r.record_time_s - prev.record_time_s > dt_h * 3600 + 2
        ):
            problem = "recorded totals went back or ran ahead of time"
        if problem is None:
            self._counter_rejects = 0
            return None
        self._counter_rejects += 1
        if self._counter_rejects >= COUNTER_REBASE_AFTER:  # the earlier reading was the bad one: follow the meter
            self._counter_rejects = 0
            self.emit("note", f"{problem} in {COUNTER_REBASE_AFTER} readings in a row: counters re-based")
            return None
        return problem

    def info(self) -> dict[str, object]:
        out = super().info()
        out.update({"port": self.port_name, "model": self.model.name, "baud": self.baudrate})
        return out
