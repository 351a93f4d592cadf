"""Training recipe knobs of the study: steps across epochs, warm-up, a head learning rate, distillation."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from devices.errors import BadInputError
from testbed.rt3.tasks import build_task
from testbed.rt3.train import TrainConfig, _distill_loss, _optimizer, steps_config, train

from .conftest import Pipeline, make_lm


class _Head(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Linear(3, 3)
        self.classifier = nn.Linear(3, 2)


def test_steps_config_runs_exactly_the_steps_over_epochs() -> None:
    task, vocab = build_task({"kind": "proxy-lm", "seed": 0, "n_train": 60, "n_eval": 20}, batch_size=4, bptt=8)
    assert vocab is not None
    model = make_lm(len(vocab), emsize=16)
    nb = task.n_batches("train")
    cfg = steps_config(nb + 3, nb, lr=1e-4, progress=False)
    assert cfg.epochs == 2 and cfg.planned_steps(nb) == nb + 3
    seen: list[int] = []
    train(model, task, cfg, after_step=seen.append)
    assert seen == list(range(1, nb + 4))  # one step counter across both epochs
    assert steps_config(0, nb).planned_steps(nb) == 0


def test_warmup_scales_the_first_steps(pipeline: Pipeline) -> None:
    # Adam's first update moves every weight with a gradient by about lr, so its size shows the lr in force
    moves = {}
    for warmup in (0, 4):
        m = copy.deepcopy(pipeline.model)
        before = m.decoder.weight.detach().clone()
        train(m, pipeline.task, TrainConfig(epochs=1, lr=1e-3, max_steps=1, warmup_steps=warmup, progress=False))
        moves[warmup] = float((m.decoder.weight.detach() - before).abs().max())
    assert moves[0] == pytest.approx(1e-3, rel=0.05)
    assert moves[4] == pytest.approx(0.25e-3, rel=0.05)


def test_head_lr_makes_a_second_param_group() -> None:
    model = _Head()
    opt = _optimizer(model, TrainConfig(lr=1e-5, head_lr=1e-3))
    assert [g["lr"] for g in opt.param_groups] == [1e-5, 1e-3]
    assert len(opt.param_groups[1]["params"]) == 2
    with pytest.raises(BadInputError, match="head_lr"):
        _optimizer(nn.Linear(2, 2), TrainConfig(head_lr=1e-3))


def test_distillation_loss_reduces_to_ce_and_to_zero() -> None:
    torch.manual_seed(0)
    s, t = torch.randn(5, 3), torch.randn(5, 3)
    y = torch.tensor([0, 1, 2, 1, 0])
    ce = nn.functional.cross_entropy(s, y)
    assert _distill_loss(s, y, t, 0.0, 2.0) == pytest.approx(float(ce))
    assert float(_distill_loss(s, y, s, 1.0, 2.0)) == pytest.approx(0.0, abs=1e-6)
    kl = (torch.softmax(t / 2, -1) * (torch.log_softmax(t / 2, -1) - torch.log_softmax(s / 2, -1))).sum(-1).mean()
    assert float(_distill_loss(s, y, t, 0.5, 2.0)) == pytest.approx(float(0.5 * ce + 0.5 * 4 * kl), rel=1e-5)


def test_distilling_from_an_identical_teacher_costs_nothing(pipeline: Pipeline) -> None:
    teacher = copy.deepcopy(pipeline.model)
    student = copy.deepcopy(pipeline.model)
    cfg = TrainConfig(epochs=1, lr=0.0, max_steps=3, distill_alpha=1.0, progress=False)
    assert train(student, pipeline.task, cfg, teacher=teacher)[0] == pytest.approx(0.0, abs=1e-5)
    assert train(student, pipeline.task, TrainConfig(epochs=1, lr=0.0, max_steps=3, progress=False))[0] > 0.5
