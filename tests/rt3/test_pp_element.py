"""Element-wise PP (RT3's patterns, by mask) beside column strips; all ten RT3 levels reachable."""

from __future__ import annotations

import torch

from testbed.rt3.pp import (
    RT3_LEVELS,
    PatternSpace,
    build_pattern_set,
    build_space,
    distinct_levels,
    pattern_length,
    uniform_choices,
)

from .conftest import Pipeline


def test_all_ten_rt3_levels_are_distinct_where_the_pattern_is_long_enough() -> None:
    assert distinct_levels(RT3_LEVELS, pattern_length("column", 32, 8)) == 8  # the old collapse
    assert distinct_levels(RT3_LEVELS, pattern_length("column", 32, 32)) == 10
    assert distinct_levels(RT3_LEVELS, pattern_length("element", 32, 8)) == 10


def test_element_patterns_zero_single_weights_inside_the_bp_mask(pipeline: Pipeline) -> None:
    model, bp = pipeline.model, pipeline.bp.masks
    levels = (0.13, 0.5, 0.93)
    space = build_space(model, bp, row_block=32, pattern_cols=8, levels=levels, seed=0, mode="element")
    assert space.mode == "element"
    assert PatternSpace.from_dict(space.to_dict()).mode == "element"
    column = build_space(model, bp, row_block=32, pattern_cols=8, levels=levels, seed=0)
    sparsities = []
    for i, level in enumerate(levels):
        ps = build_pattern_set(model, bp, space, uniform_choices(space, i), f"e{i}")
        sparsities.append(ps.sparsity)
        for n, m in ps.masks.items():
            assert not (m & ~bp[n]).any()  # never revives a BP zero
        if level == 0.5:
            col = build_pattern_set(model, bp, column, uniform_choices(column, i), "c")
            assert abs(col.sparsity - ps.sparsity) < 0.02  # equal sparsity, different form
            name = next(iter(bp))
            m = ps.masks[name][:32]
            kept_cols = bp[name][:32].any(0)
            partial = (m[:, kept_cols].any(0) & ~m[:, kept_cols].all(0)).any()
            assert bool(partial)  # some column keeps only some of its rows: element-wise, not a strip
            strip = col.masks[name][:32]
            assert torch.equal(strip.any(0), strip.all(0))  # column form: a column is kept or gone whole
    assert sparsities == sorted(sparsities) and len(set(sparsities)) == 3


def test_every_rt3_level_is_reached_on_a_bp_model(pipeline: Pipeline) -> None:
    from testbed.rt3.study import StudyConfig, level_reach

    reach = level_reach(pipeline.model, pipeline.bp.masks, StudyConfig(row_block=32, pattern_cols=32))
    for mode in ("column", "element"):
        got = reach[mode]
        assert got == sorted(got) and len(set(got)) == len(RT3_LEVELS), (mode, got)  # ten different sets
        for level, s in zip(RT3_LEVELS, got, strict=True):
            assert abs(s - level) < 0.04, (mode, level, s)  # each near its level (1/32 is the column grain)
