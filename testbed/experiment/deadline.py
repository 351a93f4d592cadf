"""A deadline derived from a profile: one that dense-max meets at the top level and the sparsest set meets at
the lowest, and that the densest set misses at the lowest (otherwise nothing needs to reconfigure).

With ``lower = max(p99 of the densest set at the top level, p99 of the sparsest set at the lowest level)`` and
``upper = p99 of the densest set at the lowest level``: the deadline is ``margin · lower`` when that is below
``upper``, else the midpoint of the two when ``lower < upper``; when ``lower ≥ upper`` no deadline separates
the sets and :attr:`DerivedDeadline.deadline_ms` is None (the rule says why).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from devices.errors import BadInputError
from traces.profile import ProfileTable


@dataclass(frozen=True)
class DerivedDeadline:
    """The derived deadline (ms; None when none exists) and the numbers and rule behind it."""

    deadline_ms: float | None
    rule: str
    dense_top_p99_ms: float
    sparsest_low_p99_ms: float
    dense_low_p99_ms: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def derive_deadline(table: ProfileTable, levels: Sequence[str] | None = None, margin: float = 1.1) -> DerivedDeadline:
    """Derive the deadline over ``levels`` (default: all of the table's, fastest first); see the module text.

    Raises :class:`BadInputError` for a level the table does not have or a margin below 1.
    """
    if margin < 1.0:
        raise BadInputError(f"deadline margin must be ≥ 1, got {margin}")
    lv = list(levels) if levels else list(table.levels)
    for name in lv:
        if name not in table.levels:
            raise BadInputError(f"level {name!r} is not a profiled level ({', '.join(table.levels)})")
    by_f = sorted(lv, key=table.freq_khz, reverse=True)
    top, low = by_f[0], by_f[-1]
    dense, sparsest = table.pattern_sets[0], table.pattern_sets[-1]
    d_top = table.get(dense, top).latency_p99_ms
    s_low = table.get(sparsest, low).latency_p99_ms
    d_low = table.get(dense, low).latency_p99_ms
    lower, upper = max(d_top, s_low), d_low
    what = (
        f"p99 of {dense} at {top} {d_top:.4g} ms, of {sparsest} at {low} {s_low:.4g} ms, of {dense} at {low} "
        f"{d_low:.4g} ms"
    )
    if margin * lower < upper:
        deadline, how = margin * lower, f"{margin:g} x the larger of the first two"
    elif lower < upper:
        deadline, how = (lower + upper) / 2.0, "midway between the larger of the first two and the third"
    else:
        return DerivedDeadline(
            None, f"no deadline exists: {dense} at {low} is as fast as the slowest required pair ({what})",
            d_top, s_low, d_low,
        )  # fmt: skip
    rule = f"met by dense-max at {top} and by {sparsest} at {low}, missed by {dense} at {low}: {how} ({what})"
    return DerivedDeadline(round(deadline, 4), rule, d_top, s_low, d_low)
