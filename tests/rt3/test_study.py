"""The accuracy study runs end to end on a tiny model: every row present, equal steps for dense and BP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from testbed.rt3.models import LMConfig, TransformerLM
from testbed.rt3.pp import RT3_LEVELS
from testbed.rt3.study import StudyConfig, main, run_study, table
from testbed.rt3.tasks import build_task
from testbed.rt3.train import TrainConfig, train


@pytest.mark.slow
def test_study_rows_on_a_tiny_lm(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    task, vocab = build_task({"kind": "proxy-lm", "seed": 0, "n_train": 300, "n_eval": 60}, batch_size=10)
    assert vocab is not None
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(len(vocab), emsize=32, nhid=32, nlayers=1, nhead=2, dropout=0.0))
    train(model, task, TrainConfig(1, 3e-3, max_steps=20, progress=False))
    cfg = StudyConfig(
        ratios=(0.75,),
        reg_steps=6,
        retrain_steps=4,
        pp_steps=2,
        lr=3e-3,
        row_block=8,
        lam_max=10.0,
        seeds=(0, 1),
        variants=("magnitude", "bp_constant_1e-4", "bp_schedule"),
    )
    out = run_study(model, task, cfg, "tiny")
    assert [s["seed"] for s in out["per_seed"]] == [0, 1]
    row = out["per_seed"][0]["ratios"]["0.75"]
    assert set(row) == {"magnitude", "bp_constant_1e-4", "bp_schedule"}
    assert all(abs(v["sparsity"] - 0.75) < 0.05 for v in row.values())
    assert "pruned_mass_fraction" in row["bp_schedule"]["norm_stats_before_prune"]
    summary = out["summary"]["ratios"]["0.75"]["bp_schedule"]["after_retrain"]["accuracy"]
    accs = [s["ratios"]["0.75"]["bp_schedule"]["after_retrain"]["accuracy"] for s in out["per_seed"]]
    assert summary["mean"] == pytest.approx(sum(accs) / 2) and summary["n"] == 2
    assert set(out["pp"]) == {"column", "element", "rt3_levels"}
    for mode in ("column", "element"):
        assert [o["level"] for o in out["pp"][mode]] == [0.5, 0.75]
        assert len(out["pp"]["rt3_levels"][mode]) == len(RT3_LEVELS)
    col, elem = out["pp"]["column"][0]["sparsity"], out["pp"]["element"][0]["sparsity"]
    assert abs(col - elem) < 0.02  # equal sparsity, different pattern form
    md = table(json.loads(json.dumps(out, default=str)))
    assert "| BP 0.75: bp_schedule" in md and " ± " in md and "| element |" in md
    path = tmp_path / "r.json"
    path.write_text(json.dumps(out, default=str))
    assert main(["table", str(path)]) == 0


def test_table_of_a_file_that_is_not_a_study_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text("{}")
    assert main(["table", str(bad)]) == 2


def test_study_without_a_checkpoint_exits_2_and_creates_nothing(tmp_path: Path) -> None:
    out_dir = tmp_path / "study"
    assert main(["all", "--lm-checkpoint", str(tmp_path / "none"), "--out-dir", str(out_dir)]) == 2
    assert not out_dir.exists()
    assert main(["lm", str(tmp_path / "none"), "--out", str(tmp_path / "x.json")]) == 2
    assert not (tmp_path / "x.json").exists()


def test_bp_only_study_without_dense_reports_each_seed_as_it_finishes() -> None:
    torch.set_num_threads(1)
    task, vocab = build_task({"kind": "proxy-lm", "seed": 0, "n_train": 200, "n_eval": 40}, batch_size=10)
    assert vocab is not None
    torch.manual_seed(0)
    model = TransformerLM(LMConfig(len(vocab), emsize=16, nhid=16, nlayers=1, nhead=2, dropout=0.0))
    cfg = StudyConfig(
        ratios=(0.75,), reg_steps=2, retrain_steps=2, lr=3e-3, row_block=8, lam_max=10.0, seeds=(0, 1),
        pp=False, dense=False, level_check=False,
    )  # fmt: skip
    partial: list[dict[str, object]] = []
    out = run_study(model, task, cfg, "tiny", on_seed=partial.append)
    assert [len(p["per_seed"]) for p in partial] == [1, 2]  # type: ignore[arg-type]
    assert partial[-1]["summary"] == out["summary"]
    assert "dense_equal_steps" not in out["summary"] and out["pp"] == {} and out["pp_backbone"] == {}
    assert all("dense_equal_steps" not in s for s in out["per_seed"])
    md = table(json.loads(json.dumps(partial[0], default=str)))
    assert "1 seed(s)" in md and "no dense row" in md and "| dense, +" not in md
    assert "| BP 0.75: magnitude" in md and "| PP " not in md
