from __future__ import annotations

import pytest
import torch

from devices.errors import BadInputError
from testbed.rt3.pp import LayerChoice, uniform_choices
from testbed.rt3.search_api import PatternSearchAPI, op_counts

from .conftest import Pipeline, quick


def test_op_counts_are_exact() -> None:
    m = torch.zeros(4, 6, dtype=torch.bool)
    m[0, :3] = True
    m[2, :] = True
    ops = op_counts({"w": m}, tokens=5)
    assert ops.mults == 9 * 5
    assert ops.adds == (9 - 2) * 5


def test_search_api_build_evaluate_predict_measure(pipeline: Pipeline) -> None:
    api = PatternSearchAPI(pipeline.model, pipeline.bp.masks, pipeline.space, pipeline.task)
    low = api.build(uniform_choices(pipeline.space, 1), "low")
    high = api.build({n: LayerChoice(3, (0,)) for n in api.layers}, "high")
    assert high.sparsity > low.sparsity
    acc = api.accuracy(low, max_batches=3)
    assert 0.0 <= acc <= 1.0
    tuned = api.accuracy(high, finetune=quick(3), max_batches=3)
    assert 0.0 <= tuned <= 1.0
    # the backbone is never modified by evaluation with fine-tuning
    params = dict(pipeline.model.named_parameters())
    for n, m in pipeline.bp.masks.items():
        assert torch.all(params[n][~m] == 0)
    p_low, p_high = (api.predict_latency_ms(s, freq_ghz=1.4) for s in (low, high))
    assert p_high < p_low
    assert api.predict_latency_ms(low, freq_ghz=0.7) == pytest.approx(2 * p_low)
    with pytest.raises(BadInputError):
        api.predict_latency_ms(low, freq_ghz=0)
    x = torch.randint(0, len(pipeline.vocab), (1, 35))
    assert api.measure_latency_ms(high, [x], repeats=3, warmup=1) > 0
    assert api.measure_latency_ms(high, [x], repeats=2, warmup=1, backend="ort") > 0
    with pytest.raises(BadInputError):
        api.measure_latency_ms(high, [x], backend="tvm")
