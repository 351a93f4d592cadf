"""Who a process is: its pid plus its start time, so a reused pid is not mistaken for the original.

A pid alone names whatever process got that number last. Linux gives each process a start time in clock
ticks since boot (``/proc/<pid>/stat`` field 22); together with the boot id (``/proc/sys/kernel/random/
boot_id``) the triple (boot id, pid, start ticks) names one process for good. These are read from the
*real* ``/proc`` of this machine, never from an emulated sysfs root: the processes are real.

Failure modes: none raised; unreadable values are ``None`` and callers treat the owner as unknown.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


def process_start_ticks(pid: int) -> int | None:
    """Start time of ``pid`` in clock ticks after boot (``/proc/<pid>/stat`` field 22), or ``None``."""
    if pid <= 0:
        return None
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            text = fh.read()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: fields after it follow the last ')'
    rest = text[text.rfind(")") + 2 :].split()
    try:
        return int(rest[19])  # field 22 overall = index 19 after the name (fields 3..)
    except (IndexError, ValueError):
        return None


def pid_alive(pid: int) -> bool:
    """Whether some process has ``pid`` now (any owner)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def this_boot_id() -> str | None:
    """This machine's boot id, or ``None`` where the kernel has none."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip() or None
    except OSError:
        return None


@dataclass(frozen=True)
class ProcessIdentity:
    """One process for good: pid, its start ticks and the boot it ran in (``None`` where unknown)."""

    pid: int
    start_ticks: int | None
    boot_id: str | None

    @classmethod
    def current(cls) -> ProcessIdentity:
        pid = os.getpid()
        return cls(pid, process_start_ticks(pid), this_boot_id())

    def alive(self) -> bool:
        """True only if this very process still runs: same boot, pid alive, same start time.

        A record without a start time (written by an older testbed) counts as alive only while the pid is,
        in the same boot — the old rule, the best that record allows.
        """
        if self.boot_id is not None and self.boot_id != this_boot_id():
            return False
        if not pid_alive(self.pid):
            return False
        if self.start_ticks is None:
            return True
        return process_start_ticks(self.pid) == self.start_ticks
