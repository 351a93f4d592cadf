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
from devices.meters.um_protocol import FRAME_LEN, MODELS, REQUEST, UMModel, decode_frame, extract_frame
from devices.meters.uri import MeterURI


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
                break
            if self.clock() >= deadline:
                detail = f": {problem}" if problem else ""
                raise MeterStall(
                    f"{self.port_name}: no valid {self.model.name.upper()} frame within {self.timeout_s:g} s{detail}"
                )
        t1 = self.clock()
        reading = decode_frame(frame, self.model)
        self.frames += 1
        energy: float | None = reading.energy_j
        if self._group is not None and reading.group != self._group:
            self.emit("note", f"data group changed {self._group} -> {reading.group}; counter restarts")
            energy = None
        self._group = reading.group
        return Sample(
            (t0 + t1) // 2,
            reading.power_w,
            voltage_v=reading.voltage_v,
            current_a=reading.current_a,
            energy_j=energy,
        )

    def info(self) -> dict[str, object]:
        out = super().info()
        out.update({"port": self.port_name, "model": self.model.name, "baud": self.baudrate})
        return out
