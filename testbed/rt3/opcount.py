"""RT3's operation-count latency model, exactly as its public code computes it.

Source: ``utils/runs_number_reward.py`` and ``utils/sparsity_ratio.py`` of the reference code (GitHub
smallred-ops/Column_pruning, HEAD 67ac40b). This is a PREDICTION, never a measurement. What the reference does:

* It counts the weights of ``encoder.weight`` (the embedding table, ``vocab × emsize``), of every layer's
  ``in_proj_weight`` (``3·emsize × emsize``), ``out_proj.weight`` (``emsize × emsize``), ``linear1.weight``
  (``nhid × emsize``), ``linear2.weight`` (``emsize × nhid``) and of ``decoder.weight`` (``vocab × emsize``).
* Multiplications of a tensor = rows · cols. Additions = rows · cols − cols for the embedding and the
  attention projections, rows · cols − rows for the two FFN linears and the decoder (the reference's own
  split; reproduced as written).
* Tokens: none. The counts are the weights' element counts, once: no factor for the 35-token bptt window,
  the batch or the attention score products; the 4 heads do not enter.
* With a prune ratio ``p`` per tensor (fraction of zero weights): mults = M·(1 − p), adds = A − M·p (so at
  p = 1 the adds are slightly negative and so is the latency: the reference's formula, kept as written).
* latency(f) = (3.0 / f_GHz) · (mults/1e4 · 0.014370 + adds/1e4 · 0.014575) ms (calibrated at 3 GHz).

``RT3_LM`` is the reference's LM: WikiText-2 vocabulary as torchtext 0.4's ``Field(tokenize=basic_english,
init_token='<sos>', eos_token='<eos>', lower=True)`` builds it from the training split — 28 781 word types plus
the specials ``<unk>``, ``<pad>``, ``<sos>``, ``<eos>`` = 28 785 (later tutorial versions report 28 782 with only
``<unk>`` and 28 783 with ``<unk>``, ``<pad>``: the same 28 781 types) — emsize 800, nhid 200, 2 layers,
4 heads, bptt 35.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from devices.errors import BadInputError

#: RT3's calibration (utils/runs_number_reward.py): ms per 1e4 multiplications / additions at 3 GHz.
RT3_MS_PER_1E4_MULTS = 0.014370
RT3_MS_PER_1E4_ADDS = 0.014575
RT3_CALIBRATION_GHZ = 3.0


@dataclass(frozen=True)
class LMShape:
    """Sizes of a reference-style LM as the op-count model sees them.

    ``nhead`` and ``bptt`` are recorded for completeness; the reference's formula uses neither (it counts each
    weight once, no tokens). Raises BadInputError for non-positive sizes.
    """

    vocab_size: int
    emsize: int
    nhid: int
    nlayers: int
    nhead: int = 4
    bptt: int = 35

    def __post_init__(self) -> None:
        for name in ("vocab_size", "emsize", "nhid", "nlayers", "nhead", "bptt"):
            if getattr(self, name) < 1:
                raise BadInputError(f"LMShape.{name} must be ≥ 1, got {getattr(self, name)}")


#: RT3's reference LM (WikiText-2 vocabulary under torchtext 0.4, emsize 800, nhid 200, 2 layers, 4 heads, bptt 35).
RT3_LM = LMShape(vocab_size=28785, emsize=800, nhid=200, nlayers=2, nhead=4, bptt=35)

#: Which of the two addition rules each tensor kind follows in the reference ("cols": M − cols, "rows": M − rows).
_ADD_RULE = {
    "embedding": "cols",
    "in_proj": "cols",
    "out_proj": "cols",
    "linear1": "rows",
    "linear2": "rows",
    "decoder": "rows",
}


@dataclass(frozen=True)
class OpTensor:
    """One counted weight: its reference name, shape [rows, cols] and dense op counts."""

    name: str
    rows: int
    cols: int
    mults: int
    adds: int


def _tensor(name: str, kind: str, rows: int, cols: int) -> OpTensor:
    m = rows * cols
    return OpTensor(name, rows, cols, m, m - (cols if _ADD_RULE[kind] == "cols" else rows))


def op_tensors(shape: LMShape) -> list[OpTensor]:
    """The counted weights in the reference's ``named_parameters`` order: embedding, per layer the attention
    input/output projections and the two FFN linears, decoder last. A per-layer sparsity lists one ratio per
    entry of this list."""
    e, v, h = shape.emsize, shape.vocab_size, shape.nhid
    out = [_tensor("encoder.weight", "embedding", v, e)]
    for i in range(shape.nlayers):
        p = f"transformer_encoder.layers.{i}"
        out += [
            _tensor(f"{p}.self_attn.in_proj_weight", "in_proj", 3 * e, e),
            _tensor(f"{p}.self_attn.out_proj.weight", "out_proj", e, e),
            _tensor(f"{p}.linear1.weight", "linear1", h, e),
            _tensor(f"{p}.linear2.weight", "linear2", e, h),
        ]
    out.append(_tensor("decoder.weight", "decoder", v, e))
    return out


def _ratios(shape: LMShape, sparsity: float | Sequence[float]) -> list[float]:
    n = len(op_tensors(shape))
    ratios = [float(sparsity)] * n if isinstance(sparsity, (int, float)) else [float(s) for s in sparsity]
    if len(ratios) != n:
        raise BadInputError(f"sparsity: expected one value or {n} per-layer values, got {len(ratios)}")
    for r in ratios:
        if not (math.isfinite(r) and 0.0 <= r <= 1.0):
            raise BadInputError(f"sparsity must be in [0, 1], got {r}")
    return ratios


def opcount_ops(shape: LMShape, sparsity: float | Sequence[float]) -> tuple[float, float]:
    """(multiplications, additions) the reference counts at this sparsity (one value, or one per tensor of
    :func:`op_tensors`). Fractional, as in the reference (no rounding)."""
    mults = adds = 0.0
    for t, p in zip(op_tensors(shape), _ratios(shape, sparsity), strict=True):
        mults += t.mults * (1 - p)
        adds += t.adds - t.mults * p
    return mults, adds


def latency_from_ops_ms(mults: float, adds: float, freq_ghz: float) -> float:
    """RT3's latency formula for given op counts at ``freq_ghz`` (GHz). Raises BadInputError for f ≤ 0."""
    if not (math.isfinite(freq_ghz) and freq_ghz > 0):
        raise BadInputError(f"frequency must be a positive number of GHz, got {freq_ghz}")
    per_op = mults / 1e4 * RT3_MS_PER_1E4_MULTS + adds / 1e4 * RT3_MS_PER_1E4_ADDS
    return RT3_CALIBRATION_GHZ / freq_ghz * per_op


def opcount_latency_ms(shape: LMShape, sparsity: float | Sequence[float], freq_ghz: float) -> float:
    """PREDICTED latency (ms) of one inference of ``shape`` at ``freq_ghz`` GHz with RT3's op-count model.

    ``sparsity`` is the fraction of zero weights: one value for every counted tensor, or one per tensor of
    :func:`op_tensors` (embedding, per layer in_proj/out_proj/linear1/linear2, decoder). Raises BadInputError
    for a sparsity outside [0, 1], a wrong number of per-layer values or a non-positive frequency.
    """
    mults, adds = opcount_ops(shape, sparsity)
    return latency_from_ops_ms(mults, adds, freq_ghz)


def min_sparsity_for_deadline(shape: LMShape, deadline_ms: float, freq_ghz: float) -> float:
    """The smallest uniform sparsity whose predicted latency at ``freq_ghz`` meets ``deadline_ms``: 0.0 when dense
    already meets it, 1.0 when even full sparsity misses it (latency is affine in sparsity)."""
    dense = opcount_latency_ms(shape, 0.0, freq_ghz)
    full = opcount_latency_ms(shape, 1.0, freq_ghz)
    if dense <= deadline_ms:
        return 0.0
    if full > deadline_ms:
        return 1.0
    return (dense - deadline_ms) / (dense - full)


def _kind(name: str) -> str | None:
    """The reference's tensor kind of a parameter name (its substring filters), or None if not counted."""
    for key, kind in (
        ("in_proj_weight", "in_proj"),
        ("out_proj.weight", "out_proj"),
        ("linear1.weight", "linear1"),
        ("linear2.weight", "linear2"),
        ("encoder.weight", "embedding"),
        ("decoder.weight", "decoder"),
    ):
        if key in name:
            return kind
    return None


def model_ops(shapes: dict[str, tuple[int, int]], zero_fraction: dict[str, float]) -> tuple[float, float]:
    """(mults, adds) the reference counts for a model given its 2-D weight shapes by name and the zero fraction
    of each (0 for a name left out). Names are filtered as the reference does (``in_proj_weight``,
    ``out_proj.weight``, ``linear1/2.weight``, ``encoder.weight``, ``decoder.weight``); others are not counted.
    """
    mults = adds = 0.0
    for name, (rows, cols) in shapes.items():
        kind = _kind(name)
        if kind is None:
            continue
        t = _tensor(name, kind, rows, cols)
        p = float(zero_fraction.get(name, 0.0))
        mults += t.mults * (1 - p)
        adds += t.adds - t.mults * p
    return mults, adds
