"""Grouped GEMMs into a strided output through the BLAS that torch itself links (MKL's ``cblas_sgemm_batch``).

A packed layer multiplies G gathered activation blocks by G weight blocks and writes each product into its own
column range of one token-major output [N, G·h] (:mod:`testbed.rt3.packing`). ``torch.bmm`` sends a batch to
MKL's batched GEMM only when the output is contiguous as [G, N, h]; for the token-major output (row stride
G·h) it loops over the G matrices, and each GEMM is then parallelised on its own. With 2 threads on 2 cores
that loop ran 1.3–1.4× slower than the batched call (FFN-1 768→3072 at 768-row blocks, 128 tokens: 0.248
against 0.180 ms at 73 kept columns per group, 0.562 against 0.462 ms at 193), while writing the contiguous
[G, N, h] result and copying it into the token-major layout cost more than the loop (0.271 ms). MKL's batched
GEMM itself takes any output row stride, so this module calls it directly, with the same thread count torch
uses (``torch.set_num_threads`` sets MKL's).

:func:`group_gemm` returns ``None`` — and the caller keeps ``torch.bmm`` — when torch does not link MKL
(aarch64 wheels use OpenBLAS / Arm Compute Library, macOS Accelerate), when the symbol is not exported, when
``TESTBED_BLAS_BATCH=0`` is set, or when a one-time check of the call against ``torch.bmm`` on a small strided
problem fails (a wrong result is never returned; a warning says why the fallback is used). The result is
bitwise equal to ``torch.bmm``'s loop in the runs measured here (same MKL kernels).

Failure modes: a shape beyond 32-bit BLAS integers, or tensors that are not float32, contiguous and on the
CPU, get ``None`` from :func:`group_gemm` (the caller falls back); an output of another shape than the one a
:class:`GroupGemm` was prepared for is refused with ``ValueError`` (its dtype and contiguity are the
caller's to guarantee: they are not checked on the hot path).
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from pathlib import Path

import torch
from torch import Tensor

_LOG = logging.getLogger(__name__)

#: Set to ``0`` to keep torch's own ``bmm`` for the grouped GEMMs (e.g. for an A/B measurement).
ENV_SWITCH = "TESTBED_BLAS_BATCH"

_ROW_MAJOR, _NO_TRANS = 101, 111  # CBLAS_LAYOUT / CBLAS_TRANSPOSE codes
_INT_MAX = 2**31 - 1
_I = ctypes.c_int  # LP64 MKL_INT: the unsuffixed symbols (the ILP64 ones end in _64)


def _library_function() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """``cblas_sgemm_batch`` from torch's own ``libtorch_cpu`` (MKL linked in), or ``None``."""
    path = Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"
    if not torch.backends.mkl.is_available() or not path.is_file():
        return None
    try:
        fn = ctypes.CDLL(str(path)).cblas_sgemm_batch
    except (OSError, AttributeError):
        return None
    fn.restype = None  # no argtypes: GroupGemm passes every argument prebuilt as its C type
    return fn


class GroupGemm:
    """C_g = A_g · B_g for g < G, float32, row-major, in one ``cblas_sgemm_batch`` call.

    ``a`` [M, ≥ G·a_cols] holds A_g [M, a_cols] at columns g·a_cols (row stride ``a.stride(0)``); ``b``
    [G, K, n_cols] holds B_g contiguous (K = a_cols); the output given to :meth:`__call__`, a contiguous
    [M, ``out_width``] tensor (``out_width`` ≥ G·n_cols), receives C_g at columns g·n_cols. The tensors are
    kept referenced, so the pointers stay valid. One object serves one thread at a time (the output pointers
    are written into it per call).
    """

    def __init__(self, fn: ctypes._CFuncPtr, a: Tensor, a_cols: int, b: Tensor, out_width: int) -> None:  # type: ignore[name-defined]
        groups, k, n_cols = (int(s) for s in b.shape)
        if k != a_cols:
            raise ValueError(f"A blocks have {a_cols} columns, B blocks {k} rows")
        if out_width < groups * n_cols:
            raise ValueError(f"an output {out_width} wide cannot hold {groups} blocks of {n_cols} columns")
        m = int(a.shape[0])
        self.out_shape = torch.Size((m, out_width))
        self._keep = (a, b)
        self._fn = fn
        size_f = 4
        a_ptr, b_ptr = a.data_ptr(), b.data_ptr()
        a_blocks = (ctypes.c_void_p * groups)(*[a_ptr + g * a_cols * size_f for g in range(groups)])
        b_blocks = (ctypes.c_void_p * groups)(*[b_ptr + g * k * n_cols * size_f for g in range(groups)])
        self._c = (ctypes.c_void_p * groups)()
        self._c_offsets = [g * n_cols * size_f for g in range(groups)]

        def one(v: int) -> ctypes.Array[ctypes.c_int]:
            return (_I * 1)(v)

        # every argument prebuilt as its C type: no argtypes conversion per call (2 of the call's ~5 µs)
        self._args = (
            _I(_ROW_MAJOR),
            one(_NO_TRANS),
            one(_NO_TRANS),
            one(m),
            one(n_cols),
            one(k),
            (ctypes.c_float * 1)(1.0),
            a_blocks,
            one(int(a.stride(0))),
            b_blocks,
            one(n_cols),
            (ctypes.c_float * 1)(0.0),
            self._c,
            one(out_width),
            _I(1),  # one group of G problems of the same shape
            one(groups),
        )

    def __call__(self, out: Tensor) -> None:
        """Write every C_g into ``out`` (contiguous float32 of ``out_shape``)."""
        if out.shape != self.out_shape:
            raise ValueError(f"output {tuple(out.shape)} is not {tuple(self.out_shape)}")
        base = out.data_ptr()
        self._c[:] = [base + o for o in self._c_offsets]
        self._fn(*self._args)


def _fits(*values: int) -> bool:
    return all(0 <= v <= _INT_MAX for v in values)


@functools.cache
def _checked_function() -> ctypes._CFuncPtr | None:  # type: ignore[name-defined]
    """The BLAS call, after one check against ``torch.bmm`` on a small strided problem; ``None`` if unusable."""
    if os.environ.get(ENV_SWITCH, "1").strip() == "0":
        return None
    fn = _library_function()
    if fn is None:
        return None
    gen = torch.Generator().manual_seed(0)
    groups, m, k, n_cols = 3, 5, 7, 9
    a = torch.randn(m, groups * k + 3, generator=gen)[:, : groups * k]  # a row stride beyond the blocks
    b = torch.randn(groups, k, n_cols, generator=gen)
    out = torch.full((m, groups * n_cols + 4), float("nan"))  # written at a row stride beyond the blocks
    GroupGemm(fn, a, k, b, int(out.shape[1]))(out)
    want = torch.bmm(a.reshape(m, groups, k).transpose(0, 1), b).transpose(0, 1).reshape(m, groups * n_cols)
    got = out[:, : groups * n_cols]
    untouched = bool(torch.isnan(out[:, groups * n_cols :]).all())
    if not untouched or not torch.allclose(got, want, rtol=1e-5, atol=1e-5):
        _LOG.warning("cblas_sgemm_batch disagrees with torch.bmm; grouped GEMMs use torch.bmm")
        return None
    return fn


def available() -> bool:
    """Whether the BLAS batch call is found and passed its check (the first call runs the check)."""
    return _checked_function() is not None


def group_gemm(a: Tensor, a_cols: int, b: Tensor, out_width: int | None = None) -> GroupGemm | None:
    """A prepared :class:`GroupGemm` for ``a``'s G column blocks of ``a_cols`` times ``b`` [G, a_cols, n],
    into outputs [M, ``out_width``] (default G·n), or ``None`` where the BLAS call is not available or the
    operands do not suit it (see the module doc)."""
    fn = _checked_function()
    if fn is None or b.dim() != 3:
        return None
    for t in (a, b):
        if t.dtype != torch.float32 or not t.is_cpu:
            return None
    if not b.is_contiguous() or a.dim() != 2 or a.stride(1) != 1 or a.shape[1] < b.shape[0] * a_cols:
        return None
    width = int(b.shape[0] * b.shape[2]) if out_width is None else int(out_width)
    if not _fits(int(a.shape[0]), int(a.stride(0)), int(b.shape[1]), width) or width < b.shape[0] * b.shape[2]:
        return None
    return GroupGemm(fn, a, a_cols, b, width)
