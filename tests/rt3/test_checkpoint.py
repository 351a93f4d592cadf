from __future__ import annotations

from pathlib import Path

import pytest
import torch

from devices.errors import BadInputError
from testbed.rt3.bp import BPConfig, hard_prune
from testbed.rt3.checkpoint import Checkpoint, model_description
from testbed.rt3.masking import masked_call
from testbed.rt3.models import HFSpec, build_hf_classifier, hf_prunable_names
from testbed.rt3.pp import build_pattern_set, build_space, uniform_choices

from .conftest import DATA, Pipeline


def test_lm_checkpoint_roundtrip(pipeline: Pipeline, tmp_path: Path) -> None:
    ck = Checkpoint(
        pipeline.model,
        model_description(pipeline.model),
        DATA,
        pipeline.vocab,
        "pp",
        {"x": 1},
        pipeline.bp.masks,
        {"row_block": 32},
        pipeline.space,
        pipeline.sets,
    )
    back = Checkpoint.load(ck.save(tmp_path / "ck"))
    assert back.stage == "pp" and back.vocab == pipeline.vocab and back.results == {"x": 1}
    assert [s.name for s in back.sets] == [s.name for s in pipeline.sets]
    assert back.sets[1].choices == pipeline.sets[1].choices
    assert back.space is not None and back.space.levels == pipeline.space.levels
    x = torch.randint(0, len(pipeline.vocab), (1, 7))
    with torch.no_grad():
        a = masked_call(back.model.eval(), back.sets[2].masks, x)
        assert torch.allclose(a, masked_call(pipeline.model, pipeline.sets[2].masks, x))


def test_hf_checkpoint_roundtrip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    spec = HFSpec("distilbert", overrides={"dim": 32, "hidden_dim": 64, "n_layers": 1, "n_heads": 2, "vocab_size": 40})
    model = build_hf_classifier(spec).eval()
    bp = hard_prune(model, hf_prunable_names(model), BPConfig(row_block=16, ratio=0.5))
    space = build_space(model, bp, 16, 4, levels=(0.0, 0.5))
    sets = [build_pattern_set(model, bp, space, uniform_choices(space, 1), "half")]
    ck = Checkpoint(
        model,
        model_description(model, spec),
        {"kind": "proxy-sst2", "seed": 0},
        None,
        "pp",
        {},
        bp,
        {"row_block": 16},
        space,
        sets,
    )
    back = Checkpoint.load(ck.save(tmp_path / "hf"))
    ids = torch.randint(0, 40, (2, 6))
    att = torch.ones(2, 6, dtype=torch.long)
    with torch.no_grad():
        a = masked_call(back.model.eval(), back.sets[0].masks, input_ids=ids, attention_mask=att).logits
        b = masked_call(model, sets[0].masks, input_ids=ids, attention_mask=att).logits
    assert torch.allclose(a, b)


def test_missing_checkpoint_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a checkpoint directory"):
        Checkpoint.load(tmp_path)
