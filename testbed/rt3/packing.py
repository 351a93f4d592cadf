"""Packing a masked weight into the execution form whose latency falls with its sparsity on a CPU.

Measured here before choosing (768→3072 FFN-1, 128 tokens, 1 thread, block-column masks; ratios to dense
``F.linear`` at sparsity 0.5 / 0.75 / 0.9, ideal 2 / 4 / 10): torch CSR ``sparse.mm`` 0.4 / 0.8 / 1.6×, BSR
(32×32) 0.2–0.3×, RT3's mask-multiply 0.7×; grouped gather + batched dense GEMM with groups of 64 rows
1.4 / 2.6 / 5.7×, 128 rows 1.7 / 3.2 / 7.3×, 256 rows 1.8 / 3.5 / 8.0×; 16-row groups were 2–5× slower than
32-row ones. So a pruned weight W ⊙ M [out, in] is stored as

* ``rows``: the output rows with any kept weight (rows that are entirely pruned are not computed);
* G groups of ``h`` consecutive kept rows; per group the union of its kept columns, padded to the group
  maximum ``k`` with index 0 and zero weights: ``cols`` [G, k] and ``weight`` [G, h, k];
* yᵀ[rows] = baddbmm(bias[rows], weight, gather(xᵀ, cols)); the other rows get the bias only. The result is
  returned as a transposed view, so chained packed layers skip the transposes (feature-major hand-off).

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


def _may_use_scratch(x: Tensor) -> bool:
    """The scratch gather (``out=``) is safe: no autograd graph to keep, no ONNX/JIT trace to record."""
    if x.dtype != torch.float32 or x.device.type != "cpu":
        return False
    if torch.is_grad_enabled() and x.requires_grad:
        return False
    return not (torch.jit.is_tracing() or torch.onnx.is_in_onnx_export())


@dataclass(frozen=True)
class PackPlan:
    """The packed shape of one weight: kept rows, group height, group count, padded columns per group."""

    n_rows_kept: int
    group_rows: int
    groups: int
    cols_per_group: int
    macs_per_token: int  # padded multiply-adds per token
    nnz: int

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
        self.dense_rows = g == 1 and k == in_f  # no column pruning at all: plain GEMM on the kept rows
        if p.n_rows_kept == 0:
            self.register_buffer("packed", torch.zeros(0, 0, 0))
            self.register_buffer("cols", torch.zeros(0, dtype=torch.long))
            self.register_buffer("bias_rows", torch.zeros(0, 0, 1))
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
        self.register_buffer("bias_rows", F.pad(self.bias_kept, (0, g * h - p.n_rows_kept)).view(g, h, 1).clone())
        if self.dense_rows:
            self.register_buffer("packed", packed[0, : p.n_rows_kept].contiguous())  # [n_kept, in]
            self.register_buffer("cols", torch.zeros(0, dtype=torch.long))
        else:
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
        # Feature-major: gather rows of xᵀ, one batched GEMM with the bias fused, and hand back yᵀ's
        # transpose as a view. A following PackedLinear then gets its xᵀ for free (no copy).
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
        return (
            f"in={self.in_features}, out={self.out_features}, rows_kept={p.n_rows_kept}, "
            f"groups={p.groups}x{p.group_rows}x{p.cols_per_group}, padding={p.padding_ratio:.2f}"
        )

    @property
    def nbytes(self) -> int:
        """Bytes held by this module's tensors."""
        return sum(b.numel() * b.element_size() for b in self.buffers())
