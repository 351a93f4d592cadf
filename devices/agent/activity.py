"""Workload activity for the modelled meter: the fraction of time the agent was running inferences.

The agent marks each inference busy; :meth:`ActivityTracker.read` returns, per CPU, the busy fraction
since its previous call (0..1), which ``model://`` turns into power. Used on emulated boards, where
the host's own utilisation would describe the host, not the board.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable


class ActivityTracker:
    """Time-weighted busy fraction of ``cpus`` between successive :meth:`read` calls."""

    def __init__(self, cpus: list[int], clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.cpus = cpus
        self._clock = clock
        self._lock = threading.Lock()
        self._busy_since: int | None = None
        self._busy_ns = 0
        self._last_read = clock()

    def begin(self) -> None:
        with self._lock:
            if self._busy_since is None:
                self._busy_since = self._clock()

    def end(self) -> None:
        with self._lock:
            if self._busy_since is not None:
                self._busy_ns += self._clock() - self._busy_since
                self._busy_since = None

    def read(self) -> dict[int, float]:
        with self._lock:
            now = self._clock()
            busy = self._busy_ns
            if self._busy_since is not None:
                busy += now - self._busy_since
                self._busy_since = now
            span = max(1, now - self._last_read)
            self._last_read = now
            self._busy_ns = 0
        frac = min(1.0, busy / span)
        return {c: frac for c in self.cpus}
