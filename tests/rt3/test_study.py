"""The accuracy study runs end to end on a tiny model: every row present, equal steps for dense and BP."""

from __future__ import annotations

import pytest
import torch

from testbed.rt3.models import LMConfig, TransformerLM
from testbed.rt3.study import StudyConfig, run_study
from testbed.rt3.tasks import build_task
from testbed.rt3.train import TrainConfig, train


@pytest.mark.slow
def test_study_rows_on_a_tiny_lm() -> None:
    torch.set_num_threads(1)
    task, vocab = build_task({"kind": "proxy-lm", "seed": 0, "n_train": 300, "n_eval": 60}, batch_size=10)
    assert vocab is not None
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(len(vocab), emsize=32, nhid=32, nlayers=1, nhead=2, dropout=0.0))
    train(model, task, TrainConfig(1, 3e-3, max_steps=20, progress=False))
    cfg = StudyConfig(ratios=(0.75,), reg_steps=6, retrain_steps=4, pp_steps=2, lr=3e-3, row_block=8, lam_max=1e-2)
    out = run_study(model, task, cfg, "tiny")
    row = out["bp"]["ratios"]["0.75"]
    assert set(row) == {"magnitude", "bp_constant_1e-4", "bp_schedule"}
    assert all(abs(v["sparsity"] - 0.75) < 0.05 for v in row.values())
    assert "pruned_mass_fraction" in row["bp_schedule"]["norm_stats_before_prune"]
    assert set(out["pp"]) == {"column", "element"}
    for mode in ("column", "element"):
        assert [o["level"] for o in out["pp"][mode]] == [0.5, 0.75]
    col, elem = out["pp"]["column"][0]["sparsity"], out["pp"]["element"][0]["sparsity"]
    assert abs(col - elem) < 0.02  # equal sparsity, different pattern form
