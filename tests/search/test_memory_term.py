"""The memory term couples the levels: a tensor two levels prune alike is held once."""

from __future__ import annotations

import pytest

from devices.errors import BadInputError
from testbed.rt3.opcount import RT3_LM, op_tensors
from testbed.search.compare import BUNDLED_ACCURACY_TABLE, compare_tables
from testbed.search.layerspace import RT3_DEADLINES_MS, TableEvaluator, load_accuracy_table, opcount_cost_table
from testbed.search.memory import packed_memory_term


def test_resident_bytes_count_each_distinct_sparsity_of_a_tensor_once() -> None:
    term = packed_memory_term(1.0)
    tensors = op_tensors(RT3_LM)
    g = len(tensors)
    per_value = 4 + 8 / 16  # fp32 value + an int64 column index per 16-row group
    levels = term.sparsity_levels
    dense_bytes = sum(t.rows * t.cols for t in tensors) * per_value * (1 - levels[0])  # RT3's densest level: 0.01
    assert term.dense_bytes == pytest.approx(dense_bytes)
    # three levels at the same sparsity: one copy; three different ones: three copies
    same = [(0,) * g] * 3
    assert term.resident_bytes(same) == pytest.approx(dense_bytes)
    three = [(0,) * g, (4,) * g, (9,) * g]
    want = dense_bytes * ((1 - levels[0]) + (1 - levels[4]) + (1 - levels[9])) / (1 - levels[0])
    assert term.resident_bytes(three) == pytest.approx(want)
    assert term.term(same) == pytest.approx(-1.0)
    assert packed_memory_term(0.0).term(three) == 0.0
    with pytest.raises(BadInputError, match="memory weight"):
        packed_memory_term(-1.0)


def test_sharing_a_sparsity_between_levels_raises_the_reward_by_the_bytes_saved() -> None:
    acc = load_accuracy_table(BUNDLED_ACCURACY_TABLE)
    memory = packed_memory_term(1.0)
    plain = TableEvaluator(opcount_cost_table(), acc, RT3_DEADLINES_MS)
    with_mem = TableEvaluator(opcount_cost_table(), acc, RT3_DEADLINES_MS, memory=memory)
    # decoder (last tensor) at 0.75 at level 1; at level 2 either shared (0.75) or its own (0.87)
    lv1 = (9,) * 9 + (6,)
    shared = lv1 + (9,) * 9 + (6,) + (9,) * 10
    own = lv1 + (9,) * 9 + (7,) + (9,) * 10
    a, b = with_mem.evaluate(shared)[0], with_mem.evaluate(own)[0]
    decoder = memory.bytes_per_layer[-1]
    assert a.terms.resident_mb is not None and b.terms.resident_mb is not None
    assert (b.terms.resident_mb - a.terms.resident_mb) * 1e6 == pytest.approx(decoder[7])
    assert a.terms.memory_term - b.terms.memory_term == pytest.approx(decoder[7] / memory.dense_bytes)
    # the same candidates without the term: the reward differs only by the memory term
    for cand, ev in ((shared, a), (own, b)):
        base = plain.evaluate(cand)[0]
        assert ev.reward == pytest.approx(base.reward + ev.terms.memory_term)
        assert base.terms.memory_term == 0.0 and base.terms.resident_mb is None
    assert "memory term" in with_mem.source


def test_the_comparison_reports_the_memory_term() -> None:
    acc = load_accuracy_table(BUNDLED_ACCURACY_TABLE)
    out = compare_tables(opcount_cost_table(), acc, ["structured"], [0], budget=15, memory=packed_memory_term(1.0))
    assert out["memory"]["weight"] == 1.0 and out["memory"]["dense_bytes"] > 0
    assert out["runs"][0]["best_memory_term"] < 0 and out["runs"][0]["best_resident_mb"] > 0
