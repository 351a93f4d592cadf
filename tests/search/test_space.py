from __future__ import annotations

import itertools

import pytest
import torch

from devices.errors import BadInputError
from testbed.rt3.pp import PatternSpace
from testbed.search.space import SearchSpace


def _space(cands: dict[str, list[int]], levels: tuple[float, ...] = (0.0, 0.25, 0.5)) -> PatternSpace:
    """A hand-made pattern space: layer → number of candidate patterns at every level."""
    pat = torch.ones(4, dtype=torch.bool)
    return PatternSpace(4, 4, levels, {n: [[pat] * k for k in ks] for n, ks in cands.items()})


def test_decisions_follow_rt3_level_space_and_candidates() -> None:
    s = SearchSpace(_space({"a": [1, 2, 3], "b": [2, 1, 2]}), n_freq_levels=2)
    # level assignment: C(3, 2) ordered pairs; pattern decisions only where a layer has > 1 candidate (+ "any")
    assert s.assignments == [(0, 1), (0, 2), (1, 2)]
    assert s.sizes == [3, 3, 4, 3, 3]
    assert [d.name for d in s.decisions][1:] == ["a@0.25", "a@0.5", "b@0", "b@0.5"]


def test_choices_map_options_to_allowed_patterns_and_any() -> None:
    s = SearchSpace(_space({"a": [1, 2, 3]}), n_freq_levels=2)
    # assignment (1, 2): level 0.25 → option 1 of 3 ("any" is the last), level 0.5 → option 3 of 4 = any
    ch = s.choices((2, 1, 3))
    assert ch[0]["a"].level == 1 and ch[0]["a"].allowed == (1,)
    assert ch[1]["a"].level == 2 and ch[1]["a"].allowed is None


def test_key_ignores_decisions_of_unassigned_levels() -> None:
    s = SearchSpace(_space({"a": [2, 2, 2]}), n_freq_levels=1)
    # assignment 0 uses level 0 only: the decisions for levels 1 and 2 do not change the pattern set
    assert s.key((0, 1, 0, 0)) == s.key((0, 1, 2, 1))
    assert s.key((0, 1, 0, 0)) != s.key((0, 0, 0, 0))


def test_cardinality_counts_distinct_keys() -> None:
    s = SearchSpace(_space({"a": [2, 1, 3], "b": [1, 2, 2]}), n_freq_levels=2)
    keys = {s.key(c) for c in itertools.product(*(range(n) for n in s.sizes))}
    assert s.cardinality() == len(keys)


def test_invalid_candidates_and_spaces_are_rejected() -> None:
    s = SearchSpace(_space({"a": [2, 2, 2]}), n_freq_levels=2)
    with pytest.raises(BadInputError, match="decisions"):
        s.validate((0,))
    with pytest.raises(BadInputError, match="option 9"):
        s.validate((9, 0, 0, 0))
    with pytest.raises(BadInputError, match="cannot fill"):
        SearchSpace(_space({"a": [2, 2, 2]}), n_freq_levels=2, allowed_levels=[1])
