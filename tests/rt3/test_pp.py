from __future__ import annotations

import itertools
import random

import pytest
import torch

from devices.errors import BadInputError
from testbed.rt3.masking import density
from testbed.rt3.pp import (
    LayerChoice,
    assign_patterns,
    build_pattern_set,
    default_loss_weights,
    joint_finetune,
    n_zeros,
    representative_patterns,
    tile_layout,
    uniform_choices,
)

from .conftest import Pipeline, quick


def test_representative_patterns_have_the_level_zero_count() -> None:
    rng = random.Random(0)
    scores = [torch.rand(8) for _ in range(30)]
    pats = representative_patterns(scores, 8, 0.5, n_candidates=4, sample_tiles=4, draws=64, rng=rng)
    assert 1 <= len(pats) <= 4
    assert all(int((~p).sum()) == 4 for p in pats)
    assert len({bytes(p.numpy().tobytes()) for p in pats}) == len(pats)
    assert n_zeros(0.99, 8) == 7 and n_zeros(0.0, 8) == 0


def test_patterns_come_from_the_smallest_aggregated_columns() -> None:
    scores = [torch.tensor([5.0, 0.1, 4.0, 0.2]) for _ in range(5)]
    (pat,) = representative_patterns(scores, 4, 0.5, 4, 3, 10, random.Random(0))
    assert pat.tolist() == [True, False, True, False]


def test_masks_follow_the_chosen_patterns(pipeline: Pipeline) -> None:
    space, bp = pipeline.space, pipeline.bp.masks
    name = "transformer_encoder.layers.0.linear1.weight"
    w = dict(pipeline.model.named_parameters())[name].detach()
    mask, chosen = assign_patterns(w, bp[name], space, name, LayerChoice(2))
    assert torch.all(bp[name] | ~mask)  # never keeps what BP removed
    layout = tile_layout(bp[name], space.row_block, space.pattern_cols)
    cands = space.candidates[name][2]
    for (rb, cols), c in zip(layout.tiles(), chosen.tolist(), strict=True):
        rows = mask[rb * space.row_block : (rb + 1) * space.row_block]
        kept = rows[:, cols]
        pattern = cands[c][: cols.numel()]
        assert torch.equal(kept, pattern.expand_as(kept)), "tile does not follow its pattern"
        # the chosen pattern removes the least squared magnitude among the candidates
        sq = w[rb * space.row_block : (rb + 1) * space.row_block][:, cols].pow(2).sum(0)
        removed = [float(sq[~p[: cols.numel()]].sum()) for p in cands]
        assert removed[c] == pytest.approx(min(removed), rel=1e-5, abs=1e-7)


def test_allowed_candidates_restrict_assignment(pipeline: Pipeline) -> None:
    space, bp = pipeline.space, pipeline.bp.masks
    name = next(iter(space.candidates))
    w = dict(pipeline.model.named_parameters())[name].detach()
    if space.n_candidates(name, 3) > 1:
        _, chosen = assign_patterns(w, bp[name], space, name, LayerChoice(3, (1,)))
        assert set(chosen.tolist()) == {1}
    with pytest.raises(BadInputError):
        assign_patterns(w, bp[name], space, name, LayerChoice(3, (99,)))
    with pytest.raises(BadInputError):
        assign_patterns(w, bp[name], space, name, LayerChoice(17))


def test_pattern_sets_get_sparser_with_level_and_stay_balanced(pipeline: Pipeline) -> None:
    sparsities = [s.sparsity for s in pipeline.sets]
    assert sparsities == sorted(sparsities)
    assert pipeline.sets[0].sparsity > 1 - pipeline.bp.density - 1e-9
    assert pipeline.sets[-1].sparsity > pipeline.sets[0].sparsity + 0.1
    for s in pipeline.sets:
        for m in s.masks.values():
            counts = {int(m[r].sum()) for r in range(0, m.shape[0], pipeline.space.row_block)}
            assert len(counts) == 1, "row-blocks keep different numbers of columns"


def test_build_rejects_layers_without_bp_mask(pipeline: Pipeline) -> None:
    with pytest.raises(BadInputError, match="without a BP mask"):
        build_pattern_set(pipeline.model, pipeline.bp.masks, pipeline.space, {"encoder.weight": LayerChoice(0)})
    with pytest.raises(BadInputError):
        uniform_choices(pipeline.space, 9)


def test_joint_finetune_keeps_bp_zeros_and_sets_accuracy(pipeline: Pipeline) -> None:
    import copy

    model = copy.deepcopy(pipeline.model)
    sets = [copy.copy(s) for s in pipeline.sets]
    results = joint_finetune(model, pipeline.task, sets, pipeline.bp.masks, quick(5))
    params = dict(model.named_parameters())
    for n, m in pipeline.bp.masks.items():
        assert torch.all(params[n][~m] == 0)
    assert [s.accuracy for s in sets] == [r.accuracy for r in results]
    assert all(0 <= r.accuracy <= 1 for r in results)
    assert default_loss_weights(3) == [0.5, 0.3, 0.2]
    assert sum(default_loss_weights(4)) == pytest.approx(1.0)
    assert all(a > b for a, b in itertools.pairwise(default_loss_weights(5)))


def test_density_of_pattern_set_matches_masks(pipeline: Pipeline) -> None:
    s = pipeline.sets[1]
    assert s.sparsity == pytest.approx(1 - density(s.masks))
