"""Opening serial ports for meters through ``serial.serial_for_url``.

Any pyserial URL works (``socket://host:port``, ``loop://``, ``rfc2217://…``) besides a device path, so
tests and users can point a meter at a pty, a TCP bridge or a loopback. Errors become the project's:
a missing port is :class:`~devices.errors.BadInputError` (first open) or
:class:`~devices.meters.base.MeterDisconnected` (reconnect); no permission is
:class:`~devices.errors.PermissionDeniedError` saying which group grants access.
"""

from __future__ import annotations

import errno
from typing import Any

import serial

from devices.errors import BadInputError, HardwareError, PermissionDeniedError
from devices.meters.base import Clock, MeterDisconnected, PowerMeter


def open_port(port: str, baudrate: int, timeout_s: float, *, first_open: bool = True) -> Any:
    """Open ``port`` (a path or pyserial URL) for reading with a per-read timeout (s)."""
    if not port:
        raise BadInputError("no serial port given: use e.g. um25c:///dev/rfcomm0 or ina219+serial:///dev/ttyACM0")
    try:
        return serial.serial_for_url(port, baudrate=baudrate, timeout=timeout_s, write_timeout=timeout_s)
    except serial.SerialException as exc:
        err = getattr(exc, "errno", None)
        text = str(exc)
        if err == errno.EACCES or "Permission denied" in text:
            raise PermissionDeniedError(
                f"{port}: permission denied; add your user to the 'dialout' group "
                "(sudo usermod -aG dialout $USER, then log in again)"
            ) from None
        if first_open and (err == errno.ENOENT or "No such file" in text or "could not open port" in text):
            raise BadInputError(
                f"{port}: no such serial port; for a Bluetooth UM meter run 'sudo rfcomm bind 0 <MAC>' "
                "first, for an Arduino check 'ls /dev/ttyACM* /dev/ttyUSB*'"
            ) from None
        if first_open and ("://" in port or "expected" in text.lower()):
            raise BadInputError(f"{port}: cannot open: {text}") from None
        raise MeterDisconnected(f"{port}: cannot open: {text}") from None
    except ValueError as exc:
        raise BadInputError(f"{port}: bad serial settings: {exc}") from None
    except OSError as exc:
        raise HardwareError(f"{port}: cannot open: {exc.strerror or exc}") from None


def int_param(params: dict[str, str], name: str, default: int, uri: str) -> int:
    """An integer URI parameter (e.g. ``baud``), validated positive."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise BadInputError(f"meter URI {uri!r}: {name}={text!r} is not an integer") from None
    if value <= 0:
        raise BadInputError(f"meter URI {uri!r}: {name} must be positive, got {value}")
    return value


class SerialMeter(PowerMeter):
    """Base of meters behind one serial port: holds the port and a receive buffer, opens and closes.

    Subclasses implement :meth:`read` and may extend :meth:`_on_open` (called after every (re)open, with
    the buffer already cleared) to reset their own parser state.
    """

    def __init__(self, uri: str, port: str, *, baudrate: int, timeout_s: float, clock: Clock) -> None:
        super().__init__(uri, clock)
        self.port_name = port
        self.baudrate = baudrate
        self.timeout_s = timeout_s
        self._port: Any = None
        self._buf = bytearray()
        self._opened_once = False

    def open(self) -> None:
        if self.is_open:
            return
        self._port = open_port(
            self.port_name, self.baudrate, min(0.1, self.timeout_s), first_open=not self._opened_once
        )
        self._opened_once = True
        self._buf.clear()
        self._on_open()
        self.is_open = True

    def _on_open(self) -> None:
        """Hook for subclasses: reset parser state after a (re)open."""

    def close(self) -> None:
        if self._port is not None:
            try:
                self._port.close()
            except (serial.SerialException, OSError):
                pass
            self._port = None
        self.is_open = False
