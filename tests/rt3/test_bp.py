from __future__ import annotations

import pytest
import torch

from devices.errors import BadInputError
from testbed.rt3.bp import (
    BPConfig,
    ReweightedGroupLasso,
    Tile,
    group_norms,
    hard_prune,
    hard_prune_group_mask,
    tile_for,
)
from testbed.rt3.models import lm_prunable_names
from testbed.rt3.tasks import build_task
from testbed.rt3.train import train

from .conftest import DATA, Pipeline, make_lm, quick


def test_group_norms_match_a_loop() -> None:
    w = torch.randn(10, 7)
    tile = Tile(4, 1)
    norms = group_norms(w, tile)
    assert norms.shape == (3, 7)
    for r in range(3):
        for c in range(7):
            assert norms[r, c] == pytest.approx(float(w[4 * r : 4 * r + 4, c].norm()), rel=1e-5)


def test_balanced_hard_prune_keeps_equal_columns_per_row_block() -> None:
    norms = torch.rand(5, 20)
    gm = hard_prune_group_mask(norms, 0.6)
    assert gm.sum(1).tolist() == [8] * 5
    for r in range(5):  # the kept groups are the largest of their row-block
        assert norms[r][gm[r]].min() >= norms[r][~gm[r]].max()
    unbalanced = hard_prune_group_mask(norms, 0.6, balanced=False)
    assert int(unbalanced.sum()) == 40
    with pytest.raises(BadInputError):
        hard_prune_group_mask(norms, 1.0)


def test_block_column_masks_are_whole_strips() -> None:
    model = make_lm(40, emsize=32)
    names = lm_prunable_names(model)
    masks = hard_prune(model, names, BPConfig(row_block=8, ratio=0.5))
    for n in names:
        m = masks[n]
        for r in range(0, m.shape[0], 8):
            block = m[r : r + 8]
            assert torch.equal(block, block[:1].expand_as(block)), f"{n}: a column strip is partly pruned"
            assert int(block[0].sum()) == m.shape[1] // 2


def test_head_ffn_structure_prunes_heads_and_neurons() -> None:
    model = make_lm(40, emsize=32)  # 2 heads of 16
    names = lm_prunable_names(model)
    cfg = BPConfig(structure="head-ffn", ratio=0.5, row_block=8)
    in_proj = "transformer_encoder.layers.0.self_attn.in_proj_weight"
    assert tile_for(model, in_proj, (96, 32), "head-ffn", 8) == Tile(16, 32)
    masks = hard_prune(model, names, cfg)
    rows = masks[in_proj].view(6, 16, 32)
    assert all(bool(b.all()) or not bool(b.any()) for b in rows)  # whole heads of q/k/v
    assert int(rows.any(2).any(1).sum()) == 3
    out = masks["transformer_encoder.layers.0.self_attn.out_proj.weight"].view(32, 2, 16)
    assert all(bool(out[:, h].all()) or not bool(out[:, h].any()) for h in range(2))
    lin1 = masks["transformer_encoder.layers.0.linear1.weight"]
    assert torch.equal(lin1.all(1), lin1.any(1)) and int(lin1.all(1).sum()) == lin1.shape[0] // 2
    lin2 = masks["transformer_encoder.layers.0.linear2.weight"]
    assert torch.equal(lin2.all(0), lin2.any(0))
    with pytest.raises(BadInputError):
        hard_prune(model, names, BPConfig(structure="diagonal"))


def test_reweighting_uses_inverse_block_norms() -> None:
    model = make_lm(40, emsize=32)
    names = ["decoder.weight"]
    tiles = {"decoder.weight": Tile(8, 1)}
    reg = ReweightedGroupLasso(model, names, tiles, lam=0.1, eps=1e-3)
    norms = group_norms(model.decoder.weight.detach(), tiles["decoder.weight"])
    assert torch.allclose(reg.alpha["decoder.weight"], 1 / (norms + 1e-3))
    with torch.no_grad():
        value = float(reg(model))
    assert value == pytest.approx(0.1 * float((reg.alpha["decoder.weight"] * norms).sum()), rel=1e-4)


def test_group_lasso_shrinks_block_norms() -> None:
    task, vocab = build_task(DATA, batch_size=10)
    assert vocab is not None
    names = lm_prunable_names(make_lm(len(vocab)))
    totals = []
    for lam in (0.0, 3e-3):
        model = make_lm(len(vocab))
        tiles = {n: Tile(8, 1) for n in names}
        reg = ReweightedGroupLasso(model, names, tiles, lam=lam, eps=1e-3)
        train(model, task, quick(15), penalty=reg)
        params = dict(model.named_parameters())
        totals.append(sum(float(group_norms(params[n].detach(), tiles[n]).sum()) for n in names))
    assert totals[1] < 0.9 * totals[0]


def test_block_prune_zeroes_blocks_and_reports(pipeline: Pipeline) -> None:
    bp = pipeline.bp
    params = dict(pipeline.model.named_parameters())
    for n, m in bp.masks.items():
        assert torch.all(params[n][~m] == 0), f"{n}: pruned weights are not zero"
    assert bp.density == pytest.approx(0.5, abs=0.02)
    assert bp.compression == pytest.approx(2.0, rel=0.05)
    summary = bp.summary()
    assert 0 <= summary["pruned"]["accuracy"] <= 1 and summary["dense"]["perplexity"] > 1
