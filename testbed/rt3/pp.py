"""Pattern pruning (PP) on the BP backbone: representative patterns, assignment, pattern sets, joint training.

Where RT3's patterns act: RT3 tiles a weight into 100×100 blocks and gives each block an element-wise binary
pattern, applied by mask multiplication, which makes nothing faster on a CPU. Here a pattern acts on the
*compacted* BP weight so that it shrinks the dense GEMMs the runtime executes:

* the weight's rows are cut into row-blocks of ``row_block`` rows (the BP row-block); inside a row-block the
  columns BP kept, in order, are cut into tiles of ``pattern_cols`` consecutive kept columns;
* a *pattern* is a boolean vector of length ``pattern_cols`` with a fixed number of zeros for its sparsity
  level; it removes whole kept columns of the tile (a ``row_block × 1`` strip each), so every row-block keeps
  the same number of columns and packs into equal-sized GEMMs;
* candidates (RT3's heuristic, per layer and sparsity level): sum the column magnitudes of ``sample_tiles``
  randomly drawn tiles, zero the smallest positions; repeat, keep ``n_candidates`` distinct patterns;
* assignment: every tile takes, among its layer's allowed candidates, the pattern that removes the least
  squared magnitude (equivalently the smallest Euclidean distance between tile and masked tile); a short
  tile (the last kept columns of a row-block, the last rows of a weight) gets its zero count made up to the
  level from its smallest positions, so every tile reaches the level.

A *pattern set* = one choice of (level, allowed candidates) per layer → one mask set (BP mask ∧ patterns).
K pattern sets of diverse sparsity share one backbone and are fine-tuned jointly (RT3: weights 0.5/0.3/0.2).

``mode="element"`` is RT3's own form, run by mask only (no CPU speed-up): a pattern is an element-wise binary
mask of a whole ``row_block × pattern_cols`` tile, so it zeroes single weights, not column strips; the same
candidate heuristic and assignment apply to the tile's element magnitudes. It exists to measure what the
CPU-friendly column strips cost in accuracy at equal sparsity. With ``row_block × pattern_cols`` ≥ 100
positions (element) or ``pattern_cols`` ≥ 32 (column) all ten of RT3's levels give distinct zero counts
(:func:`distinct_levels`); at ``pattern_cols`` 8 the column form collapses them to 8.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.masking import Masks, density
from testbed.rt3.row_blocks import resolve_row_block
from testbed.rt3.train import EvalResult, Task, TrainConfig, evaluate, train

#: RT3's ten sparsity levels (pruning_number_list / 10 000 zeros per 100×100 pattern).
RT3_LEVELS = (0.01, 0.13, 0.25, 0.37, 0.50, 0.62, 0.75, 0.87, 0.93, 0.99)


@dataclass
class TileLayout:
    """Compact-column tiling of one weight: for each row-block, its kept columns in tiles of ``cols``."""

    row_block: int
    cols: int
    kept: list[Tensor]  # per row-block: LongTensor of kept column indices (ascending)

    def tiles(self) -> list[tuple[int, Tensor]]:
        """(row-block index, column indices) of every tile; the last tile of a row-block may be shorter."""
        out = []
        for rb, cols in enumerate(self.kept):
            for i in range(0, len(cols), self.cols):
                out.append((rb, cols[i : i + self.cols]))
        return out


def tile_layout(bp_mask: Tensor, row_block: int, pattern_cols: int) -> TileLayout:
    """The tiling of a BP-masked weight: kept columns of each row-block = union over its rows."""
    if row_block < 1 or pattern_cols < 1:
        raise BadInputError("row_block and pattern_cols must be ≥ 1")
    kept = []
    for r in range(0, bp_mask.shape[0], row_block):
        kept.append(bp_mask[r : r + row_block].any(0).nonzero().flatten())
    return TileLayout(row_block, pattern_cols, kept)


def _tile_scores(weight: Tensor, layout: TileLayout) -> list[tuple[int, Tensor, Tensor]]:
    """(row-block, column idx, squared column norms over the row-block) for every tile."""
    h = layout.row_block
    out = []
    for rb, cols in layout.tiles():
        block = weight[rb * h : (rb + 1) * h, cols]
        out.append((rb, cols, block.pow(2).sum(0)))
    return out


def n_zeros(level: float, pattern_cols: int) -> int:
    """Zeros per pattern for a sparsity level (at most pattern_cols − 1, so a tile is never empty)."""
    return min(pattern_cols - 1, max(0, round(level * pattern_cols)))


PP_MODES = ("column", "element")


def pattern_length(mode: str, row_block: int, pattern_cols: int) -> int:
    """Positions of one pattern: ``pattern_cols`` (column strips) or ``row_block × pattern_cols`` (element)."""
    if mode not in PP_MODES:
        raise BadInputError(f"unknown PP mode {mode!r}; choose column or element")
    return pattern_cols if mode == "column" else row_block * pattern_cols


def distinct_levels(levels: Sequence[float], length: int) -> int:
    """How many of ``levels`` give different zero counts in a pattern of ``length`` positions."""
    return len({n_zeros(lv, length) for lv in levels})


def _element_scores(weight: Tensor, layout: TileLayout) -> list[tuple[int, Tensor, Tensor]]:
    """(row-block, column idx, squared magnitudes [rows, cols] of the tile) for every tile."""
    h = layout.row_block
    return [(rb, cols, weight[rb * h : (rb + 1) * h, cols].pow(2)) for rb, cols in layout.tiles()]


def representative_patterns(
    scores: Sequence[Tensor],
    pattern_cols: int,
    level: float,
    n_candidates: int,
    sample_tiles: int,
    draws: int,
    rng: random.Random,
) -> list[Tensor]:
    """RT3's heuristic: aggregate random tile samples, zero the smallest positions, keep distinct patterns.

    Only full-width tiles are sampled. Returns 1…n_candidates boolean patterns (True = keep).
    """
    full = [s for s in scores if s.numel() == pattern_cols]
    nz = n_zeros(level, pattern_cols)
    if nz == 0 or not full:
        return [torch.ones(pattern_cols, dtype=torch.bool)]
    patterns: list[Tensor] = []
    seen: set[bytes] = set()
    for _ in range(draws):
        picks = [full[rng.randrange(len(full))] for _ in range(min(sample_tiles, len(full)))]
        agg = torch.stack(picks).sum(0)
        pat = torch.ones(pattern_cols, dtype=torch.bool)
        pat[agg.argsort()[:nz]] = False
        key = bytes(pat.numpy().tobytes())
        if key not in seen:
            seen.add(key)
            patterns.append(pat)
        if len(patterns) >= n_candidates:
            break
    return patterns


@dataclass
class PatternSpace:
    """The shrunken search space: candidate patterns per layer and sparsity level, from the BP model."""

    row_block: int
    pattern_cols: int
    levels: tuple[float, ...]
    candidates: dict[str, list[list[Tensor]]]  # name → level index → candidate patterns
    mode: str = "column"  # column strips (packable) or element-wise (RT3's, run by mask)

    def n_candidates(self, name: str, level_index: int) -> int:
        return len(self.candidates[name][level_index])

    def to_dict(self) -> dict[str, Any]:
        return {
            "row_block": self.row_block,
            "pattern_cols": self.pattern_cols,
            "mode": self.mode,
            "levels": list(self.levels),
            "candidates": {
                n: [[p.int().tolist() for p in lv] for lv in levels] for n, levels in self.candidates.items()
            },
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PatternSpace:
        cands = {
            n: [[torch.tensor(p, dtype=torch.bool) for p in lv] for lv in levels]
            for n, levels in d["candidates"].items()
        }
        return cls(int(d["row_block"]), int(d["pattern_cols"]), tuple(d["levels"]), cands, str(d.get("mode", "column")))


@torch.no_grad()
def build_space(
    model: nn.Module,
    bp_masks: Masks,
    row_block: int | str,
    pattern_cols: int = 16,
    levels: Sequence[float] = RT3_LEVELS,
    n_candidates: int = 4,
    sample_tiles: int = 8,
    draws: int = 64,
    seed: int = 0,
    mode: str = "column",
) -> PatternSpace:
    """Extract candidate patterns for every BP-masked weight and sparsity level (RT3's shrunken space).

    ``mode`` column (strips of kept columns) or element (element-wise tile patterns, see the module text).
    ``row_block`` the BP row block, or ``"auto"``: the measured table's choice for these weights, the same one
    BP's ``row_block="auto"`` resolves to (:mod:`testbed.rt3.row_blocks`).
    """
    row_block, _ = resolve_row_block(row_block, [(int(m.shape[0]), int(m.shape[1])) for m in bp_masks.values()])
    length = pattern_length(mode, row_block, pattern_cols)
    params = dict(model.named_parameters())
    rng = random.Random(seed)
    cands: dict[str, list[list[Tensor]]] = {}
    for name, mask in bp_masks.items():
        w = params[name].detach() * mask
        layout = tile_layout(mask, row_block, pattern_cols)
        if mode == "column":
            scores = [s for _, _, s in _tile_scores(w, layout)]
        else:
            scores = [s.flatten() for _, _, s in _element_scores(w, layout)]
        cands[name] = [
            representative_patterns(scores, length, lv, n_candidates, sample_tiles, draws, rng) for lv in levels
        ]
    return PatternSpace(row_block, pattern_cols, tuple(levels), cands, mode)


@dataclass(frozen=True)
class LayerChoice:
    """One layer's decision: a sparsity level index and which candidate patterns its tiles may use."""

    level: int
    allowed: tuple[int, ...] | None = None  # None: all candidates


Choices = dict[str, LayerChoice]


def uniform_choices(space: PatternSpace, level_index: int) -> Choices:
    """Every layer at the same level with all its candidates allowed."""
    if not 0 <= level_index < len(space.levels):
        raise BadInputError(f"level index {level_index} outside 0…{len(space.levels) - 1}")
    return {n: LayerChoice(level_index) for n in space.candidates}


def _exact_zeros(keep: Tensor, score: Tensor, level: float) -> Tensor:
    """``keep`` with exactly ``n_zeros(level, len)`` zeros: a pattern cropped to a short tile (the last kept
    columns of a row-block, or the last rows of a weight) loses zeros; the smallest-score kept positions make
    them up (or, with too many, the largest-score zeros come back), so every tile reaches the level."""
    want = n_zeros(level, keep.numel())
    have = int((~keep).sum())
    if have == want:
        return keep
    keep = keep.clone()
    if have < want:
        idx = torch.nonzero(keep).flatten()
        keep[idx[score[idx].argsort()[: want - have]]] = False
    else:
        idx = torch.nonzero(~keep).flatten()
        keep[idx[score[idx].argsort(descending=True)[: have - want]]] = True
    return keep


@torch.no_grad()
def assign_patterns(
    weight: Tensor, bp_mask: Tensor, space: PatternSpace, name: str, choice: LayerChoice
) -> tuple[Tensor, Tensor]:
    """Mask of one weight under ``choice`` and the chosen candidate index of every tile.

    Each tile takes the allowed candidate whose zeros remove the least squared magnitude; a short last tile
    uses the pattern's leading positions. Raises BadInputError for an invalid level or candidate index.
    """
    if not 0 <= choice.level < len(space.levels):
        raise BadInputError(f"{name}: level index {choice.level} outside 0…{len(space.levels) - 1}")
    cands = space.candidates[name][choice.level]
    allowed = choice.allowed if choice.allowed is not None else tuple(range(len(cands)))
    if not allowed or any(not 0 <= a < len(cands) for a in allowed):
        raise BadInputError(f"{name}: allowed candidates {allowed} invalid ({len(cands)} candidates)")
    pats = torch.stack([cands[a] for a in allowed]).float()  # [P, c]
    level = space.levels[choice.level]
    layout = tile_layout(bp_mask, space.row_block, space.pattern_cols)
    w = weight * bp_mask
    mask = bp_mask.clone()
    h = space.row_block
    chosen = []
    if space.mode == "element":
        grid = pats.view(len(allowed), h, space.pattern_cols)
        for rb, cols, score in _element_scores(w, layout):
            r, c = score.shape
            flat = grid[:, :r, :c].reshape(len(allowed), -1)
            best = int((flat @ score.flatten()).argmax())
            chosen.append(allowed[best])
            keep = _exact_zeros(grid[best, :r, :c].bool().flatten(), score.flatten(), level).view(r, c)
            rows = slice(rb * h, rb * h + r)
            mask[rows, cols] = mask[rows, cols] & keep
        return mask, torch.tensor(chosen, dtype=torch.int16)
    for rb, cols, score in _tile_scores(w, layout):
        length = score.numel()
        kept_mag = pats[:, :length] @ score  # retained squared magnitude per pattern
        best = int(kept_mag.argmax())
        chosen.append(allowed[best])
        drop = cols[~_exact_zeros(pats[best, :length].bool(), score, level)]
        mask[rb * h : (rb + 1) * h, drop] = False
    return mask, torch.tensor(chosen, dtype=torch.int16)


@dataclass
class PatternSet:
    """One software configuration: masks over the shared backbone plus what is known about it."""

    name: str
    masks: Masks
    choices: Choices
    level: float | None = None
    accuracy: float | None = None
    freq_level: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        """Fraction of the masked weights removed, relative to the dense model."""
        return 1.0 - density(self.masks)

    def meta(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "sparsity": self.sparsity,
            "level": self.level,
            "accuracy": self.accuracy,
            "freq_level": self.freq_level,
            "choices": {
                n: [c.level, list(c.allowed) if c.allowed is not None else None] for n, c in self.choices.items()
            },
            **self.extra,
        }


def build_pattern_set(
    model: nn.Module, bp_masks: Masks, space: PatternSpace, choices: Choices, name: str = "set"
) -> PatternSet:
    """The search API's "build": masks for every layer from the given choices (layers left out stay BP-only)."""
    params = dict(model.named_parameters())
    unknown = set(choices) - set(bp_masks)
    if unknown:
        raise BadInputError(f"choices for layers without a BP mask: {sorted(unknown)}")
    masks = dict(bp_masks)
    for n, c in choices.items():
        masks[n], _ = assign_patterns(params[n].detach(), bp_masks[n], space, n, c)
    levels = {space.levels[c.level] for c in choices.values()}
    level = levels.pop() if len(levels) == 1 else None
    return PatternSet(name, masks, dict(choices), level=level)


def default_loss_weights(k: int) -> list[float]:
    """RT3's 0.5/0.3/0.2 for three sets; otherwise weights decreasing linearly, summing to 1."""
    if k == 3:
        return [0.5, 0.3, 0.2]
    raw = [float(k - i) for i in range(k)]
    return [r / sum(raw) for r in raw]


def joint_finetune(
    model: nn.Module,
    task: Task,
    sets: Sequence[PatternSet],
    bp_masks: Masks,
    config: TrainConfig,
    loss_weights: Sequence[float] | None = None,
    eval_split: str = "test",
) -> list[EvalResult]:
    """Fine-tune the shared backbone for all sets at once, keep BP zeros, store each set's accuracy."""
    weights = list(loss_weights) if loss_weights is not None else default_loss_weights(len(sets))
    train(model, task, config, mask_sets=[s.masks for s in sets], loss_weights=weights, fixed_mask=bp_masks)
    results = []
    for s in sets:
        r = evaluate(model, task, eval_split, masks=s.masks)
        s.accuracy = r.accuracy
        results.append(r)
    return results
