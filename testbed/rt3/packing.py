"""Packing a masked weight into the execution form whose latency falls with its sparsity on a CPU.

Measured here before choosing (768→3072 FFN-1, 128 tokens, 1 thread, block-column masks; ratios to dense
``F.linear`` at sparsity 0.5 / 0.75 / 0.9, ideal 2 / 4 / 10): torch CSR ``sparse.mm`` 0.4 / 0.8 / 1.6×, BSR
(32×32) 0.2–0.3×, RT3's mask-multiply 0.7×; grouped gather + batched dense GEMM with groups of 64 rows
1.4 / 2.6 / 5.7×, 128 rows 1.7 / 3.2 / 7.3×, 256 rows 1.8 / 3.5 / 8.0×; 16-row groups were 2–5× slower than
32-row ones. So a pruned weight W ⊙ M [out, in] is stored as

* ``rows``: the output rows with any kept weight (rows that are entirely pruned are not computed);
* G groups of ``h`` consecutive kept rows; per group the union of its kept columns, padded to the group
  maximum ``k`` with index 0 and zero weights, plus one bias slot: ``cols`` [G, k + 1] and ``weight``
  [G, k + 1, h], each group's weight transposed (row j: kept column j's weights for the h rows) with the
  group's bias as row k;
* the gather ``x[:, cols]`` [N, G, k + 1] with the bias slots set to 1, and y[:, rows] = bmm(xg, weight)
  with xg its [G, N, k + 1] view (no copy): the GEMM adds the bias, and it writes straight into the
  token-major output [N, G·h], seen as [G, N, h] with row stride G·h (no transpose of x or y); a single
  group is one ``mm``. The other rows get the bias only.

Why this form (issue 17; FFN-1 768→3072, 128 tokens, BP + PP masks at 768-row blocks, 1 thread, CPU time,
every call after a 64 MB cache flush so that weights and activations come from memory, as in a model larger
than the cache; fraction of ideal at 50 / 75 / 90.6 %). The previous form computed yᵀ = W_g · xg_g with the
bias pre-filled into the output (baddbmm, beta 1), the gathered x read transposed, and returned yᵀ as a
transposed view: 0.95 / 0.84 / 0.58. The token-major GEMM (x-columns as the A operand, the transposed weight
as a row-major B) runs faster than its transpose with cold caches, the more so at small k (same-run A/B,
bench order: 1.19–1.22× at 768-row blocks, 1.07–1.22× at 128); the bias slot saves the pass that pre-filled
the 1.5 MB output with the bias and the GEMM's read of it (beta 0): 1.00 / 0.91 / 0.66, and 1.28–1.39×
over the previous form in the bench's order. (With the old, transposed layout the same bias column had
slowed the GEMM — 5.8× instead of 7.1× over dense at 90.6 % — because it made the weight's leading dimension
odd; here it is the inner dimension.) The same choice for single-group weights: ``mm(xs, Wᵀ)`` against
``F.linear(xs, W)`` 0.96 against 0.83 of ideal at k = 768 of 3072, 0.98 against 0.80 at 192 of 768. With 2
threads on 2 cores the gains are smaller (0.75 / 0.53 of ideal at 75 / 90.6 %, against 0.67 / 0.38).

The grouped GEMM goes to MKL's batched GEMM directly where torch links MKL (:mod:`testbed.rt3.blas_batch`):
``torch.bmm`` batches only into a contiguous [G, N, h] output and loops over the groups for the token-major
one, each GEMM parallelised on its own. Same-round A/B (FFN-1 at 768-row blocks, 128 tokens, the layer
call against dense ``F.linear``, fraction of ideal at 50 / 75 / 90.6 %; an Intel Xeon 2-vCPU VM): 2 threads
0.92 / 0.85 / 0.64 with the batch call against 0.83 / 0.73 / 0.53 with ``torch.bmm``; 1 thread 0.98 / 0.96 /
0.79 against 0.97 / 0.93 / 0.76. Results are equal (the same MKL kernels). A torch without MKL (an Arm
board's) keeps ``torch.bmm``; ``PackedLinear.blas_batch = False`` does so anywhere.

An ONNX export records the transposing form instead (xᵀ's rows gathered, W_g · xg_g + b_g batched, one
transpose at the end; the exporter folds the weight slices and transposes into initializers): onnxruntime
ran the token-major graph 3–7 % slower, and a permuted GEMM operand 1.5–1.7× slower (torch/onnxruntime 0.59
and 0.69 at 50–75 %, against 1.23 and 1.50 with the transposing graph).

The gathered activations go into a per-thread scratch buffer that every packed layer of that thread reuses
(layers run one after another, so one buffer serves them all): allocating a fresh 0.3–5 MB gather result on
every call costs page faults. Under autograd or while tracing for ONNX export the plain (allocating) gather
is used.

The inference path is written for few Python-level operations: each layer keeps its views into the scratch
(gather target, GEMM operands, bias slots) until the buffer or the token count changes, and reads its plan
as plain ints. In a model, the other layers stream their weights through the caches between two calls of a
layer, and each operation's dispatch then costs far more than when hot. Measured (FFN-1 at 768-row blocks,
1 thread, a dense 768→3072 ``F.linear`` before every call, as in the bench's rounds): the module call took
0.591 / 1.164 ms at 90.6 / 75 %, and the same gather and GEMM written inline 0.455 / 1.000 ms; with the
views kept 0.477 / 0.995 ms — 0.69 and 0.89 of ideal instead of 0.56 and 0.80. On a board's slower cores the
share of dispatch is larger still.

Compact outputs (``live_rows``): a producer whose consumer reads only some of its outputs computes only
those rows and returns them in its packed order, [N, G·h] with ``out_rows`` naming each column's row (−1:
padding); the consumer takes its columns in that order (:func:`testbed.rt3.packed_model.pack_ffn_pair`). A
block-structured mask restricted to the live rows keeps runs of rows with one column set but no common
height; such a producer may use one group per run, padded to the longest run, when that is cheaper by the
cost model below.

The group height is chosen per weight by a cost model, G·k·(h + 8) (padded multiply-adds plus the gather,
which costs about as much as 8 rows of GEMM per gathered column), over the whole weight, powers of two down to
32 rows (shorter groups run the batched GEMM far below peak) and multiples of the mask's own row period (the
gcd of the rows where the kept-column set changes, e.g. RT3's 100-row blocks).
The packing is exact for any mask (padding is zero), and fast for the structured masks of BP and PP, where
row-blocks keep equal numbers of columns.

Dense fallback: when the packed form would still do ≥ 85 % of the kept rows' dense multiply-adds
(``DENSE_FALLBACK_RATIO``; sparsity under ~15 %), the gather and the smaller GEMMs cost about what the
skipped work saves (measured, FFN-1, 1 thread: 0.98× dense at 6.25 % sparsity; at 12.5 % 1.06×, 1.06× and
0.97× in three runs; at 25 % 1.11–1.22×), so the kept rows of W ⊙ M are stored dense and run as one
``F.linear`` — a packed layer is then never slower than dense beyond measurement noise.

Tried for issue 17 and dropped (FFN-1 768→3072, 128 tokens, BP+PP masks at 50 / 75 / 90.6 %, 1 thread, CPU
time, interleaved with dense ``F.linear`` on a shared 2-core AMD EPYC (Zen 4) host at load 2–7; ratios are
medians of same-round pairs):

* pattern dedup (one gather and one GEMM per distinct column set): the bench's masks have no repeats — every
  128-row block keeps its own column set (24 distinct sets in 24 blocks of FFN-1, 6 in 6 for q/k/v/out), and
  splitting a block into shorter groups only makes the GEMMs smaller (64-row groups took 1.02–1.21× the
  128-row time; 256-row groups, which double the padded columns, 1.46×);
* a token-major output, first try (0.97–1.01× the transposing path): measured with the layer's caches
  warm, where the transposed form was as fast; with cold caches, as in a model, it is the faster one (above);
* the transpose through numpy (0.16 ms instead of 0.27 ms in isolation): no gain inside the layer (0.97–1.02×);
* oneDNN with prepacked weights (``torch.ops.mkldnn._reorder_linear_weight`` + ``_linear_pointwise``): one big
  GEMM runs 1.5× faster than MKL's on this CPU, but each call costs ~22 µs, so 24 group GEMMs are 1.1–1.9×
  slower than one ``baddbmm``; a grouped 1×1 oneDNN convolution with a prepacked weight (one call for all
  groups) was no faster (1.05–1.3× the ``baddbmm`` time); ``torch.ops.mkl._mkl_linear``'s packed weight takes
  1.46 M floats for a 128×72 weight (memory);
* fusing the bias as a weight column in the transposed layout (see above; kept in the token-major one).

What remains at high sparsity are costs that do not shrink with it: writing the [N, out] output, the gather,
and GEMMs whose inner dimension is short (k = 72 at 90.6 %), which run at about half the dense GEMM's FLOP
rate.

Kept for issue 17: a taller BP row block, chosen from a measured table. The row block is the height of the
group GEMMs (the cost model above keeps it: every block has its own column set), so taller blocks run nearer
the dense GEMM's rate, at the price of a coarser pruning structure. ``tables/row_block.json`` (``python -m
testbed.bench.row_block_table``: BP + PP masks generated at each block as in the bench, 1 thread, CPU time,
dense ``F.linear`` interleaved, 3 passes × 40 rounds; remeasured with the token-major form above on a
quiet host) gives the fraction of ideal at 64 / 128 / 256 / 512 / 768 / whole-weight blocks:

* FFN-1 768→3072: 75 % 0.55 / 0.72 / 0.85 / 0.93 / 0.95 / 0.98, 90.6 % 0.48 / 0.60 / 0.67 / 0.72 / 0.75 / 0.79;
* FFN-2 3072→768: 75 % 0.61 / 0.77 / 0.87 / 0.88 / 1.00 (768 = whole), 90.6 % 0.53 / 0.62 / 0.69 / 0.71 / 0.79;
* q/k/v/out 768→768: 75 % 0.55 / 0.66 / 0.72 / 0.71 / 0.81 (whole), 90.6 % 0.38 / 0.44 / 0.46 / 0.45 / 0.54.

With only dense and packed in a round the caches stay warmer than in ``make bench`` (which also runs the
CSR, BSR and mask-multiply forms in each round): FFN-1 at 768 reads 0.95 / 0.75 here and 0.84 / 0.57 there.
Cells of one repeat differed by up to ±10 % for the FFN shapes and up to ±30 % for 768×768 at 90 %
(0.2 ms calls) on the shared host; the table keeps the median of all same-round ratios and each pass's.
``row_block="auto"`` (:mod:`testbed.rt3.row_blocks`) picks one block per model: the smallest at which the
model's linears, weighted by their work, reach 0.8 at 75 % and 0.6 at 90 % — 768 for the DistilBERT-sized
encoder (0.91 / 0.67; 512: 0.83 / 0.599; 128: 0.71 / 0.54), which for its 768-row weights is plain column
pruning. Its accuracy cost is measured, not assumed (README, RT3 section), so the default row block is unchanged.
"""

from __future__ import annotations

import itertools
import math
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.blas_batch import GroupGemm, group_gemm

#: Gather cost per gathered column, in rows of GEMM work (fitted by eye to the measurement above).
GATHER_COST_ROWS = 8
#: Groups shorter than this run batched GEMMs far below peak (measured: 16-row groups 2–5× slower than 32).
MIN_GROUP_ROWS = 32
#: Store the kept rows dense when packing would keep at least this share of their multiply-adds.
DENSE_FALLBACK_RATIO = 0.85


class _Scratch(threading.local):
    """One float32 buffer per thread, grown to the largest gather any packed layer of that thread needs."""

    buf: Tensor | None = None

    def take(self, rows: int, cols: int) -> Tensor:
        """A contiguous [rows, cols] view of this thread's buffer (valid until the next ``take``)."""
        need = rows * cols
        if self.buf is None or self.buf.numel() < need:
            with torch.inference_mode(False):
                self.buf = torch.empty(need)
        return self.buf[:need].view(rows, cols)


_SCRATCH = _Scratch()

#: A packed layer's cached views into the scratch (see :meth:`PackedLinear._scratch_views`).
_Views = tuple[int, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, GroupGemm | None]


def _tracing() -> bool:
    """An ONNX export or JIT trace is recording this call."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


#: ``torch.jit.is_tracing()`` without its Python wrapper (see :func:`_may_use_scratch`).
_jit_tracing = torch._C._is_tracing


def _may_use_scratch(x: Tensor) -> bool:
    """The scratch gather (``out=``) is safe: a plain float32 CPU tensor, no autograd graph to keep, no
    TorchScript trace (an ONNX export with ``dynamo=False``) recording the call. Under ``torch.export`` /
    dynamo (an ONNX export with ``dynamo=True``, ``torch.compile``) the input is a fake or functional tensor
    subclass, so ``type(x) is Tensor`` excludes those.

    On the hot path of every packed layer, so only C-level checks: in a model (caches cold between two
    calls of a layer) ``torch.jit.is_tracing()`` and ``torch.onnx.is_in_onnx_export()`` cost ~45 and ~70 µs
    per call (FFN-1 at 90.6 %, 1 thread, in the bench's round: 0.67 against 0.57 ms per call with them)."""
    return (
        type(x) is Tensor
        and x.dtype is torch.float32
        and x.is_cpu
        and not (x.requires_grad and torch.is_grad_enabled())
        and not _jit_tracing()
    )


@dataclass(frozen=True)
class PackPlan:
    """The packed shape of one weight: kept rows, group height, group count, padded columns per group."""

    n_rows_kept: int
    group_rows: int
    groups: int
    cols_per_group: int
    macs_per_token: int  # padded multiply-adds per token
    nnz: int
    dense: bool = False  # kept rows stored dense (one F.linear): packing would not pay, see DENSE_FALLBACK_RATIO

    @property
    def padding_ratio(self) -> float:
        """Padded multiply-adds / kept weights (1.0 = no padding waste)."""
        return self.macs_per_token / self.nnz if self.nnz else 1.0


def _natural_block(m: Tensor) -> int:
    """Largest row period of the mask's column structure: the gcd of the rows where the kept-column set
    changes (100 for RT3's 100-row blocks); ``n`` when every row keeps the same columns."""
    n = m.shape[0]
    if n < 2:
        return n
    changes = ((m[1:] != m[:-1]).any(1).nonzero().flatten() + 1).tolist()
    return math.gcd(*changes) if changes else n


def _candidate_heights(n: int, natural: int) -> list[int]:
    """Whole weight, powers of two from 32, and multiples of the mask's natural block height."""
    hs = {n}
    h = min(n, MIN_GROUP_ROWS)
    while h < n:
        hs.add(h)
        h *= 2
    h = natural
    while h < n:
        if h >= min(n, MIN_GROUP_ROWS):
            hs.add(h)
        h *= 2
    return sorted(hs, reverse=True)


def plan(mask: Tensor, group_rows: int | None = None, every_row: bool = False) -> tuple[PackPlan, Tensor]:
    """Choose the group height for ``mask`` [out, in]; return the plan and the kept-row indices (the rows
    with any kept weight, or every row with ``every_row``)."""
    if mask.dim() != 2:
        raise BadInputError(f"mask must be 2-D, got shape {tuple(mask.shape)}")
    mask = mask.bool()
    rows = torch.arange(mask.shape[0]) if every_row else mask.any(1).nonzero().flatten()
    n = int(rows.numel())
    nnz = int(mask.sum())
    if n == 0:
        return PackPlan(0, 1, 0, 0, 0, 0), rows
    m = mask[rows]
    best: tuple[float, int, int, int] | None = None
    heights = [group_rows] if group_rows is not None else _candidate_heights(n, _natural_block(m))
    for h in heights:
        if h < 1:
            raise BadInputError(f"group_rows must be ≥ 1, got {h}")
        g = -(-n // h)
        padded = F.pad(m, (0, 0, 0, g * h - n)) if g * h != n else m
        k = int(padded.view(g, h, -1).any(1).sum(1).max())
        cost = g * k * (h + GATHER_COST_ROWS)
        if best is None or cost < best[0]:
            best = (cost, h, g, k)
    assert best is not None
    _, h, g, k = best
    in_f = int(mask.shape[1])
    if group_rows is None and g * h * k >= DENSE_FALLBACK_RATIO * n * in_f:
        return PackPlan(n, n, 1, in_f, n * in_f, nnz, dense=True), rows
    return PackPlan(n, h, g, k, g * h * k, nnz), rows


def _segments(m: Tensor) -> list[tuple[int, int]]:
    """Maximal runs [start, end) of consecutive rows of ``m`` keeping the same column set."""
    n = m.shape[0]
    cuts = [0, *((m[1:] != m[:-1]).any(1).nonzero().flatten() + 1).tolist(), n]
    return list(itertools.pairwise(cuts))


def _plan_compact(m: Tensor, group_rows: int | None) -> tuple[PackPlan, Tensor]:
    """Plan for a compact output (every row of ``m`` computed, output order free): the consecutive plan of
    :func:`plan`, or one group per run of rows with the same column set, padded to the longest run — the
    layout of a block-structured mask after rows were dropped, whose runs no longer share one height. Returns
    the plan and the slots: for each of the G·h output columns its row of ``m``, −1 for padding."""
    n = int(m.shape[0])
    nnz = int(m.sum())
    if n == 0:
        return PackPlan(0, 1, 0, 0, 0, 0), torch.zeros(0, dtype=torch.long)
    p, _ = plan(m, group_rows, every_row=True)
    slots = F.pad(torch.arange(n), (0, p.groups * p.group_rows - n), value=-1)
    if p.dense or group_rows is not None:
        return p, slots
    segs = _segments(m)
    h = max(e - s for s, e in segs)
    k = max(int(m[s:e].any(0).sum()) for s, e in segs)
    g = len(segs)
    if h >= min(n, MIN_GROUP_ROWS) and g * k * (h + GATHER_COST_ROWS) < p.groups * p.cols_per_group * (
        p.group_rows + GATHER_COST_ROWS
    ):
        slots = torch.full((g, h), -1, dtype=torch.long)
        for gi, (s, e) in enumerate(segs):
            slots[gi, : e - s] = torch.arange(s, e)
        return PackPlan(n, h, g, k, g * h * k, nnz), slots.flatten()
    return p, slots


class PackedLinear(nn.Module):
    """``F.linear(x, W ⊙ M, b)`` computed on the packed form; input [..., in], output [..., out] (contiguous)."""

    rows: Tensor
    bias: Tensor
    bias_kept: Tensor
    out_rows: Tensor
    packed: Tensor
    cols: Tensor

    def __init__(
        self,
        weight: Tensor,
        mask: Tensor,
        bias: Tensor | None,
        group_rows: int | None = None,
        *,
        live_rows: Tensor | None = None,
    ) -> None:
        """Pack ``weight ⊙ mask`` [out, in] with ``bias`` [out] (or none).

        ``live_rows`` (1-D row indices): compute only these rows and return them *compact*, in the packed
        layer's own order — output [..., len(out_rows)], column j holding row ``out_rows[j]`` (−1: a zero
        padding column). For a producer whose consumer reads only some of its outputs (see
        :func:`testbed.rt3.packed_model.pack_ffn_pair`); the consumer must take its input in that order.
        """
        super().__init__()
        if weight.shape != mask.shape:
            raise BadInputError(f"weight {tuple(weight.shape)} and mask {tuple(mask.shape)} differ")
        out_f, in_f = weight.shape
        self.in_features = int(in_f)
        self.compact = live_rows is not None
        w = (weight.detach() * mask).float()
        b = bias.detach().clone().float() if bias is not None else torch.zeros(out_f)
        self.register_buffer("bias", b)
        if live_rows is not None:
            live = torch.as_tensor(live_rows, dtype=torch.long).flatten().sort().values
            if live.numel() and (live[0] < 0 or live[-1] >= out_f or bool((live[1:] == live[:-1]).any())):
                raise BadInputError(f"live_rows must be distinct rows of 0..{out_f - 1}")
            # every live row is computed, the fully pruned ones too: their output (the bias) is read downstream
            p, slots = _plan_compact(mask.bool()[live], group_rows)
            rows = live
        else:
            p, rows = plan(mask, group_rows)
            slots = F.pad(torch.arange(p.n_rows_kept), (0, p.groups * p.group_rows - p.n_rows_kept), value=-1)
        self.plan = p
        self.all_rows = p.n_rows_kept == out_f
        # the plan's figures as plain attributes, for the hot path
        self._n_kept, self._g, self._h, self._k = p.n_rows_kept, p.groups, p.group_rows, p.cols_per_group
        self._gh = p.groups * p.group_rows
        self._cut = self._gh != p.n_rows_kept and not self.compact  # padded groups: slice the kept rows
        self._scatter = not self.all_rows and not self.compact
        self._views: _Views | None = None
        self._blas_batch = True
        self._grouped = False  # the gather + (batched) GEMM form, set below; the hot path of forward
        self.register_buffer("rows", rows.clone())
        self.register_buffer("bias_kept", b[rows].clone())
        h, g, k = p.group_rows, p.groups, p.cols_per_group
        # dense fallback, or no column pruning at all: plain GEMM on the kept rows
        self.dense_rows = p.dense or (g == 1 and k == in_f)
        if self.dense_rows:
            slots = torch.arange(p.n_rows_kept)
        #: Compact output: the weight row of each output column (−1: padding); otherwise unused.
        self.register_buffer(
            "out_rows", torch.where(slots >= 0, rows[slots.clamp(min=0)], -1) if rows.numel() else slots
        )
        self.out_features = int(self.out_rows.numel()) if self.compact else int(out_f)
        if p.n_rows_kept == 0:
            self.register_buffer("packed", torch.zeros(0, 0, 0))
            self.register_buffer("cols", torch.zeros(0, dtype=torch.long))
            return
        if self.dense_rows:
            self.register_buffer("packed", w[rows].contiguous())  # [n_kept, in], pruned weights are zero
            self.register_buffer("cols", torch.zeros(0, dtype=torch.long))
            return
        valid = (slots >= 0).unsqueeze(1)
        src = slots.clamp(min=0)
        m3 = (mask.bool()[rows][src] & valid).view(g, h, in_f)
        w3 = (w[rows][src] * valid).view(g, h, in_f)
        # Column k of every group is the bias slot: the gather fills it with ones, the weight's row k holds the
        # group's bias (0 on padded rows), so the GEMM adds the bias itself (see the module doc).
        cols = torch.zeros(g, k + 1, dtype=torch.long)
        packed = torch.zeros(g, k + 1, h)
        for gi in range(g):
            c = m3[gi].any(0).nonzero().flatten()
            cols[gi, : c.numel()] = c
            packed[gi, : c.numel()] = w3[gi][:, c].t()
        packed[:, k] = (self.bias_kept[src] * valid.squeeze(1)).view(g, h)
        self.register_buffer("packed", packed.contiguous())  # [G, k + 1, h]: each group's weight transposed + bias
        self.register_buffer("cols", cols.flatten().contiguous())  # [G·(k + 1)]; the bias slots gather column 0
        self._grouped = True

    def _scratch_views(self, n: int) -> _Views:
        """(n, scratch buffer, gather target [N, G·(k+1)], GEMM A operand, bias slots, GEMM B operand, gather
        indices, the prepared BLAS batch call or ``None``) for ``n`` tokens on this thread's scratch, kept by
        :meth:`forward` until the buffer or ``n`` changes (``.to()`` and friends drop them: :meth:`_apply`)."""
        g, k = self._g, self._k
        flat = _SCRATCH.take(n, g * (k + 1))
        xs = flat.view(n, g, k + 1)
        w, cols = self._buffers["packed"], self._buffers["cols"]
        assert w is not None and cols is not None and _SCRATCH.buf is not None
        a, b = (flat, w[0]) if g == 1 else (xs.transpose(0, 1), w)
        batch = group_gemm(flat, k + 1, w, self._gh) if g > 1 and self.blas_batch else None
        return (n, _SCRATCH.buf, flat, a, xs.select(2, k), b, cols, batch)

    def _compute(self, x2: Tensor) -> Tensor:
        """Kept-row outputs [N, n_kept] with their bias, off the hot path of :meth:`forward`: dense rows, an
        export trace, autograd (no in-place write into the gathered tensor), other dtypes or devices."""
        if self.dense_rows:
            return F.linear(x2, self.packed, self.bias_kept)
        if _tracing():
            return self._compute_for_export(x2)
        n, g, h, k = x2.shape[0], self._g, self._h, self._k
        xs = x2.index_select(1, self.cols).view(n, g, k + 1)
        xs = torch.cat([xs[:, :, :k], xs.new_ones(n, g, 1)], 2)
        if g == 1:
            y = torch.mm(xs.view(n, k + 1), self.packed[0])
        else:
            y = torch.bmm(xs.transpose(0, 1), self.packed).transpose(0, 1).reshape(n, g * h)
        return y[:, : self._n_kept] if self._cut else y

    @property
    def blas_batch(self) -> bool:
        """Whether the grouped GEMMs go through the BLAS batch call where it is available
        (:mod:`testbed.rt3.blas_batch`); ``False`` keeps ``torch.bmm``, the path of a torch without MKL (an Arm
        board's), e.g. for an A/B measurement."""
        return getattr(self, "_blas_batch", True)

    @blas_batch.setter
    def blas_batch(self, on: bool) -> None:
        self._blas_batch = bool(on)
        self._views = None

    def _apply(self, fn, recurse=True):  # type: ignore[no-untyped-def]
        self._views = None  # .to() / .float() replace the buffers the cached views point into
        return super()._apply(fn, recurse)

    def __getstate__(self) -> dict[str, object]:
        state = dict(super().__getstate__())
        state["_views"] = None  # never pickle (or deep-copy) a view of the thread's scratch
        return state

    def _compute_for_export(self, x2: Tensor) -> Tensor:
        """The graph an ONNX export records: xᵀ's rows gathered, W_g · xg_g + b_g batched, one transpose at the
        end. The exporter folds the weight slices and transposes into initializers, so the graph holds each
        group's weight [h, k] and bias; onnxruntime runs this form 3–7 % faster than the token-major one."""
        p = self.plan
        g, h, k = p.groups, p.group_rows, p.cols_per_group
        w = self.packed[:, :k].transpose(1, 2)  # [G, h, k]
        bias = self.packed[:, k]  # [G, h]
        cols = self.cols.view(g, k + 1)[:, :k].flatten()
        cut = g * h != p.n_rows_kept and not self.compact  # a Slice node copies in onnxruntime: only when needed
        if g == 1:
            y = F.linear(x2.index_select(1, cols), w[0], bias[0])
            return y[:, : p.n_rows_kept] if cut else y
        xg = x2.t().contiguous().index_select(0, cols).view(g, k, -1)  # [G, k, N]
        y = torch.baddbmm(bias.unsqueeze(2), w, xg).view(g * h, -1)  # [G·h, N]
        return (y[: p.n_rows_kept] if cut else y).t()

    def forward(self, x: Tensor) -> Tensor:
        """Output [..., out]."""
        shape = x.shape
        # not -1: a compact producer may hand over 0 columns
        x2 = x if len(shape) == 2 else x.reshape(math.prod(shape[:-1]), self.in_features)
        if self._grouped and _may_use_scratch(x2):
            # The inference path, inline and in few Python-level operations. In a model the other layers
            # stream their weights through the caches between two calls of a layer, and each operation's
            # dispatch then costs far more than when hot. Measured (FFN-1 at 768-row blocks, 90.6 %, 1
            # thread, a dense 768→3072 F.linear before every call): 0.591 → 0.477 ms with the scratch views
            # kept instead of rebuilt per call, and in another run 0.544 → 0.498 ms with this path inline
            # instead of in helper methods (0.68 → 0.74 of ideal); on a board's slower cores the share of
            # dispatch is larger still.
            n = x2.shape[0]
            v = self._views
            if v is None or v[0] != n or v[1] is not _SCRATCH.buf:
                v = self._views = self._scratch_views(n)
            torch.index_select(x2, 1, v[6], out=v[2])  # the gather, into this thread's scratch
            v[4].fill_(1.0)  # the bias slots
            if self._g == 1:
                y = torch.mm(v[3], v[5])  # [N, h]
            else:
                # The batched GEMM writes straight into the token-major output [N, G·h], seen as [G, N, h]
                # with row stride G·h: no transpose or copy of the result, and no bias pass (beta = 0). MKL's
                # batch call where torch links it (torch.bmm would loop over the groups for this output).
                y = torch.empty(n, self._gh)
                if v[7] is not None:
                    v[7](y)
                else:
                    torch.bmm(v[3], v[5], out=y.as_strided((self._g, n, self._h), (self._h, self._gh, 1)))
            if self._cut:
                y = y[:, : self._n_kept]
        elif self._n_kept == 0:
            lead = shape[:-1]
            return self.bias_kept.expand(*lead, 0) if self.compact else self.bias.expand(*lead, self.out_features)
        else:
            y = self._compute(x2)
        if self._scatter:
            full = self.bias.expand(x2.shape[0], self.out_features).clone()
            y = full.index_copy(1, self.rows, y)
        return y if len(shape) == 2 else y.reshape(*shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        p = self.plan
        form = "dense" if p.dense else f"groups={p.groups}x{p.group_rows}x{p.cols_per_group}"
        out = f"{self.out_features} compact" if self.compact else str(self.out_features)
        return f"in={self.in_features}, out={out}, rows_kept={p.n_rows_kept}, {form}, padding={p.padding_ratio:.2f}"

    @property
    def nbytes(self) -> int:
        """Bytes held by this module's tensors."""
        return sum(b.numel() * b.element_size() for b in self.buffers())
