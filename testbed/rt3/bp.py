"""Block-structured pruning (BP) with a reweighted group lasso, RT3's first-level compression.

A weight W[out, in] is tiled into groups of shape (tile_rows, tile_cols) (the weight is conceptually
zero-padded to a multiple of the tile). Two structures:

* ``block-column`` — RT3's: rows are grouped into row-blocks of ``row_block`` rows and inside a row-block
  whole columns (``row_block × 1`` strips) are pruned. By default every row-block keeps the same number of
  columns ("balanced"), so that the packed weight is a batch of equal-sized dense GEMMs.
* ``head-ffn`` — aligned to the architecture: attention input projections lose whole heads (``head_dim`` rows),
  the attention output projection whole head columns, FFN-1 whole neuron rows, FFN-2 whole neuron columns;
  other weights (the LM decoder) fall back to block-column.

Training adds λ · Σ_g α_g ‖W_g‖₂ to the loss; α_g = 1 / (‖W_g‖₂ + ε) is re-estimated from the current block
norms every ``reweight_every`` steps (reweighted group lasso). Then each layer is hard-pruned to its ratio and
the model is retrained with the mask fixed.

Two settings make the lasso prune rather than decorate (at a constant λ = 1e-4 the group norms end up no
sparser than with λ = 0):

* a **λ schedule** (``lam_schedule`` linear or exp): λ grows from ``lam`` to ``lam_max`` over the
  regularised steps, so early steps learn and late steps push the weak groups to zero;
* **prune-set reweighting** (``reweight_mode="prune-set"``): α_g is 1/(‖W_g‖₂ + ε) only for the groups that the
  hard prune would remove at the current norms (the lowest ``ratio`` of each row-block) and 0 for the others,
  so the penalty drains exactly the groups that will go and leaves the kept ones to the loss.

* a **proximal** lasso (``lasso="proximal"``): instead of adding the penalty to the loss (whose gradient Adam
  rescales, so it shrinks a group by at most about lr per step whatever λ is), every optimizer step is followed
  by the group lasso's proximal step with step size lr, W_g ← W_g · max(0, 1 − lr·λ·α_g / ‖W_g‖₂): the textbook
  proximal-gradient update, which sets groups exactly to zero. With the λ schedule and prune-set reweighting
  the groups the hard prune will remove are emptied gradually while the rest of the model adapts, so the hard
  prune itself throws (almost) nothing away.

:func:`group_norm_stats` measures the effect before the hard prune: the share of the total group-norm mass
that sits in the groups about to be pruned (what pruning throws away; lower = sparser).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.masking import Masks, density
from testbed.rt3.models import TransformerLM
from testbed.rt3.row_blocks import AUTO, resolve_row_block
from testbed.rt3.train import EvalResult, Task, TrainConfig, evaluate, train

STRUCTURES = ("block-column", "head-ffn")


@dataclass(frozen=True)
class Tile:
    """Group shape (rows, cols) of one weight; the group grid is ceil(out/rows) × ceil(in/cols)."""

    rows: int
    cols: int


def _head_dim(model: nn.Module) -> int:
    if isinstance(model, TransformerLM):
        return model.config.emsize // model.config.nhead
    cfg = getattr(model, "config", None)
    hidden = getattr(cfg, "hidden_size", None) or getattr(cfg, "dim", None)
    heads = getattr(cfg, "num_attention_heads", None) or getattr(cfg, "n_heads", None)
    if not hidden or not heads:
        raise BadInputError("cannot find hidden size and head count in the model config")
    return int(hidden) // int(heads)


_ROW_HEADS = (
    "in_proj_weight",
    "query.weight",
    "key.weight",
    "value.weight",
    "q_lin.weight",
    "k_lin.weight",
    "v_lin.weight",
)
_COL_HEADS = ("out_proj.weight", "attention.output.dense.weight", "out_lin.weight")
_ROW_NEURONS = ("linear1.weight", "intermediate.dense.weight", "lin1.weight")
_COL_NEURONS = ("linear2.weight", "lin2.weight")


def tile_for(model: nn.Module, name: str, shape: tuple[int, ...], structure: str, row_block: int) -> Tile:
    """The group tile of weight ``name`` under ``structure`` (see the module docstring)."""
    if structure not in STRUCTURES:
        raise BadInputError(f"unknown BP structure {structure!r}; choose one of {', '.join(STRUCTURES)}")
    if row_block < 1:
        raise BadInputError(f"row_block must be ≥ 1, got {row_block}")
    out, inn = shape
    if structure == "head-ffn":
        if name.endswith(_ROW_HEADS):
            return Tile(_head_dim(model), inn)
        if name.endswith(_COL_HEADS):
            return Tile(out, _head_dim(model))
        if name.endswith(_ROW_NEURONS):
            return Tile(1, inn)
        if name.endswith(_COL_NEURONS) or (name.endswith("output.dense.weight") and "attention" not in name):
            return Tile(out, 1)
    return Tile(min(row_block, out), 1)


def group_norms(weight: Tensor, tile: Tile) -> Tensor:
    """L2 norm of every group: a [ceil(out/rows), ceil(in/cols)] tensor (differentiable)."""
    out, inn = weight.shape
    pr, pc = -out % tile.rows, -inn % tile.cols
    w = F.pad(weight, (0, pc, 0, pr)) if pr or pc else weight
    r, c = w.shape[0] // tile.rows, w.shape[1] // tile.cols
    sq = w.reshape(r, tile.rows, c, tile.cols).pow(2).sum(dim=(1, 3))
    return torch.sqrt(sq + 1e-12)


def expand_groups(group_mask: Tensor, tile: Tile, shape: tuple[int, ...]) -> Tensor:
    """Element mask of ``shape`` from a group mask of the tile grid (padding cropped)."""
    full = group_mask.repeat_interleave(tile.rows, 0).repeat_interleave(tile.cols, 1)
    return full[: shape[0], : shape[1]].contiguous()


def hard_prune_group_mask(norms: Tensor, ratio: float, balanced: bool = True) -> Tensor:
    """Boolean group mask keeping the largest-norm groups so that about ``ratio`` of the groups go.

    Balanced (and more than one group column): every group row (row-block) keeps the same number of groups,
    ``round((1 − ratio) · n_cols)``, at least one. Otherwise the largest groups of the whole weight are kept.
    Raises BadInputError for a ratio outside [0, 1).
    """
    if not 0.0 <= ratio < 1.0:
        raise BadInputError(f"prune ratio must be in [0, 1), got {ratio}")
    r, c = norms.shape
    mask = torch.zeros_like(norms, dtype=torch.bool)
    if balanced and c > 1:
        keep = max(1, round((1.0 - ratio) * c))
        idx = norms.topk(keep, dim=1).indices
        mask.scatter_(1, idx, True)
    else:
        keep = max(1, round((1.0 - ratio) * r * c))
        idx = norms.flatten().topk(keep).indices
        mask.view(-1)[idx] = True
    return mask


@dataclass
class BPConfig:
    """Block pruning settings. ``ratio`` is the fraction of groups removed per layer (a float for all layers or
    a mapping name → ratio); RT3's configs use about 0.643. ``lam`` is the group-lasso strength λ."""

    structure: str = "block-column"
    row_block: int | str = 32  # or "auto": chosen from the measured table (testbed.rt3.row_blocks), see resolved()
    ratio: float | dict[str, float] = 0.6
    balanced: bool = True
    lam: float = 1e-4
    reweight_every: int = 20
    eps: float = 1e-3
    lam_max: float | None = None  # end of the λ schedule (None: constant λ)
    lam_schedule: str = "constant"  # constant | linear | exp
    reweight_mode: str = "all"  # all | prune-set
    lasso: str = "penalty"  # penalty (added to the loss) | proximal (group soft-threshold after every step)
    lam_ramp: float = 1.0  # fraction of the regularised steps over which λ reaches lam_max (then it holds)
    reg_train: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, label="bp group-lasso"))
    retrain: TrainConfig = field(default_factory=lambda: TrainConfig(epochs=1, label="bp retrain"))
    row_block_choice: dict[str, Any] | None = None  # how "auto" was resolved (set by resolved())

    def __post_init__(self) -> None:
        if isinstance(self.row_block, str) and self.row_block != AUTO:
            raise BadInputError(f"row_block must be a positive integer or {AUTO!r}, got {self.row_block!r}")
        if self.lam_schedule not in ("constant", "linear", "exp"):
            raise BadInputError(f"λ schedule {self.lam_schedule!r}: choose constant, linear or exp")
        if self.reweight_mode not in ("all", "prune-set"):
            raise BadInputError(f"reweight mode {self.reweight_mode!r}: choose all or prune-set")
        if self.lasso not in ("penalty", "proximal"):
            raise BadInputError(f"lasso {self.lasso!r}: choose penalty or proximal")
        if self.lam < 0 or (self.lam_max is not None and self.lam_max < 0):
            raise BadInputError("λ must be ≥ 0")
        if self.lam_schedule == "exp" and self.lam_max and self.lam <= 0:
            raise BadInputError("an exp λ schedule needs λ > 0 at the start")
        if not 0.0 < self.lam_ramp <= 1.0:
            raise BadInputError(f"lam_ramp must be in (0, 1], got {self.lam_ramp}")

    def lam_at(self, progress: float) -> float:
        """λ after ``progress`` ∈ [0, 1] of the regularised steps (the ramp ends at ``lam_ramp``, then λ holds)."""
        end = self.lam if self.lam_max is None else self.lam_max
        t = min(1.0, max(0.0, progress / self.lam_ramp))
        if self.lam_schedule == "linear":
            return self.lam + (end - self.lam) * t
        if self.lam_schedule == "exp" and self.lam > 0 and end > 0:
            return self.lam * (end / self.lam) ** t
        return self.lam

    def resolved(self, model: nn.Module, names: list[str]) -> BPConfig:
        """This config with ``row_block="auto"`` replaced by the measured table's choice for these weights
        (and the choice recorded in ``row_block_choice``); itself when the row block is already a number."""
        if not isinstance(self.row_block, str):
            return self
        params = dict(model.named_parameters())
        shapes = [(int(params[n].shape[0]), int(params[n].shape[1])) for n in names]
        block, choice = resolve_row_block(self.row_block, shapes)
        return replace(self, row_block=block, row_block_choice=choice.to_dict() if choice else None)

    def ratio_for(self, name: str) -> float:
        if isinstance(self.ratio, Mapping):
            if name not in self.ratio:
                raise BadInputError(f"no prune ratio given for {name}")
            return float(self.ratio[name])
        return float(self.ratio)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("reg_train")
        d.pop("retrain")
        return d


class ReweightedGroupLasso:
    """The penalty λ · Σ_layers Σ_g α_g ‖W_g‖₂ with α re-estimated from the block norms by :meth:`reweight`."""

    def __init__(
        self,
        model: nn.Module,
        names: list[str],
        tiles: Mapping[str, Tile],
        lam: float,
        eps: float,
        prune_set: BPConfig | None = None,
    ):
        self.names = names
        self.tiles = dict(tiles)
        self.lam = lam
        self.eps = eps
        self.prune_set = prune_set
        self.alpha: dict[str, Tensor] = {}
        self.reweight(model)

    @torch.no_grad()
    def reweight(self, model: nn.Module) -> None:
        """α_g = 1/(‖W_g‖ + ε); with ``prune_set`` (a BPConfig) only for the groups its hard prune would remove."""
        params = dict(model.named_parameters())
        for n in self.names:
            norms = group_norms(params[n].detach(), self.tiles[n])
            alpha = 1.0 / (norms + self.eps)
            if self.prune_set is not None:
                keep = hard_prune_group_mask(norms, self.prune_set.ratio_for(n), self.prune_set.balanced)
                alpha = alpha * (~keep).to(alpha.dtype)
            self.alpha[n] = alpha

    @torch.no_grad()
    def prox_(self, model: nn.Module, step_size: float) -> None:
        """The proximal step of the penalty: W_g ← W_g · max(0, 1 − step_size·λ·α_g / ‖W_g‖₂), in place."""
        if self.lam <= 0 or step_size <= 0:
            return
        params = dict(model.named_parameters())
        for n in self.names:
            w, tile = params[n], self.tiles[n]
            norms = group_norms(w, tile)
            factor = (1.0 - step_size * self.lam * self.alpha[n] / norms).clamp_(min=0.0)
            w.mul_(expand_groups(factor, tile, tuple(w.shape)))

    def __call__(self, model: nn.Module) -> Tensor:
        params = dict(model.named_parameters())
        total = torch.zeros(())
        for n in self.names:
            total = total + (self.alpha[n] * group_norms(params[n], self.tiles[n])).sum()
        return self.lam * total


def tiles_for(model: nn.Module, names: list[str], cfg: BPConfig) -> dict[str, Tile]:
    params = dict(model.named_parameters())
    block = int(cfg.resolved(model, names).row_block)
    return {n: tile_for(model, n, tuple(params[n].shape), cfg.structure, block) for n in names}


@torch.no_grad()
def hard_prune(model: nn.Module, names: list[str], cfg: BPConfig) -> Masks:
    """Masks that keep, per layer, the largest-norm groups (see :func:`hard_prune_group_mask`)."""
    params = dict(model.named_parameters())
    tiles = tiles_for(model, names, cfg)
    masks = {}
    for n in names:
        w = params[n].detach()
        gm = hard_prune_group_mask(group_norms(w, tiles[n]), cfg.ratio_for(n), cfg.balanced)
        masks[n] = expand_groups(gm, tiles[n], tuple(w.shape))
    return masks


@torch.no_grad()
def group_norm_stats(model: nn.Module, names: list[str], cfg: BPConfig) -> dict[str, float]:
    """How sparse the group norms are before the hard prune, over all pruned weights.

    ``pruned_mass_fraction``: Σ norms of the groups the hard prune removes / Σ all group norms (what pruning
    throws away; 1 − ratio for norms that are all equal, → 0 when the lasso has emptied those groups);
    ``pruned_to_kept_norm``: mean norm of a removed group / mean norm of a kept group.
    """
    params = dict(model.named_parameters())
    tiles = tiles_for(model, names, cfg)
    pruned = kept = 0.0
    n_pruned = n_kept = 0
    for n in names:
        norms = group_norms(params[n].detach(), tiles[n])
        keep = hard_prune_group_mask(norms, cfg.ratio_for(n), cfg.balanced)
        pruned += float(norms[~keep].sum())
        kept += float(norms[keep].sum())
        n_pruned += int((~keep).sum())
        n_kept += int(keep.sum())
    total = pruned + kept
    mean_pruned = pruned / n_pruned if n_pruned else 0.0
    mean_kept = kept / n_kept if n_kept else 0.0
    return {
        "pruned_mass_fraction": pruned / total if total > 0 else 0.0,
        "pruned_to_kept_norm": mean_pruned / mean_kept if mean_kept > 0 else 0.0,
    }


@dataclass
class BPResult:
    """What block pruning produced: the masks, the tile per weight, accuracy before/after, compression."""

    masks: Masks
    tiles: dict[str, Tile]
    dense: EvalResult
    pruned_before_retrain: EvalResult
    pruned: EvalResult
    density: float
    norm_stats: dict[str, float] = field(default_factory=dict)  # group_norm_stats just before the hard prune

    @property
    def compression(self) -> float:
        """Dense prunable weights / kept prunable weights (× over the masked tensors)."""
        return math.inf if self.density == 0 else 1.0 / self.density

    def summary(self) -> dict[str, Any]:
        return {
            "dense": self.dense.to_dict(),
            "pruned_before_retrain": self.pruned_before_retrain.to_dict(),
            "pruned": self.pruned.to_dict(),
            "density": self.density,
            "compression": self.compression,
            "norm_stats_before_prune": self.norm_stats,
        }


def block_prune(
    model: nn.Module,
    task: Task,
    names: list[str],
    cfg: BPConfig,
    eval_split: str = "test",
    teacher: nn.Module | None = None,
) -> BPResult:
    """Run BP on a trained model in place: group-lasso training, hard pruning, masked retraining.

    ``teacher`` (with ``distill_alpha`` > 0 in the TrainConfigs): both phases distil from it. Returns the masks
    (the BP backbone's zero structure) and accuracies; the model's pruned weights are zero.
    """
    cfg = cfg.resolved(model, names)
    dense = evaluate(model, task, eval_split)
    tiles = tiles_for(model, names, cfg)
    reg = ReweightedGroupLasso(
        model, names, tiles, cfg.lam_at(0.0), cfg.eps, cfg if cfg.reweight_mode == "prune-set" else None
    )
    total_steps = max(1, cfg.reg_train.planned_steps(task.n_batches("train")))
    proximal = cfg.lasso == "proximal"

    def after_step(step: int) -> None:
        if proximal:
            reg.prox_(model, cfg.reg_train.lr)
        reg.lam = cfg.lam_at(step / total_steps)
        if cfg.reweight_every > 0 and step % cfg.reweight_every == 0:
            reg.reweight(model)

    if cfg.reg_train.epochs > 0 and total_steps > 0:
        penalty = reg if cfg.lam_at(1.0) > 0 and not proximal else None
        train(model, task, cfg.reg_train, penalty=penalty, after_step=after_step, teacher=teacher)
    stats = group_norm_stats(model, names, cfg)
    masks = hard_prune(model, names, cfg)
    before = evaluate(model, task, eval_split, masks=masks)
    if cfg.retrain.epochs > 0:
        train(model, task, cfg.retrain, mask_sets=[masks], fixed_mask=masks, teacher=teacher)
    else:
        from testbed.rt3.masking import apply_masks_

        apply_masks_(model, masks)
    after = evaluate(model, task, eval_split)
    return BPResult(masks, tiles, dense, before, after, density(masks), stats)
