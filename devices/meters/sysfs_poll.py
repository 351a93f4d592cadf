"""Fast repeated reads of one sysfs attribute for meters polled at up to 1 kHz.

:class:`PolledFile` resolves its path through :class:`~devices.sysfs.Sysfs` (so the injectable root
still applies), keeps the file open and re-reads it with ``os.pread(fd, …, 0)`` — a sysfs attribute
regenerates its value on every read at offset 0, and a regular file in a test tree shows its current
content. This saves an open/close per sample, which dominates the cost of a sysfs meter's sample.

Failure modes: the file vanishing → :class:`~devices.meters.base.MeterDisconnected`; no permission →
:class:`~devices.errors.PermissionDeniedError` (with what grants access); not an integer →
:class:`~devices.errors.HardwareError`.
"""

from __future__ import annotations

import os

from devices.errors import HardwareError, PermissionDeniedError
from devices.meters.base import MeterDisconnected
from devices.sysfs import Sysfs, permission_hint


class PolledFile:
    """One sysfs attribute, kept open between reads."""

    def __init__(self, sysfs: Sysfs, rel: str) -> None:
        self.rel = rel
        self.path = sysfs.path(rel)
        self._fd: int | None = None

    def _open(self) -> int:
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise MeterDisconnected(f"{self.path}: file vanished") from None
        except PermissionError:
            raise PermissionDeniedError(f"{self.path}: permission denied; {permission_hint(self.rel)}") from None
        except OSError as exc:
            raise MeterDisconnected(f"{self.path}: cannot open: {os.strerror(exc.errno or 0)}") from None
        return self._fd

    def read_int(self) -> int:
        """The attribute's current integer value."""
        fd = self._fd if self._fd is not None else self._open()
        try:
            data = os.pread(fd, 64, 0)
        except OSError as exc:
            self.close()
            raise MeterDisconnected(f"{self.path}: read failed: {os.strerror(exc.errno or 0)}") from None
        try:
            return int(data.strip())
        except ValueError:
            raise HardwareError(f"{self.path}: expected an integer, read {data[:20]!r}") from None

    def close(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
