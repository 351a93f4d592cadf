"""A tiny BP checkpoint (1-layer LM, emsize 32, generated proxy corpus) shared by the search tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from testbed.rt3.bp import BPConfig, block_prune
from testbed.rt3.checkpoint import Checkpoint, model_description
from testbed.rt3.models import LMConfig, TransformerLM, prunable_names
from testbed.rt3.tasks import build_task
from testbed.rt3.train import LMTask, TrainConfig, train
from testbed.search.problem import Problem, SearchConfig, build_problem

DATA = {"kind": "proxy-lm", "seed": 0, "n_train": 400, "n_eval": 80}
#: Small, fast settings: 4 sparsity levels, 2 candidates per layer and level, 1 eval batch, binding deadline.
SMALL = {
    "sparsity_levels": (0.0, 0.25, 0.5, 0.75),
    "pattern_cols": 8,
    "n_candidates": 2,
    "deadlines_ms": (0.7,),  # only the sparsest assignment (0.25, 0.5, 0.75) meets it everywhere
    "accuracy": {"eval_batches": 1},
    "opcount": "per-token",  # the deadline above is sized for per-token counting (RT3's counting is tested apart)
}


def quick(steps: int) -> TrainConfig:
    return TrainConfig(epochs=1, lr=3e-3, max_steps=steps, progress=False)


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    """Tiny models run fastest on one thread (and the machine is shared)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def bp_checkpoint_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved BP checkpoint directory (what `testbed search` reads)."""
    torch.set_num_threads(1)
    task, vocab = build_task(DATA, batch_size=10)
    assert vocab is not None and isinstance(task, LMTask)
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(len(vocab), emsize=32, nhid=32, nlayers=1, nhead=2, dropout=0.0))
    train(model, task, quick(30))
    cfg = BPConfig(row_block=16, ratio=0.5, reg_train=quick(5), retrain=quick(5))
    bp = block_prune(model, task, prunable_names(model), cfg)
    ck = Checkpoint(model, model_description(model), DATA, vocab, "bp", {"bp": bp.summary()}, bp.masks, cfg.to_dict())
    return ck.save(tmp_path_factory.mktemp("bp") / "ckpt")


def make_problem(ckpt_dir: Path, **overrides: object) -> Problem:
    """A fresh problem (own evaluator and memo) on the tiny checkpoint."""
    cfg = SearchConfig(**{**SMALL, **overrides})  # type: ignore[arg-type]
    return build_problem(Checkpoint.load(ckpt_dir), cfg)


@pytest.fixture
def problem(bp_checkpoint_dir: Path) -> Problem:
    return make_problem(bp_checkpoint_dir)
