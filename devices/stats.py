"""Small statistics shared by the agent, the profiler and the load test (no numpy needed)."""

from __future__ import annotations

import math

from devices.errors import BadInputError


def percentile(ordered: list[float], q: float) -> float:
    """Linear-interpolated percentile ``q`` (0–100) of ascending values; :class:`BadInputError` if empty."""
    if not ordered:
        raise BadInputError("no values to take a percentile of")
    pos = (len(ordered) - 1) * q / 100.0
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)
