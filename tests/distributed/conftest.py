"""One local Ray instance per test session (sized for a 2-core machine) and a tiny BP checkpoint for Tune searches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")


@pytest.fixture(scope="session")
def local_ray() -> Iterator[None]:
    """An embedded Ray, started once for the session when a test first needs it: 2 CPUs, no dashboard, a small
    object store; the code under test finds it running and reuses it."""
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        ray.shutdown()
    from testbed.distributed.cluster import loopback_only

    with loopback_only():  # the node listens on 127.0.0.1 only
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 configure_logging=False, object_store_memory=100 * 1024 * 1024)  # fmt: skip
    yield
    ray.shutdown()


@pytest.fixture(scope="session")
def bp_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved BP checkpoint of a 1-layer LM (emsize 32) on the generated proxy corpus: what `testbed search` reads."""
    import torch

    from testbed.rt3.bp import BPConfig, block_prune
    from testbed.rt3.checkpoint import Checkpoint, model_description
    from testbed.rt3.models import LMConfig, TransformerLM, prunable_names
    from testbed.rt3.tasks import build_task
    from testbed.rt3.train import TrainConfig, train

    data = {"kind": "proxy-lm", "seed": 0, "n_train": 200, "n_eval": 40}
    torch.set_num_threads(1)
    task, vocab = build_task(data, batch_size=10)
    assert vocab is not None
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(len(vocab), emsize=32, nhid=32, nlayers=1, nhead=2, dropout=0.0))

    def quick(steps: int) -> TrainConfig:
        return TrainConfig(epochs=1, lr=3e-3, max_steps=steps, progress=False)

    train(model, task, quick(10))
    cfg = BPConfig(row_block=16, ratio=0.5, reg_train=quick(3), retrain=quick(3))
    bp = block_prune(model, task, prunable_names(model), cfg)
    ck = Checkpoint(model, model_description(model), data, vocab, "bp", {"bp": bp.summary()}, bp.masks, cfg.to_dict())
    return ck.save(tmp_path_factory.mktemp("bp") / "ckpt")
