"""The runtime benchmark's switch figures: what they time is real (emulated board, real packing), and the
CLI reports the fields the issue names with progress kept off stdout. No timing assertions."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from testbed.bench.bench_runtime import _dvfs_transition_ms, _interleaved, _mask_reapply_ms, _ratio


def test_dvfs_transition_is_timed_until_the_clock_reads_back() -> None:
    res = _dvfs_transition_ms(6)
    assert res["n"] == 6 and 0 < res["p50"] <= res["p99"]
    lo, hi = res["freqs_khz"]
    assert lo < hi  # it really alternates between two clocks
    assert res["profile_transition_latency_ms"] == pytest.approx(0.355)  # rpi4 profile's cpuinfo value


def test_mask_reapplication_really_rewrites_the_weights() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 8), torch.nn.Linear(8, 4))
    masks = [{"0.weight": torch.rand(8, 8) < p, "1.weight": torch.rand(4, 8) < p} for p in (0.3, 0.7)]
    times = _mask_reapply_ms(model, masks, 3)
    assert len(times) == 3 and all(t > 0 for t in times)


def test_interleaved_ratios_pair_calls_of_the_same_round() -> None:
    calls: list[str] = []
    cpu: dict[str, list[float]] = {}
    wall = _interleaved({"a": lambda: calls.append("a"), "b": lambda: calls.append("b")}, 3, warmup=1, cpu=cpu)
    assert calls == ["a", "b"] * 4 and len(wall["a"]) == len(cpu["b"]) == 3
    assert _ratio({"a": [2.0, 4.0, 9.0], "b": [1.0, 1.0, 1.0]}, "a", "b") == 4.0


@pytest.mark.slow
def test_bench_switch_json_has_the_switch_figures() -> None:
    from testbed.cli.main import app

    res = CliRunner().invoke(app, ["rt3", "bench", "switch", "--json", "--quick"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    for key in (
        "resident_mb",
        "dense_mb",
        "cold_switch_ms_p50",
        "first_inference_after_switch_ms_p50",
        "dvfs_transition_ms_p50",
        "mask_reapply_ms_p50",
        "p50_ms",
        "p99_ms",
    ):
        assert out[key] > 0, key
    assert out["resident_mb"] < 1.3 * out["dense_mb"]  # 3 sets over one backbone
