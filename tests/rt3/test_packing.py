from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.rt3.bp import BPConfig, hard_prune
from testbed.rt3.masking import masked_call
from testbed.rt3.models import hf_prunable_names
from testbed.rt3.packed_model import PackedLM, pack_model, packed_nbytes
from testbed.rt3.packing import PackedLinear, plan

from .conftest import Pipeline, block_mask, tiny_hf_classifier


def _mask(kind: str, out: int, inn: int, density: float, g: torch.Generator) -> torch.Tensor:
    if kind == "random":
        return torch.rand(out, inn, generator=g) < density
    if kind == "rows":
        return (torch.rand(out, 1, generator=g) < density).expand(out, inn).clone()
    if kind == "empty":
        return torch.zeros(out, inn, dtype=torch.bool)
    return block_mask(out, inn, 32, max(1, int(inn * density)), g)  # block-column with 32-row blocks


@settings(max_examples=40, deadline=None)
@given(
    out=st.integers(1, 130),
    inn=st.integers(1, 70),
    density=st.floats(0.05, 1.0),
    kind=st.sampled_from(["random", "rows", "blockcol", "empty"]),
    tokens=st.sampled_from([1, 3, 9, 40]),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_packed_linear_equals_masked_dense(out, inn, density, kind, tokens, bias, seed) -> None:  # type: ignore[no-untyped-def]
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inn, generator=g)
    b = torch.randn(out, generator=g) if bias else None
    m = _mask(kind, out, inn, density, g)
    layer = PackedLinear(w, m, b)
    x = torch.randn(2, tokens, inn, generator=g)
    assert torch.allclose(layer(x), F.linear(x, w * m, b), atol=1e-4, rtol=1e-4)


def test_balanced_block_column_packs_without_padding() -> None:
    g = torch.Generator().manual_seed(0)
    m = _mask("blockcol", 256, 96, 0.25, g)
    p, rows = plan(m)
    assert p.group_rows == 32 and p.groups == 8 and p.cols_per_group == 24
    assert p.padding_ratio == 1.0 and rows.numel() == 256
    layer = PackedLinear(torch.randn(256, 96), m, None)
    # the packed weight holds exactly the kept weights, plus one bias row per group
    assert layer.packed.numel() == int(m.sum()) + p.groups * p.group_rows


def test_rt3_sized_blocks_are_found_from_the_mask() -> None:
    g = torch.Generator().manual_seed(1)
    m = torch.zeros(1000, 64, dtype=torch.bool)
    for r in range(0, 1000, 100):  # RT3's 100-row blocks: not a power of two
        m[r : r + 100, torch.randperm(64, generator=g)[:16]] = True
    p, _ = plan(m)
    assert p.group_rows == 100 and p.padding_ratio == 1.0


def test_pruned_rows_are_not_computed() -> None:
    m = torch.zeros(64, 16, dtype=torch.bool)
    m[::2] = True
    layer = PackedLinear(torch.randn(64, 16), m, torch.randn(64))
    assert layer.plan.n_rows_kept == 32 and layer.packed.shape == (32, 16)


def test_packed_lm_equals_masked_model(pipeline: Pipeline) -> None:
    x = torch.randint(0, len(pipeline.vocab), (3, 21))
    for s in pipeline.sets:
        packed = pack_model(pipeline.model, s.masks)
        assert isinstance(packed, PackedLM)
        with torch.no_grad():
            ref = masked_call(pipeline.model, s.masks, x)
            assert torch.allclose(packed(x), ref, atol=1e-4)


def test_packed_variants_share_the_backbone_and_shrink(pipeline: Pipeline) -> None:
    a, b = (pack_model(pipeline.model, s.masks) for s in (pipeline.sets[0], pipeline.sets[-1]))
    assert a.encoder is b.encoder is pipeline.model.encoder
    assert a.layers[0].norm1 is pipeline.model.transformer_encoder.layers[0].norm1
    assert packed_nbytes(b) < packed_nbytes(a)


@pytest.mark.parametrize("kind", ["bert", "distilbert"])
def test_packed_hf_encoder_equals_masked_model(kind: str) -> None:
    model = tiny_hf_classifier(kind)
    masks = hard_prune(model, hf_prunable_names(model), BPConfig(row_block=32, ratio=0.6))
    packed = pack_model(model, masks)
    ids = torch.randint(0, 60, (2, 10))
    att = torch.ones(2, 10, dtype=torch.long)
    att[1, 6:] = 0
    with torch.no_grad():
        ref = masked_call(model, masks, input_ids=ids, attention_mask=att).logits
        assert torch.allclose(packed(ids, att), ref, atol=1e-4)
    # packing leaves the backbone's weights untouched (pruned positions keep their values)
    params = dict(model.named_parameters())
    assert all(bool(torch.any(params[n][~m] != 0)) for n, m in masks.items())


def _blockcol_mask(out: int, inn: int, keep: int, seed: int, block: int = 32) -> torch.Tensor:
    return block_mask(out, inn, block, keep, torch.Generator().manual_seed(seed))


def test_low_sparsity_falls_back_to_one_dense_gemm() -> None:
    m = _blockcol_mask(256, 96, 90, 0)  # 6 % of each block's columns pruned: packing would not pay
    p, _ = plan(m)
    assert p.dense and p.groups == 1 and p.cols_per_group == 96
    layer = PackedLinear(torch.randn(256, 96), m, torch.randn(256))
    assert layer.dense_rows and layer.packed.shape == (256, 96) and layer.cols.numel() == 0
    assert "dense" in layer.extra_repr()
    sparse, _ = plan(_blockcol_mask(256, 96, 48, 0))  # 50 %: packed
    assert not sparse.dense and sparse.groups > 1
    forced, _ = plan(m, group_rows=32)  # an explicit group height is kept as asked
    assert not forced.dense and forced.group_rows == 32


@settings(max_examples=40, deadline=None)
@given(
    out=st.integers(1, 96),
    inn=st.integers(1, 48),
    pruned=st.floats(0.0, 0.2),
    rows_pruned=st.floats(0.0, 0.5),
    tokens=st.sampled_from([1, 2, 9, 33]),
    bias=st.booleans(),
    feature_major=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_dense_fallback_equals_masked_dense(
    out: int, inn: int, pruned: float, rows_pruned: float, tokens: int, bias: bool, feature_major: bool, seed: int
) -> None:
    """Nearly dense masks (the fallback), with whole rows pruned, N=1, token- or feature-major input."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(out, inn, generator=g)
    b = torch.randn(out, generator=g) if bias else None
    m = torch.rand(out, inn, generator=g) >= pruned
    m[torch.rand(out, generator=g) < rows_pruned] = False
    layer = PackedLinear(w, m, b)
    x = torch.randn(inn, tokens, generator=g).t() if feature_major else torch.randn(tokens, inn, generator=g)
    with torch.inference_mode():
        y = layer(x)
    assert y.shape == (tokens, out)
    assert torch.allclose(y, F.linear(x, w * m, b), atol=1e-4, rtol=1e-4)


@settings(max_examples=40, deadline=None)
@given(
    blocks=st.integers(1, 6),
    block=st.sampled_from([8, 32, 40]),
    inn=st.integers(4, 64),
    keep=st.floats(0.05, 0.6),
    shared=st.booleans(),
    dead_rows=st.integers(0, 12),
    tokens=st.sampled_from([1, 7, 8, 40]),
    feature_major=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_block_column_packing_in_both_layouts_equals_masked_dense(
    blocks: int,
    block: int,
    inn: int,
    keep: float,
    shared: bool,
    dead_rows: int,
    tokens: int,
    feature_major: bool,
    seed: int,
) -> None:
    """Row blocks keeping one shared column set or each their own, whole rows pruned, token-major input
    (gathered along columns) or feature-major input (rows of xᵀ gathered), N=1."""
    g = torch.Generator().manual_seed(seed)
    out = blocks * block
    k = max(1, int(inn * keep))
    m = torch.zeros(out, inn, dtype=torch.bool)
    common = torch.randperm(inn, generator=g)[:k]
    for r in range(0, out, block):
        m[r : r + block, common if shared else torch.randperm(inn, generator=g)[:k]] = True
    m[torch.randperm(out, generator=g)[: min(dead_rows, out)]] = False
    w, b = torch.randn(out, inn, generator=g), torch.randn(out, generator=g)
    layer = PackedLinear(w, m, b)
    x = torch.randn(inn, tokens, generator=g).t() if feature_major else torch.randn(tokens, inn, generator=g)
    with torch.inference_mode():
        y = layer(x)
    assert torch.allclose(y, F.linear(x, w * m, b), atol=1e-4, rtol=1e-4)
    xg = x.detach().clone().requires_grad_()  # under autograd: the allocating gather, not the scratch
    assert torch.allclose(layer(xg).detach(), y, atol=1e-5)


def test_onnx_export_keeps_the_transposing_gather() -> None:
    """onnxruntime runs the transpose-then-gather-rows graph faster than a permuted GEMM operand, so an
    export records that form even for a token-major input (torch itself gathers columns, no transpose)."""
    import io

    import onnx

    layer = PackedLinear(torch.randn(64, 48), _blockcol_mask(64, 48, 12, 3), torch.randn(64))
    x = torch.randn(16, 48)
    buf = io.BytesIO()
    torch.onnx.export(layer, (x,), buf, dynamo=False, opset_version=17)  # type: ignore[arg-type]
    graph = onnx.load_from_string(buf.getvalue()).graph
    axes = [a.i for n in graph.node if n.op_type == "Gather" for a in n.attribute if a.name == "axis"]
    assert axes == [0]
    assert any(n.op_type == "Transpose" for n in graph.node)
