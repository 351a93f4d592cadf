"""A sampler thread per meter, a bounded sample buffer, keyed measurement windows and fault handling.

:class:`Sampler` reads its meter at the meter's native rate (polled meters once per
``poll_period_s``, streaming meters as fast as they deliver), appends every sample to a bounded
:class:`~devices.meters.samples.SampleBuffer` and feeds every open window. Windows are keyed, several
may be open at once, and each is integrated as samples arrive (:class:`~devices.meters.energy.
WindowIntegrator`), so a window may last hours without the buffer having to hold it.

Faults: a stall, a disconnect or garbage raised by the meter is recorded as a
:class:`~devices.meters.base.MeterEvent` (kept in :attr:`Sampler.events`, logged, and attached to every
window open at the time, which is then reported incomplete); the sampler reconnects with exponential
back-off and carries on. Nothing a meter does can end the thread except :class:`MeterExhausted`.

Without :meth:`start` the sampler can be driven by hand with :meth:`step` (tests, offline runs with a
:class:`~devices.meters.clock.ManualClock`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from pathlib import Path
from types import TracebackType

from devices.errors import BadInputError, TestbedError
from devices.meters.base import MeterDisconnected, MeterEvent, MeterExhausted, MeterStall, PowerMeter, Sleep
from devices.meters.energy import WindowIntegrator, WindowResult
from devices.meters.samples import Sample, SampleBuffer, write_samples_csv

log = logging.getLogger("devices.meters.sampler")

#: Event kinds that make an open window incomplete (resyncs and notes do not lose data).
FAULT_KINDS = frozenset({"stall", "disconnect", "fault", "error"})

#: Smallest interval between samples that counts as a gap, whatever the meter's rate (s).
MIN_GAP_S = 0.2


class Sampler:
    """Samples one meter in a background thread and answers measurement windows.

    ``sleep`` must be on the meter's clock (the default waits in real time and wakes early on
    :meth:`stop`). ``gap_s`` overrides the gap threshold (default ``max(5 × nominal period, 0.2 s)``).
    """

    def __init__(
        self,
        meter: PowerMeter,
        *,
        buffer_size: int = 200_000,
        sleep: Sleep | None = None,
        gap_s: float | None = None,
        max_backoff_s: float = 5.0,
        max_events: int = 10_000,
    ) -> None:
        self.meter = meter
        self.clock = meter.clock
        self.buffer = SampleBuffer(buffer_size)
        self._stop = threading.Event()
        self._sleep: Sleep = sleep if sleep is not None else self._real_sleep
        gap = gap_s if gap_s is not None else max(5 * meter.nominal_period_s, MIN_GAP_S)
        self.gap_ns = round(gap * 1e9)
        self.max_backoff_s = max_backoff_s
        self._backoff_s = 0.0
        self._need_reconnect = False
        self._cond = threading.Condition(threading.RLock())
        self._windows: dict[str, WindowIntegrator] = {}
        self._rejected_at_begin: dict[str, int] = {}
        self._last: Sample | None = None
        self._thread: threading.Thread | None = None
        self.events: deque[MeterEvent] = deque(maxlen=max_events)
        self.exhausted = False
        self.idle_power_w: float | None = None
        self.samples_read = 0
        self._waiting = 0  # threads blocked on the condition (notify only when someone listens)
        meter.event_sink = self._on_event

    def _real_sleep(self, seconds: float) -> None:
        # A plain sleep wakes more cheaply than an Event wait; long waits stay interruptible by stop().
        if seconds < 0.1:
            time.sleep(seconds)
        else:
            self._stop.wait(seconds)

    # -- lifecycle ----------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> Sampler:
        """Open the meter if needed and start the sampling thread."""
        if self.running:
            return self
        if not self.meter.is_open:
            self.meter.open()
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"sampler:{self.meter.scheme}", daemon=True)
        self._thread.start()
        return self

    def stop(self, close_meter: bool = True) -> None:
        """Stop the thread (waits for the read in progress) and close the meter."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.meter.timeout_s + 2.0)
            self._thread = None
        with self._cond:
            self._cond.notify_all()
        if close_meter:
            self.meter.close()

    def __enter__(self) -> Sampler:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def thread_ident(self) -> int | None:
        """The sampling thread's ident (for per-thread CPU accounting in benchmarks)."""
        return self._thread.ident if self._thread is not None else None

    # -- sampling -----------------------------------------------------------------------------------
    def _run(self) -> None:
        period = self.meter.poll_period_s
        period_ns = round(period * 1e9) if period else 0
        clock, sleep, stopped, step = self.clock, self._sleep, self._stop.is_set, self.step  # hot loop
        next_t = clock() + period_ns  # polled meters: the first reading one period after opening
        while not stopped() and not self.exhausted:
            if period_ns:
                now = clock()
                if next_t > now:
                    sleep((next_t - now) / 1e9)
                    if stopped():
                        break
                    now = clock()
                next_t += period_ns
                if next_t < now - period_ns:  # fell behind (a stall): do not burst to catch up
                    next_t = now
            step()

    def step(self) -> Sample | None:
        """Read one sample (reconnecting first if the last read failed); ``None`` when none came."""
        if self.exhausted:
            return None
        if self._need_reconnect and not self._try_reconnect():
            return None
        try:
            sample = self.meter.read()
        except MeterExhausted as exc:
            self.exhausted = True
            self._on_event(MeterEvent(self.clock(), "end", str(exc) or "source exhausted"))
            with self._cond:
                self._cond.notify_all()
            return None
        except TestbedError as exc:
            kind = (
                "stall"
                if isinstance(exc, MeterStall)
                else "disconnect"
                if isinstance(exc, MeterDisconnected)
                else "fault"
            )
            self._on_event(MeterEvent(self.clock(), kind, str(exc)))
            self._failed()
            return None
        except Exception as exc:  # a bug in a backend must not kill sampling
            self._on_event(MeterEvent(self.clock(), "error", f"{type(exc).__name__}: {exc}"))
            self._failed()
            return None
        self._backoff_s = 0.0
        self._dispatch(sample)
        return sample

    def _failed(self) -> None:
        """After a failed read: reconnect next, waiting longer each time reads keep failing."""
        self._need_reconnect = True
        self._backoff_s = min(self.max_backoff_s, max(0.05, 2 * self._backoff_s))

    def _try_reconnect(self) -> bool:
        if self._backoff_s:
            self._sleep(self._backoff_s)
        try:
            self.meter.reconnect()
        except Exception as exc:
            self._backoff_s = min(self.max_backoff_s, max(0.1, 2 * self._backoff_s))
            self._on_event(MeterEvent(self.clock(), "reconnect", f"reconnect failed: {exc}"))
            return False
        self._need_reconnect = False
        self._on_event(MeterEvent(self.clock(), "reconnect", "reconnected"))
        return True

    def _dispatch(self, sample: Sample) -> None:
        with self._cond:
            self.buffer.append(sample)
            self.samples_read += 1
            self._last = sample
            if self._windows:
                for w in self._windows.values():
                    w.feed(sample)
            if self._waiting:
                self._cond.notify_all()

    def _on_event(self, event: MeterEvent) -> None:
        with self._cond:
            self.events.append(event)
            fault = event.kind in FAULT_KINDS
            for w in self._windows.values():
                w.add_event(f"{event.kind}: {event.message}", fault=fault)
        level = logging.INFO if event.kind in ("note", "end", "clock") else logging.WARNING
        log.log(level, "%s: %s: %s", self.meter.uri, event.kind, event.message)

    def rejected_readings(self) -> int:
        """Readings the meter discarded as implausible since it was opened (windows report their share)."""
        return self.meter.rejected_readings

    def latest(self) -> Sample | None:
        return self.buffer.latest()

    def samples(self) -> list[Sample]:
        """A copy of the buffered samples, oldest first."""
        return self.buffer.snapshot()

    def wait_for_samples(self, count: int, timeout_s: float) -> bool:
        """Block until at least ``count`` samples were read in total (real time; for CLI and tests)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            self._waiting += 1
            try:
                while self.samples_read < count and not self.exhausted:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return False
                    self._cond.wait(remaining)
            finally:
                self._waiting -= 1
        return self.samples_read >= count

    # -- windows ------------------------------------------------------------------------------------
    def begin_window(self, key: str, restart: bool = False) -> None:
        """Open the window ``key`` now; :class:`BadInputError` if it is open (unless ``restart``)."""
        with self._cond:
            if key in self._windows and not restart:
                raise BadInputError(f"measurement window {key!r} is already open")
            self._windows[key] = WindowIntegrator(
                key, self.clock(), self.gap_ns, self.meter.counter_resolution_j, prev=self._last
            )
            self._rejected_at_begin[key] = self.meter.rejected_readings

    def open_windows(self) -> list[str]:
        with self._cond:
            return sorted(self._windows)

    def cancel_window(self, key: str) -> None:
        """Drop the window ``key`` without a result; :class:`BadInputError` if it is not open."""
        with self._cond:
            self._rejected_at_begin.pop(key, None)
            if self._windows.pop(key, None) is None:
                raise BadInputError(f"no open measurement window {key!r}")

    def end_window(
        self, key: str, *, cancel: bool = False, wait_s: float | None = None, subtract_idle: bool = True
    ) -> WindowResult | None:
        """Close the window ``key`` now and return its result (``None`` with ``cancel``).

        To place the end edge exactly, the result waits for the first sample at or after the end: up to
        ``wait_s`` (default: two periods plus the meter timeout) while the thread runs, or by reading up
        to three samples itself when driven by hand. Without one the last power is held to the end.
        With an idle baseline set (:meth:`measure_idle`), ``net_*`` fields are filled unless
        ``subtract_idle`` is false. A meter that measures nothing (:class:`~devices.meters.empty.EmptyMeter`)
        gives :meth:`WindowResult.no_energy` at once.
        """
        if cancel:
            self.cancel_window(key)
            return None
        with self._cond:
            w = self._windows.get(key)
            if w is None:
                raise BadInputError(f"no open measurement window {key!r}")
            w.set_end(self.clock())
            if not self.meter.measures_energy:  # the null meter: say so, do not integrate nothing into 0 J
                self._windows.pop(key, None)
                self._rejected_at_begin.pop(key, None)
                reason = self.meter.notes[0] if self.meter.notes else f"{self.meter.uri} measures no energy"
                assert w.t_end_ns is not None
                return WindowResult.no_energy(key, w.t_start_ns, w.t_end_ns, reason)
            if self.running:
                limit = wait_s if wait_s is not None else 2 * self.meter.nominal_period_s + self.meter.timeout_s
                self._waiting += 1
                try:
                    self._cond.wait_for(lambda: w.closed or self.exhausted or not self.running, timeout=limit)
                finally:
                    self._waiting -= 1
            else:
                tries = 3 if wait_s is None or wait_s > 0 else 0
                while not w.closed and tries > 0 and not self.exhausted:
                    tries -= 1
                    self.step()
            self._windows.pop(key, None)
            rejected = self.meter.rejected_readings - self._rejected_at_begin.pop(key, self.meter.rejected_readings)
        result = w.result()
        if rejected:  # implausible readings (corrupted frames or lines) were discarded, not integrated
            why = f"; last: {self.meter.last_rejection}" if self.meter.last_rejection else ""
            result.events.append(f"rejected: {rejected} implausible readings discarded{why}")
        if subtract_idle and self.idle_power_w is not None:
            result.with_idle(self.idle_power_w)
        return result

    def measure_idle(self, seconds: float) -> WindowResult:
        """Measure the idle baseline over ``seconds`` (system otherwise quiet) and keep its mean power."""
        key = "__idle__"
        self.begin_window(key, restart=True)
        if self.running:
            self._sleep(seconds)
        else:
            deadline = self.clock() + round(seconds * 1e9)
            while self.clock() < deadline and not self.exhausted:
                if self.meter.poll_period_s:
                    self._sleep(self.meter.poll_period_s)
                self.step()
        result = self.end_window(key, subtract_idle=False)
        assert result is not None
        self.idle_power_w = result.mean_power_w
        return result

    # -- persistence --------------------------------------------------------------------------------
    def persist(self, path: str | Path) -> int:
        """Write the buffered samples to a sample CSV; returns the row count."""
        meta = {"meter": self.meter.uri, "dropped_samples": str(self.buffer.dropped)}
        return write_samples_csv(path, self.samples(), meta)
