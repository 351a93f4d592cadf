"""Tiny RT3 pipelines shared by the rt3 tests: a 1-layer LM trained briefly on the generated proxy corpus."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from testbed.rt3.bp import BPConfig, BPResult, block_prune
from testbed.rt3.models import LMConfig, TransformerLM, prunable_names
from testbed.rt3.pp import PatternSet, PatternSpace, build_pattern_set, build_space, uniform_choices
from testbed.rt3.tasks import build_task
from testbed.rt3.train import LMTask, TrainConfig, train

DATA = {"kind": "proxy-lm", "seed": 0, "n_train": 800, "n_eval": 120}


def quick(steps: int, lr: float = 3e-3) -> TrainConfig:
    return TrainConfig(epochs=1, lr=lr, max_steps=steps, progress=False)


@dataclass
class Pipeline:
    model: TransformerLM
    task: LMTask
    vocab: list[str]
    bp: BPResult
    space: PatternSpace
    sets: list[PatternSet]


def make_lm(vocab_size: int, emsize: int = 32, nlayers: int = 1, seed: int = 0) -> TransformerLM:
    torch.manual_seed(seed)
    return TransformerLM(LMConfig(vocab_size, emsize=emsize, nhid=48, nlayers=nlayers, nhead=2, dropout=0.0))


@pytest.fixture(scope="session")
def pipeline() -> Pipeline:
    task, vocab = build_task(DATA, batch_size=10)
    assert vocab is not None and isinstance(task, LMTask)
    model = make_lm(len(vocab), emsize=64)
    train(model, task, quick(60))
    cfg = BPConfig(row_block=32, ratio=0.5, reg_train=quick(10), retrain=quick(10))
    bp = block_prune(model, task, prunable_names(model), cfg)
    space = build_space(model, bp.masks, row_block=32, pattern_cols=8, levels=(0.0, 0.25, 0.5, 0.75))
    sets = [build_pattern_set(model, bp.masks, space, uniform_choices(space, i), f"L{i}") for i in (1, 2, 3)]
    model.eval()
    return Pipeline(model, task, vocab, bp, space, sets)
