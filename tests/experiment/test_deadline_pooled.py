"""The pooled-tail deadline: medians times the table's pooled p99/p50, so one cell's noisy p99 does not move it
(issue 15: the demo's deadline, and its request period, followed a single cell's p99 between runs)."""

from __future__ import annotations

from typing import ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import BadInputError
from testbed.experiment.deadline import derive_deadline, pooled_tail_ratio
from traces.profile import ProfileRow, ProfileTable, build_table

LEVELS = {"hi": 1_500_000, "mid": 1_000_000, "lo": 600_000}
P50 = {"dense": {"hi": 40.0, "mid": 60.0, "lo": 100.0}, "s50": {"hi": 30.0, "mid": 45.0, "lo": 75.0},
       "s75": {"hi": 20.0, "mid": 30.0, "lo": 50.0}}  # fmt: skip
SPARSITY = {"dense": 0.0, "s50": 0.5, "s75": 0.75}


def _table(tail: dict[tuple[str, str], float] | None = None, scale: float = 1.0) -> ProfileTable:
    rows = []
    for ps, by_level in P50.items():
        for lv, p50 in by_level.items():
            r = (tail or {}).get((ps, lv), 1.25)
            p50 *= scale
            rows.append(ProfileRow(ps, lv, LEVELS[lv], SPARSITY[ps], 0.9, p50, 1.1 * p50, r * p50, 0.1, 4.0, 4.0, 2.0))
    return build_table(rows, {"source": "test"})


def test_pooled_ratio_is_the_median_of_the_cells_p99_over_p50() -> None:
    t = _table({("s75", "lo"): 3.0})
    assert pooled_tail_ratio(t, list(LEVELS)) == pytest.approx(1.25)


def test_one_cells_outlier_p99_moves_the_cell_rule_but_not_the_pooled_one() -> None:
    calm, noisy = _table(), _table({("s75", "lo"): 2.0})  # the sparsest set's p99 at the lowest level doubles
    by_cell = [derive_deadline(t).deadline_ms for t in (calm, noisy)]
    pooled = [derive_deadline(t, tail="pooled").deadline_ms for t in (calm, noisy)]
    assert by_cell[0] is not None and by_cell[1] is not None and by_cell[1] > 1.4 * by_cell[0]
    assert pooled[0] == pooled[1] == pytest.approx(1.1 * 1.25 * 50.0)
    assert "pooled p99/p50 1.250" in derive_deadline(noisy, tail="pooled").rule


def test_the_pooled_deadline_never_falls_below_dense_maxs_own_tail() -> None:
    t = _table({("dense", "hi"): 1.9})  # dense-max's own p99 at the top: 76 ms, above 1.1 x 1.25 x 50
    d = derive_deadline(t, tail="pooled")
    assert d.deadline_ms == pytest.approx(1.1 * 76.0) and "raised to 1.1 x the measured p99 of dense" in d.rule


@settings(max_examples=50, deadline=None)
@given(st.floats(0.2, 20.0))
def test_the_pooled_deadline_scales_with_the_latencies(scale: float) -> None:
    """Scale-invariance: an emulation that is uniformly faster or slower gives the same duty cycle."""
    base = derive_deadline(_table(), tail="pooled").deadline_ms
    scaled = derive_deadline(_table(scale=scale), tail="pooled").deadline_ms
    assert base is not None and scaled is not None
    assert scaled == pytest.approx(base * scale, rel=1e-3)


def test_unknown_tail_mode_is_refused() -> None:
    with pytest.raises(BadInputError, match="'cell' or 'pooled'"):
        derive_deadline(_table(), tail="p95")


def test_the_deadline_can_be_derived_from_a_subset_of_the_sets() -> None:
    """The demo derives the runs' deadline from the pattern sets only, as it did for the search, even though
    the final profile also holds the search's (sparser, faster) sets."""
    base = _table()
    rows = list(base.rows.values()) + [
        ProfileRow("L2", lv, f, 0.9, 0.5, 10.0 * f0, 11.0 * f0, 12.5 * f0, 0.1, 4.0, 4.0, 2.0)
        for (lv, f), f0 in zip(LEVELS.items(), (1.0, 1.5, 2.5), strict=True)
    ]
    with_l2 = build_table(rows, {"source": "test"})
    assert with_l2.pattern_sets[-1] == "L2"
    own = derive_deadline(with_l2, tail="pooled", sets=["dense", "s50", "s75"])
    assert own.deadline_ms == derive_deadline(base, tail="pooled").deadline_ms
    assert own.deadline_ms != derive_deadline(with_l2, tail="pooled").deadline_ms
    with pytest.raises(BadInputError, match="nope"):
        derive_deadline(with_l2, sets=["dense", "nope"])


def test_the_period_comes_from_medians_only() -> None:
    calm, heavy_tails = _table(), _table({k: 2.5 for k in [(ps, lv) for ps in P50 for lv in LEVELS]})
    d_calm, d_heavy = derive_deadline(calm, tail="pooled"), derive_deadline(heavy_tails, tail="pooled")
    assert d_heavy.deadline_ms is not None and d_calm.deadline_ms is not None
    assert d_heavy.deadline_ms == pytest.approx(2 * d_calm.deadline_ms)  # the deadline follows the tails
    assert d_calm.period_ms() == d_heavy.period_ms() == pytest.approx(1.7 * 50.0)  # the period does not
    assert derive_deadline(_table(scale=3.0), tail="pooled").period_ms(1.5) == pytest.approx(1.5 * 150.0)


class _Settings:
    static_set = None
    rt3_sets: ClassVar[dict[str, str]] = {}
    min_accuracy = None


def test_strategies_read_tails_as_the_deadline_does() -> None:
    """With ``deadline_tail = "pooled"`` a set's feasibility is its median x the pooled ratio, as in the
    derived deadline: one outlier p99 (s50 at lo, 2.4 x its median) no longer pushes static-sparse and rt3
    to a sparser set than the medians call for."""
    from testbed.experiment.strategy import make_plan

    t = _table({("s50", "lo"): 2.4})
    deadline = 100.0  # s50 at lo: median 75 ms, pooled tail 93.75 ms, its own p99 180 ms
    levels = list(LEVELS)
    by_cell = make_plan("static-sparse", t, levels, deadline, 0.2, _Settings())  # type: ignore[arg-type]
    pooled = make_plan("static-sparse", t, levels, deadline, 0.2, _Settings(), "pooled")  # type: ignore[arg-type]
    assert set(by_cell.choice.values()) == {(lv, "s75") for lv in levels}
    assert set(pooled.choice.values()) == {(lv, "s50") for lv in levels}
    rt3 = make_plan("rt3", t, levels, deadline, 0.2, _Settings(), "pooled")  # type: ignore[arg-type]
    assert rt3.choice["lo"] == ("lo", "s50") and rt3.choice["hi"] == ("hi", "dense")
    with pytest.raises(BadInputError, match="'cell' or 'pooled'"):
        make_plan("rt3", t, levels, deadline, 0.2, _Settings(), "p95")  # type: ignore[arg-type]


def test_the_searchs_profile_latency_reads_tails_as_the_deadline_does() -> None:
    import torch

    from testbed.rt3.pp import PatternSet
    from testbed.search.latency import ProfileLatency

    t = _table({("s50", "lo"): 2.4})
    ps = PatternSet("x", {"w": torch.tensor([True, False])}, {})  # half the weights kept: sparsity 0.5
    cell, pooled = ProfileLatency(t, list(LEVELS)), ProfileLatency(t, list(LEVELS), tail="pooled")
    assert cell.cost(ps, 2).deadline_latency_ms == pytest.approx(2.4 * 75.0)
    assert pooled.cost(ps, 2).deadline_latency_ms == pytest.approx(1.25 * 75.0)
    assert pooled.cost(ps, 2).latency_ms == cell.cost(ps, 2).latency_ms == pytest.approx(75.0)
    assert "pooled p99/p50 1.250" in pooled.source
