"""Clocks for meters: the real monotonic clock, and a manual clock for tests and offline generation.

:class:`ManualClock` is a clock whose ``sleep`` advances time instead of waiting, so a sampler, a fake
meter and window bookkeeping can run deterministically and instantly. It is thread-safe.
"""

from __future__ import annotations

import threading
import time

monotonic_ns = time.monotonic_ns


class ManualClock:
    """A monotonic nanosecond clock that only moves when told to (``advance``/``sleep``)."""

    def __init__(self, start_ns: int = 1_000_000_000) -> None:
        self._now = start_ns
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds`` (negative values are ignored: the clock is monotonic)."""
        if seconds > 0:
            with self._lock:
                self._now += round(seconds * 1e9)

    def sleep(self, seconds: float) -> None:
        """Same as :meth:`advance`: sleeping on a manual clock costs no real time."""
        self.advance(seconds)

    def set(self, t_ns: int) -> None:
        """Jump to ``t_ns`` if it is later than now."""
        with self._lock:
            self._now = max(self._now, t_ns)
