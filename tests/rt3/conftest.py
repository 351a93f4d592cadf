"""Tiny RT3 pipelines shared by the rt3 tests: a 1-layer LM trained briefly on the generated proxy corpus."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from testbed.rt3.bp import BPConfig, BPResult, block_prune
from testbed.rt3.models import HFSpec, LMConfig, TransformerLM, build_hf_classifier, prunable_names
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


def block_mask(out: int, inn: int, block: int, keep: int, g: torch.Generator) -> torch.Tensor:
    """[out, inn] mask of ``block``-row blocks, each keeping its own ``keep`` random columns."""
    m = torch.zeros(out, inn, dtype=torch.bool)
    for r in range(0, out, block):
        m[r : r + block, torch.randperm(inn, generator=g)[:keep]] = True
    return m


def tiny_hf_classifier(kind: str, dim: int = 64, heads: int = 4, vocab: int = 60) -> torch.nn.Module:
    """A 2-layer BERT or DistilBERT classifier, ``dim`` wide with a 2·dim FFN, in eval mode (seed 0)."""
    torch.manual_seed(0)
    overrides = (
        {"dim": dim, "hidden_dim": 2 * dim, "n_layers": 2, "n_heads": heads, "vocab_size": vocab}
        if kind == "distilbert"
        else {
            "hidden_size": dim,
            "intermediate_size": 2 * dim,
            "num_hidden_layers": 2,
            "num_attention_heads": heads,
            "vocab_size": vocab,
        }
    )
    return build_hf_classifier(HFSpec(kind, overrides=overrides)).eval()


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
