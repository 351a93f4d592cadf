"""The proximal group lasso: exact group soft-thresholding, and BP whose hard prune throws nothing away."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from devices.errors import BadInputError
from testbed.rt3.bp import BPConfig, ReweightedGroupLasso, Tile, block_prune, group_norm_stats
from testbed.rt3.models import prunable_names
from testbed.rt3.train import TrainConfig, evaluate

from .conftest import Pipeline


def test_prox_step_is_group_soft_thresholding() -> None:
    torch.manual_seed(0)
    lin = nn.Linear(6, 4, bias=False)
    w0 = lin.weight.detach().clone()
    reg = ReweightedGroupLasso(lin, ["weight"], {"weight": Tile(2, 1)}, lam=0.0, eps=1e-3)
    reg.alpha["weight"] = torch.ones(2, 6)
    reg.lam = 2.0
    reg.prox_(lin, step_size=0.1)  # threshold 0.2 on every (2 × 1) group
    for r in range(2):
        for c in range(6):
            g0 = w0[2 * r : 2 * r + 2, c]
            expect = g0 * max(0.0, 1 - 0.2 / float(g0.norm()))  # the closed-form prox of 0.2·‖g‖
            assert torch.allclose(lin.weight[2 * r : 2 * r + 2, c], expect, atol=1e-6)


def test_prox_step_leaves_groups_with_zero_alpha_alone() -> None:
    lin = nn.Linear(4, 4, bias=False)
    w0 = lin.weight.detach().clone()
    reg = ReweightedGroupLasso(lin, ["weight"], {"weight": Tile(4, 1)}, lam=1e3, eps=1e-3)
    reg.alpha["weight"] = torch.tensor([[1.0, 0.0, 0.0, 1.0]])
    reg.prox_(lin, step_size=1.0)
    assert lin.weight[:, [0, 3]].abs().max() == 0.0
    assert torch.equal(lin.weight[:, [1, 2]], w0[:, [1, 2]])


def test_lasso_and_ramp_are_checked() -> None:
    with pytest.raises(BadInputError, match="lasso"):
        BPConfig(lasso="l0")
    with pytest.raises(BadInputError, match="lam_ramp"):
        BPConfig(lam_ramp=0.0)
    ramp = BPConfig(lam=1.0, lam_max=100.0, lam_schedule="exp", lam_ramp=0.5)
    assert ramp.lam_at(0.25) == pytest.approx(10.0) and ramp.lam_at(0.5) == ramp.lam_at(0.9) == pytest.approx(100.0)


def test_proximal_bp_empties_the_pruned_groups_before_the_hard_prune(pipeline: Pipeline) -> None:
    names = prunable_names(pipeline.model)
    cfg = BPConfig(
        row_block=32,
        ratio=0.75,
        reg_train=TrainConfig(epochs=1, lr=3e-3, max_steps=10, progress=False),
        retrain=TrainConfig(epochs=0, progress=False),
        lam=1.0,
        lam_max=100.0,
        lam_schedule="exp",
        lam_ramp=0.5,
        reweight_mode="prune-set",
        reweight_every=3,
        lasso="proximal",
    )
    start = group_norm_stats(pipeline.model, names, cfg)  # λ = 0: what the hard prune would throw away now
    m = copy.deepcopy(pipeline.model)
    res = block_prune(m, pipeline.task, names, cfg)
    assert start["pruned_mass_fraction"] > 0.3
    assert res.norm_stats["pruned_mass_fraction"] < 0.01  # the lasso emptied them
    # so the hard prune throws (almost) nothing away: masked accuracy is the regularised model's own
    assert res.pruned_before_retrain.accuracy == pytest.approx(evaluate(m, pipeline.task).accuracy, abs=0.01)
