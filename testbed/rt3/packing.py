"""Packing a masked weight into the execution form whose latency falls with its sparsity on a CPU.

Measured here before choosing (768→3072 FFN-1, 128 tokens, 1 thread, block-column masks; ratios to dense
``F.linear`` at sparsity 0.5 / 0.75 / 0.9, ideal 2 / 4 / 10): torch CSR ``sparse.mm`` 0.4 / 0.8 / 1.6×, BSR
(32×32) 0.2–0.3×, RT3's mask-multiply 0.7×; grouped gather + batched dense GEMM with groups of 64 rows
1.4 / 2.6 / 5.7×, 128 rows 1.7 / 3.2 / 7.3×, 256 rows 1.8 / 3.5 / 8.0×; 16-row groups were 2–5× slower than
32-row ones. So a pruned weight W ⊙ M [out, in] is stored as

* ``rows``: the output rows with any kept weight (rows that are entirely pruned are not computed);
* G groups of ``h`` consecutive kept rows; per group the union of its kept columns, padded to the group
  maximum ``k`` with index 0 and zero weights: ``cols`` [G, k] and ``weight`` [G, h, k];
* yᵀ[rows] = baddbmm(bias[rows], weight, xg) with xg [G, k, N] the gathered inputs; the other rows get the
  bias only. The result is returned as a transposed view, so chained packed layers skip the transposes
  (feature-major hand-off). A token-major input x [N, in] is gathered along its columns (``x[:, cols]``,
  [N, G·k]) and handed to the GEMM as a permuted view (strides k, 1, G·k), which BLAS reads transposed: no
  transpose of x at all (issue 17, two same-run A/B runs against the previous form, which transposed x —
  0.2–0.27 ms cold — and gathered rows of xᵀ: FFN-1 at 90.6 % 6.00→6.60× and 6.58→6.69× over dense, at 75 %
  2.85→2.96× and 2.81→2.85×, at 50 % 1.70→1.68× and 1.66→1.64×). A feature-major input (a previous packed
  layer's output) has its xᵀ rows gathered. An ONNX export keeps the transpose-then-gather form: in
  onnxruntime the permuted operand made the packed encoder 1.5–1.7× slower at 50–75 % (measured in
  ``make bench``: torch/onnxruntime 0.59 and 0.69, against 1.23 and 1.50 with the transposing graph).

The gathered activations go into a per-thread scratch buffer that every packed layer of that thread reuses
(layers run one after another, so one buffer serves them all): allocating a fresh 0.3–5 MB gather result on
every call costs page faults. Under autograd or while tracing for ONNX export the plain (allocating) gather
is used. Tried and dropped: folding the bias into the GEMM (a row of ones appended to xᵀ, the bias as a
last weight column): the odd leading dimension k + 1 slowed the batched GEMM (measured, FFN-1 at 90.6 %:
5.8× instead of 7.1× over dense; q_lin: 2.6× instead of 4.0×).

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
* a token-major output (the gathered x-columns as the GEMM's A operand, the GEMM writing into [N, G, h] so
  that the result is contiguous [N, out]): the strided output costs what the saved transpose saves
  (0.97–1.01× the transposing path); the transposed-operand form above keeps the output contiguous;
* the transpose through numpy (0.16 ms instead of 0.27 ms in isolation): no gain inside the layer (0.97–1.02×);
* oneDNN with prepacked weights (``torch.ops.mkldnn._reorder_linear_weight`` + ``_linear_pointwise``): one big
  GEMM runs 1.5× faster than MKL's on this CPU, but each call costs ~22 µs, so 24 group GEMMs are 1.1–1.9×
  slower than one ``baddbmm``; a grouped 1×1 oneDNN convolution with a prepacked weight (one call for all
  groups) was no faster (1.05–1.3× the ``baddbmm`` time); ``torch.ops.mkl._mkl_linear``'s packed weight takes
  1.46 M floats for a 128×72 weight (memory);
* fusing the bias as a weight column (see above).

What remains is the batched GEMM itself: with the caches cold (dense ran just before, as in any model) the
group GEMMs reach 75–80 % of the dense GEMM's FLOP rate, and the gather adds 15–20 % on top.

Kept for issue 17: a taller BP row block, chosen from a measured table. The row block is the height of the
group GEMMs (the cost model above keeps it: every block has its own column set), so taller blocks run nearer
the dense GEMM's rate, at the price of a coarser pruning structure. ``tables/row_block.json`` (``python -m
testbed.bench.row_block_table``: BP + PP masks generated at each block as in the bench, 1 thread, CPU time,
dense ``F.linear`` interleaved, 3 passes × 40 rounds, host load 1.4–2.6) gives the fraction of ideal at
64 / 128 / 256 / 512 / 768 / whole-weight blocks:

* FFN-1 768→3072: 75 % 0.59 / 0.69 / 0.76 / 0.80 / 0.81 / 0.84, 90.6 % 0.50 / 0.56 / 0.61 / 0.64 / 0.64 / 0.66;
* FFN-2 3072→768: 75 % 0.53 / 0.64 / 0.72 / 0.73 / 0.85 (768 = whole), 90.6 % 0.43 / 0.50 / 0.53 / 0.53 / 0.65;
* q/k/v/out 768→768: 75 % 0.50 / 0.55 / 0.62 / 0.61 / 0.76 (whole), 90.6 % 0.38 / 0.42 / 0.48 / 0.48 / 0.58.

Cells of one repeat differed by up to ±10 % for the FFN shapes and up to ±30 % for 768×768 at 90 %
(0.2 ms calls) on the shared host; the table keeps the median of all same-round ratios and each pass's.
``row_block="auto"`` (:mod:`testbed.rt3.row_blocks`) picks one block per model: the smallest at which the
model's linears, weighted by their work, reach 0.8 at 75 % and 0.6 at 90 % — 768 for the DistilBERT-sized
encoder (0.80 / 0.62; 128: 0.62 / 0.49), which for its 768-row weights is plain column pruning. Its accuracy
cost is measured, not assumed (README, RT3 section), so the default row block is unchanged.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from devices.errors import BadInputError

#: Gather cost per gathered column, in rows of GEMM work (fitted by eye to the measurement above).
GATHER_COST_ROWS = 8
#: Groups shorter than this run batched GEMMs far below peak (measured: 16-row groups 2–5× slower than 32).
MIN_GROUP_ROWS = 32
#: Below this many tokens the x-side gather (no transpose) is faster than gathering xᵀ.
SMALL_BATCH_TOKENS = 8
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


def _tracing() -> bool:
    """An ONNX export or JIT trace is recording this call."""
    return torch.jit.is_tracing() or torch.onnx.is_in_onnx_export()


def _may_use_scratch(x: Tensor) -> bool:
    """The scratch gather (``out=``) is safe: no autograd graph to keep, no ONNX/JIT trace to record."""
    if x.dtype != torch.float32 or x.device.type != "cpu":
        return False
    if torch.is_grad_enabled() and x.requires_grad:
        return False
    return not _tracing()


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


def plan(mask: Tensor, group_rows: int | None = None) -> tuple[PackPlan, Tensor]:
    """Choose the group height for ``mask`` [out, in]; return the plan and the kept-row indices."""
    if mask.dim() != 2:
        raise BadInputError(f"mask must be 2-D, got shape {tuple(mask.shape)}")
    mask = mask.bool()
    rows = mask.any(1).nonzero().flatten()
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


class PackedLinear(nn.Module):
    """``F.linear(x, W ⊙ M, b)`` computed on the packed form; input [..., in], output [..., out]."""

    rows: Tensor
    bias: Tensor
    bias_kept: Tensor
    bias_rows: Tensor
    packed: Tensor
    cols: Tensor

    def __init__(self, weight: Tensor, mask: Tensor, bias: Tensor | None, group_rows: int | None = None) -> None:
        super().__init__()
        if weight.shape != mask.shape:
            raise BadInputError(f"weight {tuple(weight.shape)} and mask {tuple(mask.shape)} differ")
        out_f, in_f = weight.shape
        self.in_features = int(in_f)
        self.out_features = int(out_f)
        w = (weight.detach() * mask).float()
        p, rows = plan(mask, group_rows)
        self.plan = p
        self.all_rows = p.n_rows_kept == out_f
        self.register_buffer("rows", rows.clone())
        b = bias.detach().clone().float() if bias is not None else torch.zeros(out_f)
        self.register_buffer("bias", b)
        self.register_buffer("bias_kept", b[rows].clone())
        h, g, k = p.group_rows, p.groups, p.cols_per_group
        # dense fallback, or no column pruning at all: plain GEMM on the kept rows
        self.dense_rows = p.dense or (g == 1 and k == in_f)
        if p.n_rows_kept == 0:
            self.register_buffer("packed", torch.zeros(0, 0, 0))
            self.register_buffer("cols", torch.zeros(0, dtype=torch.long))
            self.register_buffer("bias_rows", torch.zeros(0, 0, 1))
            return
        self.register_buffer("bias_rows", torch.zeros(0, 0, 1))
        if self.dense_rows:
            self.register_buffer("packed", w[rows].contiguous())  # [n_kept, in], pruned weights are zero
            self.register_buffer("cols", torch.zeros(0, dtype=torch.long))
            return
        m = mask.bool()[rows]
        wr = w[rows]
        pad = g * h - p.n_rows_kept
        if pad:
            m = F.pad(m, (0, 0, 0, pad))
            wr = F.pad(wr, (0, 0, 0, pad))
        m3, w3 = m.view(g, h, in_f), wr.view(g, h, in_f)
        cols = torch.zeros(g, k, dtype=torch.long)
        packed = torch.zeros(g, h, k)
        for gi in range(g):
            c = m3[gi].any(0).nonzero().flatten()
            cols[gi, : c.numel()] = c
            packed[gi, :, : c.numel()] = w3[gi][:, c]
        self.bias_rows = F.pad(self.bias_kept, (0, g * h - p.n_rows_kept)).view(g, h, 1).clone()
        self.register_buffer("packed", packed.contiguous())  # [G, h, k]
        self.register_buffer("cols", cols.flatten().contiguous())  # [G·k]

    def _compute(self, x2: Tensor) -> Tensor:
        """Kept-row outputs [N, n_kept] with their bias (possibly a transposed view, see ``forward``)."""
        p = self.plan
        if self.dense_rows:
            return F.linear(x2, self.packed, self.bias_kept)
        n = x2.shape[0]
        g, h, k = p.groups, p.group_rows, p.cols_per_group
        if g == 1:
            return F.linear(x2.index_select(1, self.cols), self.packed[0], self.bias_kept)
        xt = x2.t()
        if n < SMALL_BATCH_TOKENS and not xt.is_contiguous():
            xg = x2.index_select(1, self.cols).view(n, g, k).transpose(0, 1)  # [G, N, k]
            y = torch.baddbmm(self.bias_rows.transpose(1, 2), xg, self.packed.transpose(1, 2))  # [G, N, h]
            y = y.transpose(0, 1).reshape(n, g * h)
            return y[:, : p.n_rows_kept] if g * h != p.n_rows_kept else y
        # One batched GEMM yᵀ = W_g · xg_g with the bias fused, handed back as a transposed view of yᵀ, so a
        # following PackedLinear gets its xᵀ for free (no copy).
        if not xt.is_contiguous() and not _tracing():
            # Token-major input: gather columns of x (no transpose of x); the GEMM reads them transposed.
            # Not in an exported graph: onnxruntime materialises the permuted operand (see the module doc).
            if _may_use_scratch(x2):
                xs = torch.index_select(x2, 1, self.cols, out=_SCRATCH.take(n, g * k))
            else:
                xs = x2.index_select(1, self.cols)
            xg = xs.view(n, g, k).permute(1, 2, 0)  # [G, k, N], strides (k, 1, G·k)
            y = torch.baddbmm(self.bias_rows, self.packed, xg).view(g * h, -1)  # [G·h, N]
            return (y[: p.n_rows_kept] if g * h != p.n_rows_kept else y).t()
        # Feature-major input (xᵀ contiguous), or an export: gather rows of xᵀ.
        xt = xt.contiguous()
        if _may_use_scratch(xt):
            xg = torch.index_select(xt, 0, self.cols, out=_SCRATCH.take(g * k, n)).view(g, k, n)  # [G, k, N]
        else:
            xg = xt.index_select(0, self.cols).view(g, k, n)
        y = torch.baddbmm(self.bias_rows, self.packed, xg).view(g * h, -1)  # [G·h, N]
        return (y[: p.n_rows_kept] if g * h != p.n_rows_kept else y).t()

    def forward(self, x: Tensor) -> Tensor:
        """Output [..., out]. For ≥ 8 tokens it may be a transposed (feature-major) view of contiguous
        memory; every torch op accepts it, and a following PackedLinear reads it without a copy."""
        lead = x.shape[:-1]
        x2 = x.reshape(-1, self.in_features)
        if self.plan.n_rows_kept == 0:
            return self.bias.expand(*lead, self.out_features)
        y = self._compute(x2)
        if not self.all_rows:
            full = self.bias.expand(x2.shape[0], self.out_features).clone()
            y = full.index_copy(1, self.rows, y)
        return y.reshape(*lead, self.out_features)

    def extra_repr(self) -> str:
        p = self.plan
        form = "dense" if p.dense else f"groups={p.groups}x{p.group_rows}x{p.cols_per_group}"
        return (
            f"in={self.in_features}, out={self.out_features}, rows_kept={p.n_rows_kept}, "
            f"{form}, padding={p.padding_ratio:.2f}"
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by this module's tensors."""
        return sum(b.numel() * b.element_size() for b in self.buffers())
