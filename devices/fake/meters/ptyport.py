"""A pty pair standing in for a serial port, reachable through a stable symlink.

The fake device owns the master side; the meter opens the slave by path (pyserial puts it in raw
mode). :meth:`PtyPort.hang_up` closes the pair (the meter sees a disconnect) and :meth:`PtyPort.reopen`
creates a new pair and re-points the symlink, like an rfcomm device coming back, so a reconnecting
meter finds it again under the same name.
"""

from __future__ import annotations

import os
import select
import threading
import tty
from pathlib import Path
from typing import TypeVar


class PtyPort:
    """The device end of a pty pair; ``path`` is what a meter opens."""

    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        self.link = Path(link) if link is not None else None
        self.master: int | None = None
        self._slave: int | None = None
        self.slave_name = ""
        self.reopen()

    @property
    def path(self) -> str:
        return str(self.link) if self.link is not None else self.slave_name

    def reopen(self) -> None:
        """Create a fresh pty pair (closing any previous one) and point the link at it."""
        self.hang_up()
        master, slave = os.openpty()
        tty.setraw(slave)
        tty.setraw(master)
        self.master, self._slave = master, slave
        self.slave_name = os.ttyname(slave)
        if self.link is not None:
            tmp = self.link.with_name(self.link.name + ".tmp")
            if tmp.is_symlink() or tmp.exists():
                tmp.unlink()
            tmp.symlink_to(self.slave_name)
            os.replace(tmp, self.link)

    def hang_up(self) -> None:
        """Close both ends: the meter's next read or write fails."""
        for fd in (self.master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self._slave = None

    def close(self) -> None:
        self.hang_up()
        if self.link is not None and self.link.is_symlink():
            self.link.unlink()

    def read(self, timeout_s: float, n: int = 4096) -> bytes:
        """Bytes the meter wrote, or ``b""`` after ``timeout_s``."""
        fd = self.master
        if fd is None:
            return b""
        try:
            ready, _, _ = select.select([fd], [], [], timeout_s)
            if not ready:
                return b""
            return os.read(fd, n)
        except OSError:
            return b""

    def write(self, data: bytes) -> None:
        """Send bytes to the meter (silently dropped while hung up)."""
        fd = self.master
        if fd is None:
            return
        view = memoryview(data)
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                select.select([], [fd], [], 0.1)
                continue
            except OSError:
                return
            view = view[n:]


class PtyDevice:
    """Base of fake devices served on a :class:`PtyPort` by one background thread.

    Subclasses implement :meth:`_serve` (loop until ``self._stop`` is set) and may extend
    :meth:`_on_start` (called just before the thread starts, e.g. to reset the device's clock origin).
    """

    thread_name = "fake-device"

    def __init__(self, link: str | os.PathLike[str] | None = None) -> None:
        self.pty = PtyPort(link)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> str:
        """The path to give the meter URI."""
        return self.pty.path

    def _on_start(self) -> None:
        """Hook for subclasses, run before the serving thread starts."""

    def _serve(self) -> None:
        raise NotImplementedError

    def start(self: _D) -> _D:
        self._on_start()
        self._thread = threading.Thread(target=self._serve, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=3)
        self.pty.close()

    def __enter__(self: _D) -> _D:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_D = TypeVar("_D", bound=PtyDevice)
