"""A measurement window's controls: stopping it early, and keeping other agent work from disturbing it.

* :class:`WindowControl` — the agent's one running window (windows hold the board lock, so there is at most
  one). :meth:`WindowControl.abort` (lease expiry, shutdown, the window-length limit) sets an event the
  measuring loop checks between inferences and sleeps on while waiting for the next release, so a window stops
  within about one inference; the result then says ``aborted`` and why.
* While a window runs, every other request the agent serves is counted against it (a window that shared the
  board's CPUs with agent work reports ``disturbed`` and how many requests it served), and readers
  (``/v1/info``, ``/v1/power/samples``) are rate-limited by a token bucket (:class:`ReaderLimiter`): beyond
  :data:`READER_RATE_HZ` per second they get HTTP 429 with ``Retry-After`` until the window ends.

Failure modes: :class:`ReadersThrottled` (HTTP 429) from :meth:`WindowControl.admit_reader`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from devices.errors import TestbedError

#: Reader requests per second admitted while a window runs (a burst of :data:`READER_BURST` first).
READER_RATE_HZ = 2.0
READER_BURST = 4


class ReadersThrottled(TestbedError):
    """Too many reader requests while a measurement window runs (HTTP 429)."""

    exit_code = 1

    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"a measurement window is running: readers are limited to {READER_RATE_HZ:g}/s; retry later")
        self.retry_after_s = retry_after_s


class ReaderLimiter:
    """A token bucket: ``rate_hz`` tokens per second, at most ``burst`` saved."""

    def __init__(self, rate_hz: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate_hz = rate_hz
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._t = clock()

    def reset(self) -> None:
        self._tokens = float(self.burst)
        self._t = self._clock()

    def take(self) -> float:
        """0 when admitted, else the seconds until a token is due."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._t) * self.rate_hz)
        self._t = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return 0.0
        return (1.0 - self._tokens) / self.rate_hz


@dataclass
class WindowState:
    """The running window: why it was aborted (None while it runs on) and the requests served meanwhile."""

    key: str
    lease_id: str | None
    abort_reason: str | None = None
    concurrent_requests: int = 0
    readers_refused: int = 0


class WindowControl:
    """The agent's running window (at most one) and its abort event."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: WindowState | None = None
        self._abort = threading.Event()
        self._limiter = ReaderLimiter(READER_RATE_HZ, READER_BURST)

    def begin(self, key: str, lease_id: str | None) -> WindowState:
        with self._lock:
            self._state = WindowState(key, lease_id)
            self._abort.clear()
            self._limiter.reset()
            return self._state

    def end(self) -> None:
        with self._lock:
            self._state = None
            self._abort.clear()

    @property
    def running(self) -> WindowState | None:
        return self._state

    def abort(self, reason: str, lease_id: str | None = None) -> bool:
        """Abort the running window (only the one of ``lease_id`` when given); returns whether one was."""
        with self._lock:
            st = self._state
            if st is None or (lease_id is not None and st.lease_id != lease_id):
                return False
            if st.abort_reason is None:
                st.abort_reason = reason
            self._abort.set()
            return True

    def wait(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True (at once) when the window is aborted."""
        if seconds <= 0:
            return self._abort.is_set()
        return self._abort.wait(seconds)

    @property
    def aborted(self) -> bool:
        return self._abort.is_set()

    def note_request(self) -> None:
        """Count a request served while a window runs (any route but the window's own)."""
        with self._lock:
            if self._state is not None:
                self._state.concurrent_requests += 1

    def admit_reader(self) -> None:
        """Let a reader through, or :class:`ReadersThrottled` while a window runs and the bucket is empty."""
        with self._lock:
            if self._state is None:
                return
            wait = self._limiter.take()
            if wait > 0:
                self._state.readers_refused += 1
                raise ReadersThrottled(wait)
            self._state.concurrent_requests += 1
