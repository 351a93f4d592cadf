from __future__ import annotations

import pytest
import torch

from devices.errors import BadInputError
from testbed.paths import profile_table_path
from testbed.rt3.opcount import LMShape
from testbed.rt3.pp import PatternSet, uniform_choices
from testbed.rt3.search_api import PatternSearchAPI
from testbed.search.latency import OP_COUNT_SOURCE, OpCountLatency, ProfileLatency
from testbed.search.problem import Problem
from traces.profile import load_profile_table


def _set(sparsity: float) -> PatternSet:
    """A pattern set of a 100-weight layer with the given sparsity."""
    m = torch.zeros(10, 10, dtype=torch.bool)
    m.view(-1)[: round(100 * (1 - sparsity))] = True
    return PatternSet("s", {"w": m}, {})


def test_profile_latency_interpolates_between_profiled_sets() -> None:
    table = load_profile_table(profile_table_path("rpi4"))
    lat = ProfileLatency(table, ["f1500", "f600"])
    assert lat.level_names == ["f1500", "f600"]
    row = table.get("ps62", "f600")
    exact = lat.cost(_set(0.62), 1)
    assert exact.latency_ms == pytest.approx(row.latency_p50_ms)
    assert exact.deadline_latency_ms == pytest.approx(row.latency_p99_ms)
    assert exact.power_w == pytest.approx(row.mean_power_w)
    mid = lat.cost(_set(0.5), 0)  # halfway between ps37 (0.37) and ps62 (0.62) at 0.5? 0.13/0.25 of the way
    a, b = table.get("ps37", "f1500").latency_p50_ms, table.get("ps62", "f1500").latency_p50_ms
    assert mid.latency_ms == pytest.approx(a + (b - a) * (0.5 - 0.37) / (0.62 - 0.37))
    assert not mid.extrapolated
    assert lat.cost(_set(0.95), 0).extrapolated


def test_profile_levels_must_exist_and_be_ordered() -> None:
    table = load_profile_table(profile_table_path("rpi4"))
    with pytest.raises(BadInputError, match="f9999"):
        ProfileLatency(table, ["f9999"])
    with pytest.raises(BadInputError, match="fastest first"):
        ProfileLatency(table, ["f600", "f1500"])


def test_op_count_model_is_rt3s_prediction() -> None:
    lat = OpCountLatency()
    s = _set(0.3)
    assert lat.source == OP_COUNT_SOURCE
    assert lat.cost(s, 2).latency_ms == PatternSearchAPI.predict_latency_ms(s, 0.8, 35)
    assert lat.cost(s, 2).latency_ms == pytest.approx(lat.cost(s, 0).latency_ms * 1.4 / 0.8)
    with pytest.raises(BadInputError):
        OpCountLatency(freq_ghz=(0.8, 1.4), volt_v=(1.0, 1.2))


def test_rt3_reference_counting_includes_the_embedding_and_counts_no_tokens(problem: Problem) -> None:
    from testbed.rt3.opcount import opcount_latency_ms

    api = problem.api
    lat = OpCountLatency(counting="rt3", api=api)
    assert "reference counting" in lat.source
    dense = api.build(uniform_choices(api.space, 0), "dense")
    from testbed.rt3.models import TransformerLM

    assert isinstance(api.model, TransformerLM)
    cfg = api.model.config
    shape = LMShape(cfg.vocab_size, cfg.emsize, cfg.nhid, cfg.nlayers, cfg.nhead)
    zeros = [1.0 - float(dense.masks[n].float().mean()) if n in dense.masks else 0.0 for n in _names(shape)]
    assert lat.cost(dense, 0).latency_ms == pytest.approx(opcount_latency_ms(shape, zeros, 1.4), rel=1e-9)
    with pytest.raises(BadInputError, match="needs the model"):
        OpCountLatency(counting="rt3")


def _names(shape: LMShape) -> list[str]:
    from testbed.rt3.opcount import op_tensors

    return [t.name for t in op_tensors(shape)]
