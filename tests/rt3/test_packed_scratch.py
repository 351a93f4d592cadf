"""The per-thread gather scratch of packed layers: never aliased by a result, per thread, off under autograd;
and the resident-memory accounting of K sets over one backbone."""

from __future__ import annotations

import threading

import pytest
import torch
import torch.nn.functional as F

from testbed.rt3.packing import _SCRATCH, PackedLinear
from testbed.rt3.runtime import ReconfigurableModel, unique_tensor_bytes

from .conftest import Pipeline


def _blockcol(out: int, inn: int, keep: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    m = torch.zeros(out, inn, dtype=torch.bool)
    for r in range(0, out, 32):
        m[r : r + 32, torch.randperm(inn, generator=g)[:keep]] = True
    return m


Chain = tuple[list[PackedLinear], list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]]


@pytest.fixture(scope="module")
def chain() -> Chain:
    torch.manual_seed(0)
    shapes = [(128, 64), (64, 128), (96, 64)]
    layers, ref = [], []
    for i, (o, n) in enumerate(shapes):
        w, b, m = torch.randn(o, n), torch.randn(o), _blockcol(o, n, n // 4, i)
        layers.append(PackedLinear(w, m, b))
        ref.append((w, b, m))
    return layers, ref


def test_chained_layers_never_see_each_others_scratch(chain: Chain) -> None:
    layers, ref = chain
    x = torch.randn(40, 64)
    with torch.inference_mode():
        h1 = layers[0](x)
        h1_copy = h1.clone()
        h2 = layers[1](h1)  # reuses the scratch that held layer 0's gather
        h3 = layers[2](h2)
        assert torch.equal(h1, h1_copy)  # a result is never the scratch buffer
    assert _SCRATCH.buf is not None and h3.data_ptr() != _SCRATCH.buf.data_ptr()
    e = F.linear(x, ref[0][0] * ref[0][2], ref[0][1])
    for w, b, m in ref[1:]:
        e = F.linear(e, w * m, b)
    assert torch.allclose(h3, e, atol=1e-3, rtol=1e-4)


def test_threads_run_packed_layers_concurrently(chain: Chain) -> None:
    layers, _ = chain
    xs = [torch.randn(33 + i, 64) for i in range(4)]
    with torch.inference_mode():
        expected = [layers[1](layers[0](x)).clone() for x in xs]
    bad: list[int] = []

    def work(i: int) -> None:
        with torch.inference_mode():
            for _ in range(30):
                if not torch.allclose(layers[1](layers[0](xs[i])), expected[i], atol=1e-5):
                    bad.append(i)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad


def test_autograd_still_flows_through_a_packed_layer(chain: Chain) -> None:
    layers, ref = chain
    x = torch.randn(16, 64, requires_grad=True)
    layers[0](x).sum().backward()
    w, _, m = ref[0]
    assert x.grad is not None and torch.allclose(x.grad, (w * m).sum(0).expand(16, -1), atol=1e-4)


def test_resident_memory_counts_the_shared_backbone_once(pipeline: Pipeline) -> None:
    rm = ReconfigurableModel.from_backbone(pipeline.model, [s.masks for s in pipeline.sets])
    pe: torch.Tensor = pipeline.model.pe  # type: ignore[assignment]
    pe_bytes = pe.numel() * pe.element_size()
    shared = unique_tensor_bytes([pipeline.model.encoder]) + pe_bytes
    norms = sum(
        p.numel() * 4
        for layer in pipeline.model.transformer_encoder.layers
        for norm in (layer.norm1, layer.norm2)
        for p in norm.parameters()
    )
    assert rm.resident_bytes() == sum(rm.memory_per_set_bytes()) + shared + norms
    assert rm.resident_bytes() < sum(unique_tensor_bytes([v]) for v in rm.variants)  # not K backbones


def test_cached_scratch_views_follow_the_buffer_and_the_token_count(chain: Chain) -> None:
    """A layer keeps its views into the scratch between calls: they are rebuilt when the token count changes
    or another layer grows the buffer, and never copied or pickled with the module."""
    import copy
    import io

    layers, ref = chain
    w, b, m = ref[0]
    grower = PackedLinear(torch.randn(256, 64), _blockcol(256, 64, 48, 9), None)
    with torch.inference_mode():
        for n in (5, 40, 5, 300, 7):
            x = torch.randn(n, 64)
            assert torch.allclose(layers[0](x), F.linear(x, w * m, b), atol=1e-4)
            grower(torch.randn(n * 4, 64))  # a bigger gather: a new buffer, the first layer's views go stale
        assert layers[0]._views is not None
    assert copy.deepcopy(layers[0])._views is None
    buf = io.BytesIO()
    torch.save(layers[0], buf)
    buf.seek(0)
    again = torch.load(buf, weights_only=False)
    x = torch.randn(9, 64)
    with torch.inference_mode():
        assert again._views is None and torch.allclose(again(x), F.linear(x, w * m, b), atol=1e-4)


def test_scratch_path_is_never_taken_while_tracing_or_on_fake_tensors(chain: Chain) -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from testbed.rt3.packing import _may_use_scratch

    layers, ref = chain
    x = torch.randn(8, 64)
    assert _may_use_scratch(x)
    assert not _may_use_scratch(x.double())
    assert not _may_use_scratch(x.clone().requires_grad_())
    with FakeTensorMode():  # what torch.export / dynamo (an ONNX export with dynamo=True) hands a layer
        assert not _may_use_scratch(torch.empty(8, 64))
    seen: list[bool] = []

    def probe(t: torch.Tensor) -> torch.Tensor:
        seen.append(_may_use_scratch(t))
        return layers[0](t)

    traced = torch.jit.trace(probe, (x,), check_trace=False)  # what an ONNX export with dynamo=False runs
    assert seen == [False]
    w, b, m = ref[0]
    with torch.inference_mode():
        assert torch.allclose(traced(x), F.linear(x, w * m, b), atol=1e-4, rtol=1e-4)
