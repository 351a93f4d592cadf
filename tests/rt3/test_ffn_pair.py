"""Dead-row elimination across an FFN pair: lin2 pruning an input column in every row makes lin1's row dead."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.rt3.bp import BPConfig, hard_prune
from testbed.rt3.masking import masked_call
from testbed.rt3.models import hf_prunable_names
from testbed.rt3.packed_model import PackedLM, pack_ffn_pair, pack_model
from testbed.rt3.packing import PackedLinear

from .conftest import Pipeline, block_mask, tiny_hf_classifier


@settings(max_examples=60, deadline=None)
@given(
    d=st.integers(1, 40),
    hidden=st.integers(1, 150),
    block1=st.integers(1, 64),
    keep1=st.integers(0, 40),
    block2=st.integers(1, 48),
    keep2=st.integers(0, 150),
    dead1=st.floats(0.0, 0.5),
    tokens=st.sampled_from([1, 6, 33]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_ffn_pair_equals_masked_dense(  # type: ignore[no-untyped-def]
    d, hidden, block1, keep1, block2, keep2, dead1, tokens, bias, seed
) -> None:
    """Any block masks, lin1 rows pruned whole (their bias is still read), lin2 keeping none to all columns;
    under inference mode (scratch gather) and under autograd (allocating gather)."""
    g = torch.Generator().manual_seed(seed)
    w1, w2 = torch.randn(hidden, d, generator=g), torch.randn(d, hidden, generator=g)
    b1 = torch.randn(hidden, generator=g) if bias else None
    b2 = torch.randn(d, generator=g) if bias else None
    m1 = block_mask(hidden, d, block1, keep1, g)
    m1[torch.rand(hidden, generator=g) < dead1] = False
    m2 = block_mask(d, hidden, block2, keep2, g)
    lin1, lin2 = pack_ffn_pair(w1, b1, m1, w2, b2, m2)
    x = torch.randn(2, tokens, d, generator=g)
    ref = F.linear(F.gelu(F.linear(x, w1 * m1, b1)), w2 * m2, b2)
    with torch.inference_mode():
        y = lin2(F.gelu(lin1(x)))
    assert y.shape == ref.shape
    assert torch.allclose(y, ref, atol=1e-4, rtol=1e-4)
    xg = x.clone().requires_grad_()
    assert torch.allclose(lin2(F.gelu(lin1(xg))).detach(), ref, atol=1e-4, rtol=1e-4)
    if lin1.compact:  # some lin1 row is dead: lin1 computes only the rows lin2 reads
        assert lin1.plan.n_rows_kept == int(m2.any(0).sum()) < hidden
        assert set(lin1.out_rows[lin1.out_rows >= 0].tolist()) == set(m2.any(0).nonzero().flatten().tolist())


def test_dead_rows_of_a_column_pruned_lin2_are_not_computed() -> None:
    """lin2 one block keeping a quarter of the columns (768-row blocks in a DistilBERT FFN): lin1 computes a
    quarter of its rows, grouped by its own row blocks (each padded to the longest), lin2 is one dense GEMM."""
    g = torch.Generator().manual_seed(3)
    m1 = block_mask(1024, 64, 256, 16, g)
    m2 = block_mask(64, 1024, 64, 256, g)
    lin1, lin2 = pack_ffn_pair(torch.randn(1024, 64), torch.randn(1024), m1, torch.randn(64, 1024), None, m2)
    assert lin1.plan.n_rows_kept == 256 and lin1.plan.groups == 4 and lin1.plan.cols_per_group == 16

    assert lin1.out_features == lin2.in_features == lin1.plan.groups * lin1.plan.group_rows
    assert lin2.dense_rows


def test_a_lin2_reading_every_column_leaves_both_as_usual() -> None:
    g = torch.Generator().manual_seed(4)
    m1, m2 = block_mask(128, 32, 32, 8, g), torch.ones(32, 128, dtype=torch.bool)
    lin1, lin2 = pack_ffn_pair(torch.randn(128, 32), None, m1, torch.randn(32, 128), None, m2)
    assert not lin1.compact and lin1.out_features == 128 and lin2.in_features == 128


def test_pair_that_does_not_chain_is_a_bad_input() -> None:
    from devices.errors import BadInputError

    with pytest.raises(BadInputError, match="does not chain"):
        pack_ffn_pair(torch.randn(8, 4), None, None, torch.randn(4, 9), None, None)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_hf_ffn_pairs_packed_compact_equal_masked_model(kind: str) -> None:
    """A row block as tall as the FFN's output weight (column pruning of lin2): the HF FFN pairs are found by
    name and packed compact, attention's output.dense is not taken for an FFN output."""
    model = tiny_hf_classifier(kind)
    masks = hard_prune(model, hf_prunable_names(model), BPConfig(row_block=64, ratio=0.6))
    packed = pack_model(model, masks)
    compact = [n for n, m in packed.named_modules() if isinstance(m, PackedLinear) and m.compact]
    assert len(compact) == 2 and all(("lin1" in n) or ("intermediate" in n) for n in compact)
    ids = torch.randint(0, 60, (2, 10))
    att = torch.ones(2, 10, dtype=torch.long)
    att[1, 6:] = 0
    with torch.no_grad():
        ref = masked_call(model, masks, input_ids=ids, attention_mask=att).logits
        assert torch.allclose(packed(ids, att), ref, atol=1e-4)
    if kind == "distilbert":  # the exported graph computes the same compact pair
        from devices.ort_runtime import create_session

        buf = io.BytesIO()
        with torch.no_grad():
            torch.onnx.export(packed, (ids, att), buf, dynamo=False, opset_version=17)  # type: ignore[arg-type]
        sess = create_session(buf.getvalue(), 1)
        feeds = {i.name: v.numpy() for i, v in zip(sess.get_inputs(), (ids, att), strict=True)}
        np.testing.assert_allclose(sess.run(None, feeds)[0], ref.numpy(), atol=1e-4)


def test_reference_lm_ffn_pairs_compact(pipeline: Pipeline) -> None:
    masks = {n: m.clone() for n, m in pipeline.sets[-1].masks.items()}
    name = next(n for n in masks if n.endswith("linear2.weight"))
    masks[name][:, ::2] = False  # lin2 reads every other column only
    packed = pack_model(pipeline.model, masks)
    assert isinstance(packed, PackedLM) and any(layer.linear1.compact for layer in packed.layers)
    x = torch.randint(0, len(pipeline.vocab), (3, 21))
    with torch.no_grad():
        assert torch.allclose(packed(x), masked_call(pipeline.model, masks, x), atol=1e-4)


def test_lin1_is_packed_whole_when_its_live_rows_group_worse() -> None:
    """lin2 drops one row of every 32-row block of lin1: the 31-row runs are too short for groups of their
    own, and 32-row groups over them would straddle two column sets — the whole lin1 is cheaper."""
    g = torch.Generator().manual_seed(5)
    m1 = block_mask(256, 64, 32, 8, g)
    m2 = torch.ones(64, 256, dtype=torch.bool)
    m2[:, ::32] = False
    w1, w2, b1 = torch.randn(256, 64), torch.randn(64, 256), torch.randn(256)
    lin1, lin2 = pack_ffn_pair(w1, b1, m1, w2, None, m2)
    assert not lin1.compact and lin1.plan.cols_per_group == 8
    x = torch.randn(4, 64)
    with torch.inference_mode():
        assert torch.allclose(
            lin2(torch.relu(lin1(x))), F.linear(torch.relu(F.linear(x, w1 * m1, b1)), w2 * m2), atol=1e-4
        )
