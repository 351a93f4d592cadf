"""The :class:`PowerMeter` interface every backend implements, and the clock types it uses.

A meter is opened from a URI (:func:`devices.meters.registry.open_meter`), then :meth:`PowerMeter.read`
is called repeatedly — by a :class:`~devices.meters.sampler.Sampler` thread, normally — and returns one
:class:`~devices.meters.samples.Sample` timestamped with the meter's clock at the moment of the reading.

Two kinds of meter:

* *polled* meters (sysfs, ``vcgencmd``, the UM request/response) set :attr:`PowerMeter.poll_period_s`;
  the sampler calls :meth:`read` once per period;
* *streaming* meters (an Arduino printing CSV, a replayed trace) leave it ``None``; :meth:`read` blocks
  until the meter delivers the next sample.

Failure modes of :meth:`read`: :class:`~devices.errors.HardwareError` for a stall (nothing within
``timeout_s``), a disconnect or unusable data (the sampler logs it as an event, calls :meth:`reconnect`
and carries on); :class:`MeterExhausted` when a finite source (a replayed trace) has ended.
Opening raises :class:`~devices.errors.BadInputError` (bad URI, no such port or file),
:class:`~devices.errors.PermissionDeniedError` (what grants access) or
:class:`~devices.errors.UnsupportedError` (this machine lacks the sensor).
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass
from types import TracebackType
from typing import NoReturn

from devices.errors import BadInputError, HardwareError, TestbedError
from devices.meters.samples import Sample

#: A monotonic clock in nanoseconds (``time.monotonic_ns`` or a test's fake clock).
Clock = Callable[[], int]
#: Sleep for a number of seconds on the same time base as the clock.
Sleep = Callable[[float], None]

log = logging.getLogger("devices.meters")


class MeterExhausted(TestbedError):
    """A finite source (a replayed trace) has no more samples."""


class MeterStall(HardwareError):
    """The meter gave no (valid) reading within its timeout."""


class MeterDisconnected(HardwareError):
    """The connection to the meter is gone (port closed, device unplugged, file vanished)."""


@dataclass(frozen=True)
class MeterEvent:
    """Something worth recording about a meter: a fault, a resync, a reconnect, a clock remap."""

    t_ns: int
    kind: str  # "stall", "disconnect", "reconnect", "resync", "garbage", "clock", "error", "note"
    message: str

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


EventSink = Callable[[MeterEvent], None]


class PowerMeter(ABC):
    """One power source. Subclasses set the class attributes and implement :meth:`open`/:meth:`read`."""

    #: URI scheme, e.g. ``"um25c"``.
    scheme: str = ""
    #: Seconds between polls for polled meters; ``None`` when :meth:`read` blocks on a stream.
    poll_period_s: float | None = None
    #: Expected seconds between samples (gap detection uses a multiple of it).
    nominal_period_s: float = 0.1
    #: Step of the cumulative ``energy_j`` counter in J, or ``None`` without a counter.
    counter_resolution_j: float | None = None
    #: Longest wait for one reading before :meth:`read` reports a stall (s).
    timeout_s: float = 2.0
    #: False only for the null meter (:class:`~devices.meters.empty.EmptyMeter`): its windows carry no energy.
    measures_energy: bool = True

    def __init__(self, uri: str, clock: Clock = time.monotonic_ns) -> None:
        self.uri = uri
        self.clock = clock
        self.notes: list[str] = []
        self.event_sink: EventSink | None = None
        self.is_open = False
        #: Readings this meter discarded because they failed a plausibility check (see :meth:`reject`).
        self.rejected_readings = 0
        self.last_rejection: str | None = None

    # -- lifecycle ----------------------------------------------------------------------------------
    @abstractmethod
    def open(self) -> None:
        """Connect to the meter (idempotent after :meth:`close`)."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""
        self.is_open = False

    def reconnect(self) -> None:
        """Close and open again (after a disconnect or stall)."""
        self.close()
        self.open()

    @abstractmethod
    def read(self) -> Sample:
        """One reading, timestamped with :attr:`clock`; see the module docstring for failures."""

    # -- helpers ------------------------------------------------------------------------------------
    def reject(self, reason: str) -> None:
        """Count one reading discarded as implausible (corrupted on the wire); windows report the count."""
        self.rejected_readings += 1
        self.last_rejection = reason

    def emit(self, kind: str, message: str) -> None:
        """Report an event to the sampler (or the log when none listens)."""
        event = MeterEvent(self.clock(), kind, message)
        if self.event_sink is not None:
            self.event_sink(event)
        else:
            log.info("%s: %s: %s", self.uri, kind, message)

    def info(self) -> dict[str, object]:
        """JSON-ready description: URI, rates, counter, notes."""
        return {
            "uri": self.uri,
            "scheme": self.scheme,
            "poll_period_s": self.poll_period_s,
            "nominal_period_s": self.nominal_period_s,
            "counter_resolution_j": self.counter_resolution_j,
            "notes": list(self.notes),
        }

    def __enter__(self) -> PowerMeter:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def rate_param(params: dict[str, str], default_hz: float, uri: str, max_hz: float = 10_000.0) -> float:
    """The ``rate_hz`` URI parameter as a poll period in seconds (validated)."""
    text = params.get("rate_hz")
    if text is None:
        return 1.0 / default_hz
    hz = float_param(params, "rate_hz", default_hz, uri)
    if not 0 < hz <= max_hz:
        raise_bad(uri, f"rate_hz must be in (0, {max_hz:g}], got {text}")
    return 1.0 / hz


def float_param(params: dict[str, str], name: str, default: float, uri: str) -> float:
    """A float URI parameter, or ``default`` when absent; :class:`BadInputError` when not a number."""
    text = params.get(name)
    if text is None:
        return default
    try:
        value = float(text)
    except ValueError:
        raise_bad(uri, f"{name}={text!r} is not a number")
    if value != value or value in (float("inf"), float("-inf")):
        raise_bad(uri, f"{name}={text!r} is not a finite number")
    return value


def raise_bad(uri: str, problem: str) -> NoReturn:
    """Raise :class:`BadInputError` about a meter URI."""
    raise BadInputError(f"meter URI {uri!r}: {problem}")
