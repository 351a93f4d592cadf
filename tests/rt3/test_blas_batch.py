"""The BLAS batch call for grouped GEMMs: equal to torch.bmm for any shape and output stride, writes nothing
outside its blocks, refuses operands it cannot take, and a packed layer gives the same result either way."""

from __future__ import annotations

import threading

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.rt3 import blas_batch
from testbed.rt3.packing import PackedLinear

needs_blas = pytest.mark.skipif(
    blas_batch._library_function() is None, reason="this torch does not link MKL's cblas_sgemm_batch"
)


def _reference(a: torch.Tensor, a_cols: int, b: torch.Tensor) -> torch.Tensor:
    g, m = b.shape[0], a.shape[0]
    blocks = a[:, : g * a_cols].reshape(m, g, a_cols).transpose(0, 1)
    return torch.bmm(blocks, b).transpose(0, 1).reshape(m, g * b.shape[2])


@needs_blas
@settings(max_examples=60, deadline=None)
@given(
    groups=st.integers(1, 5),
    m=st.integers(1, 40),
    k=st.integers(1, 33),
    n_cols=st.integers(1, 40),
    a_extra=st.integers(0, 5),
    out_extra=st.integers(0, 5),
    seed=st.integers(0, 2**16),
)
def test_group_gemm_equals_bmm_into_a_strided_output(
    groups: int, m: int, k: int, n_cols: int, a_extra: int, out_extra: int, seed: int
) -> None:
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, groups * k + a_extra, generator=gen)
    b = torch.randn(groups, k, n_cols, generator=gen)
    out = torch.full((m, groups * n_cols + out_extra), float("nan"))
    call = blas_batch.group_gemm(a, k, b, out_width=out.shape[1])
    assert call is not None
    call(out)
    assert torch.allclose(out[:, : groups * n_cols], _reference(a, k, b), rtol=1e-5, atol=1e-4)
    assert bool(torch.isnan(out[:, groups * n_cols :]).all())  # nothing written past the blocks


@needs_blas
def test_group_gemm_refuses_operands_it_cannot_take() -> None:
    a, b = torch.randn(8, 12), torch.randn(3, 4, 5)
    assert blas_batch.group_gemm(a.double(), 4, b.double()) is None
    assert blas_batch.group_gemm(a, 4, b.transpose(1, 2).contiguous().transpose(1, 2)) is None  # B not contiguous
    assert blas_batch.group_gemm(a.t().contiguous().t(), 4, b) is None  # A column-major
    assert blas_batch.group_gemm(a[:, :10], 4, b) is None  # A narrower than its 3 blocks
    call = blas_batch.group_gemm(a, 4, b)
    assert call is not None
    with pytest.raises(ValueError, match="is not"):
        call(torch.empty(8, 14))
    assert blas_batch.group_gemm(a, 4, b, out_width=14) is None  # narrower than its 3 blocks of 5


def test_env_switch_keeps_torch_bmm(monkeypatch: pytest.MonkeyPatch) -> None:
    blas_batch._checked_function.cache_clear()
    monkeypatch.setenv(blas_batch.ENV_SWITCH, "0")
    try:
        assert blas_batch.group_gemm(torch.randn(8, 12), 4, torch.randn(3, 4, 5)) is None
    finally:
        monkeypatch.delenv(blas_batch.ENV_SWITCH)
        blas_batch._checked_function.cache_clear()


def _grouped_layer(seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    w, b = torch.randn(256, 96, generator=g), torch.randn(256, generator=g)
    m = torch.zeros(256, 96, dtype=torch.bool)
    for r in range(0, 256, 64):
        m[r : r + 64, torch.randperm(96, generator=g)[:24]] = True
    return w, b, m


def test_packed_layer_gives_the_same_result_with_and_without_the_blas_call() -> None:
    w, b, m = _grouped_layer(0)
    p = PackedLinear(w, m, b)
    assert p.plan.groups > 1
    x = torch.randn(2, 37, 96)
    with torch.inference_mode():
        y_blas = p(x)
        p.blas_batch = False  # drops the cached views, so the next call takes torch.bmm
        assert p._views is None
        y_bmm = p(x)
        assert p._views is not None and p._views[7] is None
    assert torch.allclose(y_blas, y_bmm, rtol=1e-6, atol=1e-5)
    assert torch.allclose(y_bmm, torch.nn.functional.linear(x, w * m, b), rtol=1e-4, atol=1e-4)


@needs_blas
def test_packed_layer_uses_the_blas_call_from_several_threads() -> None:
    w, b, m = _grouped_layer(1)
    p = PackedLinear(w, m, b)
    xs = [torch.randn(20 + i, 96) for i in range(4)]
    want_all = [torch.nn.functional.linear(x, w * m, b) for x in xs]
    errors: list[str] = []

    def run(i: int) -> None:
        with torch.inference_mode():
            for _ in range(20):
                y = p(xs[i])
                if not torch.allclose(y, want_all[i], rtol=1e-4, atol=1e-4):
                    errors.append(f"thread {i}")
                    return

    threads = [threading.Thread(target=run, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert p._views is not None and p._views[7] is not None
