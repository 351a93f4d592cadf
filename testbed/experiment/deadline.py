"""A deadline derived from a profile: one that dense-max meets at the top level and the sparsest set meets at
the lowest, and that the densest set misses at the lowest (otherwise nothing needs to reconfigure).

Each cell's tail latency is either its own measured p99 (``tail="cell"``) or, with ``tail="pooled"``, its
median times the table's pooled tail ratio: the median over all cells at the levels of p99 / p50. A p99 from a
few dozen inferences is close to their maximum and moves by 10–25 % between profiles of the same model; the
medians and the pooled ratio move far less, so a deadline (and a request period derived from it) built on them
is reproducible. With ``lower = max(tail of the densest set at the top level, tail of the sparsest set at the
lowest level)`` and ``upper = tail of the densest set at the lowest level``: the deadline is ``margin · lower``
when that is below ``upper``, else the midpoint of the two when ``lower < upper``; when ``lower ≥ upper`` no
deadline separates the sets and :attr:`DerivedDeadline.deadline_ms` is None (the rule says why). In either mode
the deadline is at least ``margin`` × the densest set's own measured p99 at the top level, so dense-max meets it.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from devices.errors import BadInputError
from traces.profile import ProfileRow, ProfileTable

#: How a cell's tail latency, the one compared with a deadline, is read from a profile (see the module text).
TAILS = ("cell", "pooled")


@dataclass(frozen=True)
class DerivedDeadline:
    """The derived deadline (ms; None when none exists) and the numbers and rule behind it."""

    deadline_ms: float | None
    rule: str
    dense_top_p99_ms: float
    sparsest_low_p99_ms: float
    dense_low_p99_ms: float
    tail: str = "cell"
    pooled_tail_ratio: float | None = None
    dense_top_p50_ms: float = 0.0
    sparsest_low_p50_ms: float = 0.0

    def period_ms(self, factor: float = 1.7) -> float:
        """A request period from medians alone: ``factor`` × the larger of the densest set's median at the top
        level and the sparsest set's at the lowest. Tails move with the host's load; medians much less, so a
        duty cycle set this way is reproducible, and it scales with the latencies like the deadline does."""
        return round(factor * max(self.dense_top_p50_ms, self.sparsest_low_p50_ms), 4)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pooled_tail_ratio(table: ProfileTable, levels: Sequence[str]) -> float:
    """The median over the cells at ``levels`` of p99 / p50 (1.0 for a table without positive medians)."""
    ratios = [
        r.latency_p99_ms / r.latency_p50_ms for r in table.rows.values() if r.level in levels and r.latency_p50_ms > 0
    ]
    return statistics.median(ratios) if ratios else 1.0


@dataclass(frozen=True)
class TailModel:
    """How the latency compared with a deadline is read from a profile's cells: ``tail="cell"`` is the cell's
    own measured p99; ``tail="pooled"`` its median × ``ratio``, the table's pooled p99/p50 over the levels in
    use (:func:`pooled_tail_ratio`). Everything that checks a deadline against one profile — the derived
    deadline, the strategies' choice of sets, the search's feasibility — reads tails through one model, so
    with pooled tails a set's feasibility rests on ratios of medians, which move little between profiles."""

    tail: str = "cell"
    ratio: float | None = None

    @classmethod
    def of(cls, table: ProfileTable, levels: Sequence[str], tail: str = "cell") -> TailModel:
        """The model for ``table`` at ``levels``; :class:`BadInputError` for an unknown ``tail``."""
        if tail not in TAILS:
            raise BadInputError(f"deadline tail must be {' or '.join(repr(t) for t in TAILS)}, got {tail!r}")
        return cls(tail, pooled_tail_ratio(table, levels) if tail == "pooled" else None)

    def latency_ms(self, row: ProfileRow) -> float:
        """The tail latency (ms) of one profile row under this model."""
        return row.latency_p50_ms * self.ratio if self.ratio is not None else row.latency_p99_ms

    def describe(self) -> str:
        """``p99`` or ``p50 x pooled p99/p50 R``: what the compared latency is."""
        return "p99" if self.ratio is None else f"p50 x pooled p99/p50 {self.ratio:.3f}"


def derive_deadline(
    table: ProfileTable,
    levels: Sequence[str] | None = None,
    margin: float = 1.1,
    tail: str = "cell",
    sets: Sequence[str] | None = None,
) -> DerivedDeadline:
    """Derive the deadline over ``levels`` (default: all of the table's, fastest first) from the densest and
    the sparsest of ``sets`` (default: all of the table's pattern sets); see the module text.

    Raises :class:`BadInputError` for a level or set the table does not have, a margin below 1 or an unknown
    ``tail``.
    """
    if margin < 1.0:
        raise BadInputError(f"deadline margin must be ≥ 1, got {margin}")
    lv = list(levels) if levels else list(table.levels)
    for name in lv:
        if name not in table.levels:
            raise BadInputError(f"level {name!r} is not a profiled level ({', '.join(table.levels)})")
    by_f = sorted(lv, key=table.freq_khz, reverse=True)
    top, low = by_f[0], by_f[-1]
    if sets is not None:
        unknown = sorted(set(sets) - set(table.pattern_sets))
        if unknown or not sets:
            raise BadInputError(f"pattern set(s) {', '.join(unknown) or '(none)'} not in the profile")
    chosen = [ps for ps in table.pattern_sets if sets is None or ps in sets]  # densest first
    dense, sparsest = chosen[0], chosen[-1]
    model = TailModel.of(table, lv, tail)
    ratio = model.ratio

    def tail_ms(ps: str, level: str) -> float:
        return model.latency_ms(table.get(ps, level))

    d_top, s_low, d_low = tail_ms(dense, top), tail_ms(sparsest, low), tail_ms(dense, low)
    d_top_measured = table.get(dense, top).latency_p99_ms
    p50_top, p50_low = table.get(dense, top).latency_p50_ms, table.get(sparsest, low).latency_p50_ms
    lower, upper = max(d_top, s_low), d_low
    kind = model.describe() + ("" if ratio is None else " =")
    what = (
        f"{kind} of {dense} at {top} {d_top:.4g} ms, of {sparsest} at {low} {s_low:.4g} ms, of {dense} at {low} "
        f"{d_low:.4g} ms"
    )
    if margin * lower < upper:
        deadline, how = margin * lower, f"{margin:g} x the larger of the first two"
    elif lower < upper:
        deadline, how = (lower + upper) / 2.0, "midway between the larger of the first two and the third"
    else:
        return DerivedDeadline(
            None, f"no deadline exists: {dense} at {low} is as fast as the slowest required pair ({what})",
            d_top, s_low, d_low, tail, ratio, p50_top, p50_low,
        )  # fmt: skip
    if deadline < margin * d_top_measured:  # dense-max must meet it by its own measured tail
        deadline = margin * d_top_measured
        how += f", raised to {margin:g} x the measured p99 of {dense} at {top} ({d_top_measured:.4g} ms)"
        if deadline >= upper:
            return DerivedDeadline(
                None, f"no deadline exists: {dense} at {top} has a measured p99 too close to {dense} at {low} ({what})",
                d_top, s_low, d_low, tail, ratio, p50_top, p50_low,
            )  # fmt: skip
    rule = f"met by dense-max at {top} and by {sparsest} at {low}, missed by {dense} at {low}: {how} ({what})"
    return DerivedDeadline(round(deadline, 4), rule, d_top, s_low, d_low, tail, ratio, p50_top, p50_low)
