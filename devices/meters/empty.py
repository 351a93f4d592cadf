""" "No meter" as a null object (Zeus's ``Empty*`` pattern): :class:`EmptyMeter`.

A board without a power meter still gets a :class:`~devices.meters.sampler.Sampler`, windows and
measurements; they simply say that no energy is available — ``energy_j`` and ``mean_power_w`` are
``None`` and ``energy_method`` is ``"none"`` (:meth:`devices.meters.energy.WindowResult.no_energy`) —
instead of every caller checking for a missing meter, and never a 0 J that looks like a measurement.

Code that needs energy (profiling, hardware-in-the-loop runs, sweeps) asks :func:`has_energy` or
:func:`require_energy` of a serialised window and gets one clear error when there is none.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from devices.meters.base import Clock, MeterExhausted, PowerMeter
from devices.meters.samples import Sample
from devices.meters.uri import MeterURI

#: The URI an :class:`EmptyMeter` reports (in agent info, manifests and windows).
EMPTY_METER_URI = "none://"
#: What a window of the empty meter says about itself.
NO_METER_REASON = "no power meter: energy was not measured"


class EmptyMeter(PowerMeter):
    """A meter that measures nothing: it opens, yields no sample, and its windows report no energy."""

    scheme = "none"
    measures_energy = False
    timeout_s = 0.0

    def __init__(self, uri: str = EMPTY_METER_URI, clock: Clock = time.monotonic_ns) -> None:
        super().__init__(uri, clock)
        self.notes.append(NO_METER_REASON)

    @classmethod
    def from_uri(cls, parsed: MeterURI, *, sysfs_root: Path, clock: Clock, **options: Any) -> EmptyMeter:
        """``none://``: the registry's way to ask for no meter explicitly."""
        return cls(parsed.raw, clock)

    def open(self) -> None:
        self.is_open = True

    def read(self) -> Sample:
        """Never a sample: :class:`MeterExhausted` at once, so a sampler thread ends immediately."""
        raise MeterExhausted(NO_METER_REASON)


def has_energy(window: Mapping[str, Any] | None) -> bool:
    """True when a serialised window (``WindowResult.to_dict()``) carries measured energy."""
    return window is not None and window.get("energy_j") is not None


def require_energy(window: Mapping[str, Any] | None, purpose: str) -> Mapping[str, Any]:
    """A serialised window (``WindowResult.to_dict()``) that has energy, for ``purpose`` (e.g. "profile energy").

    Raises :class:`BadInputError` ("the agent has no power meter: cannot …") when the window is absent or
    comes from an :class:`EmptyMeter`.
    """
    if window is None or not has_energy(window):
        raise BadInputError(f"the agent has no power meter: cannot {purpose}")
    return window
