"""BP that prunes: the λ schedule and prune-set reweighting leave the doomed groups emptier than λ = 0."""

from __future__ import annotations

import copy

import pytest
import torch

from devices.errors import BadInputError
from testbed.rt3.bp import BPConfig, ReweightedGroupLasso, block_prune, group_norm_stats, tiles_for
from testbed.rt3.models import prunable_names
from testbed.rt3.train import TrainConfig

from .conftest import Pipeline


def test_lambda_schedules() -> None:
    lin = BPConfig(lam=1e-4, lam_max=1e-2, lam_schedule="linear")
    assert lin.lam_at(0) == 1e-4 and lin.lam_at(1) == pytest.approx(1e-2)
    assert lin.lam_at(0.5) == pytest.approx((1e-4 + 1e-2) / 2)
    exp = BPConfig(lam=1e-4, lam_max=1e-2, lam_schedule="exp")
    assert exp.lam_at(0.5) == pytest.approx(1e-3)
    assert BPConfig(lam=1e-4).lam_at(0.7) == 1e-4
    with pytest.raises(BadInputError, match="schedule"):
        BPConfig(lam_schedule="cosine")
    with pytest.raises(BadInputError, match="reweight"):
        BPConfig(reweight_mode="some")


def test_prune_set_reweighting_only_weighs_the_groups_that_will_go(pipeline: Pipeline) -> None:
    model = pipeline.model
    names = prunable_names(model)
    cfg = BPConfig(row_block=32, ratio=0.5, reweight_mode="prune-set")
    reg = ReweightedGroupLasso(model, names, tiles_for(model, names, cfg), 1e-3, 1e-3, prune_set=cfg)
    for n in names:
        share = float((reg.alpha[n] > 0).float().mean())
        assert 0.3 < share < 0.7  # about half of the groups carry weight, the kept ones none


@pytest.mark.slow
def test_the_schedule_empties_the_pruned_groups_lambda_zero_does_not(pipeline: Pipeline) -> None:
    steps = TrainConfig(epochs=1, lr=3e-3, max_steps=40, progress=False)
    none = TrainConfig(epochs=0, progress=False)
    results = {}
    for label, over in {
        "magnitude": {"lam": 0.0},
        "schedule": {"lam": 1e-4, "lam_max": 3e-2, "lam_schedule": "exp", "reweight_mode": "prune-set"},
    }.items():
        torch.manual_seed(0)
        m = copy.deepcopy(pipeline.model)
        cfg = BPConfig(row_block=32, ratio=0.75, reg_train=steps, retrain=none, **over)  # type: ignore[arg-type]
        results[label] = block_prune(m, pipeline.task, prunable_names(m), cfg).norm_stats
    assert results["schedule"]["pruned_mass_fraction"] < 0.9 * results["magnitude"]["pruned_mass_fraction"]
    names = prunable_names(pipeline.model)
    start = group_norm_stats(pipeline.model, names, BPConfig(row_block=32, ratio=0.75))
    assert results["magnitude"]["pruned_mass_fraction"] == pytest.approx(start["pruned_mass_fraction"], abs=0.1)
