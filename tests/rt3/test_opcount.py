"""RT3's op-count latency against an independent computation of the reference's formula.

The independent side rebuilds the reference model's modules (``nn.Embedding`` → ``nn.TransformerEncoder`` →
``nn.Linear``, on the meta device for RT3's full shape), walks ``named_parameters`` with the reference's own
name filters and add rules (utils/runs_number_reward.py), and measures prune ratios as the reference does
(zeros / numel of real tensors).
"""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from typer.testing import CliRunner

from devices.errors import BadInputError
from testbed.cli.main import app, run
from testbed.rt3.opcount import RT3_LM, LMShape, min_sparsity_for_deadline, op_tensors, opcount_latency_ms


class _RefModel(nn.Module):
    """The module tree of the reference's TransformerModel (names are what the formula keys on)."""

    def __init__(self, shape: LMShape, device: str) -> None:
        super().__init__()
        self.encoder = nn.Embedding(shape.vocab_size, shape.emsize, device=device)
        layer = nn.TransformerEncoderLayer(shape.emsize, shape.nhead, shape.nhid, 0.2, device=device)
        self.transformer_encoder = nn.TransformerEncoder(layer, shape.nlayers, enable_nested_tensor=False)
        self.decoder = nn.Linear(shape.emsize, shape.vocab_size, device=device)


def _reference_latency(model: nn.Module, ratios: dict[str, float], freq_ghz: float) -> float:
    """A transcription of all_multiply/all_add_operation_times, pruned_multiple_operation, compute_total_latency."""
    mult, add = {}, {}
    for name, w in model.named_parameters():
        pixels = w.shape[0] * w.shape[1] if w.dim() == 2 else 0
        if any(k in name for k in ("in_proj_weight", "out_proj.weight", "encoder.weight")):
            mult[name], add[name] = pixels, pixels - w.shape[1]
        elif any(k in name for k in ("linear1.weight", "linear2.weight", "decoder.weight")):
            mult[name], add[name] = pixels, pixels - w.shape[0]
    m = sum(mult[n] * (1 - ratios[n]) for n in mult) / 10000
    a = sum(add[n] - mult[n] * ratios[n] for n in mult) / 10000
    return (3.0 / freq_ghz) * 0.014370 * m + (3.0 / freq_ghz) * 0.014575 * a


def test_rt3_lm_dense_and_bp_latency_match_the_reference_formula() -> None:
    ref = _RefModel(RT3_LM, "meta")
    names = [t.name for t in op_tensors(RT3_LM)]
    keys = ("in_proj_weight", "out_proj.weight", "linear1.weight", "linear2.weight", "encoder.weight", "decoder.weight")
    assert names == [n for n, _ in ref.named_parameters() if any(k in n for k in keys)]
    for freq in (1.4, 1.0, 0.8, 3.0):
        for s in (0.0, 0.643, 0.99):
            ours = opcount_latency_ms(RT3_LM, s, freq)
            theirs = _reference_latency(ref, dict.fromkeys(names, s), freq)
            assert ours == pytest.approx(theirs, rel=1e-12)
    # closed form, by hand: mults = 2·V·E + L·(4E² + 2EH); adds = mults − (E + V) − L·(E + E + H + E)
    v, e, h, layers = 28785, 800, 200, 2
    mults = 2 * v * e + layers * (4 * e * e + 2 * e * h)
    adds = mults - (e + v) - layers * (3 * e + h)
    dense_3ghz = mults / 1e4 * 0.014370 + adds / 1e4 * 0.014575
    assert opcount_latency_ms(RT3_LM, 0.0, 3.0) == pytest.approx(dense_3ghz, rel=1e-12)
    # with the configs' BP ratio (about 0.643) the 1.4 GHz prediction lands at RT3's 115 ms deadline
    assert 110 < opcount_latency_ms(RT3_LM, 0.643, 1.4) < 116


def test_per_layer_ratios_measured_on_real_zeroed_weights() -> None:
    shape = LMShape(vocab_size=50, emsize=16, nhid=8, nlayers=2, nhead=2)
    torch.manual_seed(0)
    ref = _RefModel(shape, "cpu")
    names = [t.name for t in op_tensors(shape)]
    params = dict(ref.named_parameters())
    ratios = {}
    with torch.no_grad():
        for i, n in enumerate(names):
            w = params[n]
            w.view(-1)[torch.randperm(w.numel())[: (i * 7) % w.numel()]] = 0.0
            ratios[n] = (w == 0).sum().item() / w.numel()
    per_layer = [ratios[n] for n in names]
    assert opcount_latency_ms(shape, per_layer, 1.0) == pytest.approx(_reference_latency(ref, ratios, 1.0), rel=1e-12)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.0, 1.0), min_size=10, max_size=10),
    st.floats(0.2, 3.5),
)
def test_latency_is_affine_in_each_ratio_and_inverse_in_frequency(ratios: list[float], freq: float) -> None:
    lat = opcount_latency_ms(RT3_LM, ratios, freq)
    assert lat * freq == pytest.approx(opcount_latency_ms(RT3_LM, ratios, 1.0), rel=1e-9)
    dense = opcount_latency_ms(RT3_LM, 0.0, freq)
    assert lat <= dense + 1e-9
    avg = [sum(ratios) / len(ratios)] * len(ratios)
    if ratios[0] - ratios[1] > 1e-3:  # the embedding weighs more than a layer's in_proj: per-layer matters
        assert lat != pytest.approx(opcount_latency_ms(RT3_LM, avg, freq), rel=1e-12)


def test_min_sparsity_for_deadline_meets_it_exactly() -> None:
    s = min_sparsity_for_deadline(RT3_LM, 115.0, 1.4)
    assert opcount_latency_ms(RT3_LM, s, 1.4) == pytest.approx(115.0)
    assert min_sparsity_for_deadline(RT3_LM, 1e6, 1.4) == 0.0
    # at full sparsity the reference's adds (A − M) go slightly negative: its formula, kept as written
    assert opcount_latency_ms(RT3_LM, 1.0, 1.4) < 0
    assert min_sparsity_for_deadline(RT3_LM, -1.0, 1.4) == 1.0


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan"), [0.5, 0.5]])
def test_bad_sparsity_is_rejected(bad: object) -> None:
    with pytest.raises(BadInputError, match="sparsity"):
        opcount_latency_ms(RT3_LM, bad, 1.0)  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="frequency"):
        opcount_latency_ms(RT3_LM, 0.5, 0.0)


def test_cli_prints_latency_ms() -> None:
    runner = CliRunner()
    res = runner.invoke(
        app, ["rt3", "opcount", "--model", "rt3-lm", "--sparsity", "0.643", "--freq-ghz", "1.4", "--json"]
    )
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["latency_ms"] == pytest.approx(opcount_latency_ms(RT3_LM, 0.643, 1.4))
    assert out["shape"]["vocab_size"] == 28785
    dense = json.loads(runner.invoke(app, ["rt3", "opcount", "--freq-ghz", "1.0", "--json"]).stdout)
    assert dense["latency_ms"] == pytest.approx(opcount_latency_ms(RT3_LM, 0.0, 1.0))
    per_layer = ",".join(["0.5"] * 10)
    res = runner.invoke(app, ["rt3", "opcount", "--sparsity", per_layer, "--freq-ghz", "1", "--json"])
    assert json.loads(res.stdout)["latency_ms"] == pytest.approx(opcount_latency_ms(RT3_LM, 0.5, 1.0))
    for bad in (["--sparsity", "2", "--freq-ghz", "1"], ["--freq-ghz", "-1"], ["--model", "gpt", "--freq-ghz", "1"]):
        with pytest.raises(SystemExit) as exc:
            run(["rt3", "opcount", *bad])
        assert exc.value.code == 2
