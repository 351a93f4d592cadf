from __future__ import annotations

from pathlib import Path

import torch

from testbed.rt3.artifact import Artifact
from testbed.search.artifact import write_best_artifact

from .conftest import make_problem


def test_finetune_accuracy_is_deterministic_and_leaves_the_backbone_alone(bp_checkpoint_dir: Path) -> None:
    cand = tuple([3] + [2] * 15)  # levels 0.25/0.5/0.75
    runs = []
    for _ in range(2):
        p = make_problem(bp_checkpoint_dir, accuracy={"mode": "finetune", "finetune_steps": 2, "eval_batches": 1})
        before = {k: v.clone() for k, v in p.api.model.state_dict().items()}
        ev, _ = p.evaluator.evaluate(cand)
        assert all(torch.equal(before[k], v) for k, v in p.api.model.state_dict().items())
        runs.append(ev.accuracy)
    assert runs[0] == runs[1]
    mask_only = make_problem(bp_checkpoint_dir).evaluator.evaluate(cand)[0].accuracy
    assert runs[0] != mask_only  # the fine-tune changed the weights the sets were evaluated on


def test_best_artifact_after_a_joint_fine_tune(bp_checkpoint_dir: Path, tmp_path: Path) -> None:
    p = make_problem(bp_checkpoint_dir)
    best, _ = p.evaluator.evaluate(tuple([3] + [2] * 15))
    path = write_best_artifact(p, best, tmp_path / "best.rt3", finetune_steps=2)
    art = Artifact.open(path)
    assert len(art.manifest["results"]["search_finetune"]) == 3
    assert [s["deadline_ms"] for s in art.pattern_sets] == [0.7, 0.7, 0.7]
    assert [s["name"] for s in art.pattern_sets] == ["L0-1.4GHz", "L1-1GHz", "L2-0.8GHz"]
