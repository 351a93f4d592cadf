"""``testbed reproduce``: RT3's accounting on RT3's LM, the waterfall of runs, the sensitivity grid."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from analysis.reproduce import read_steps
from testbed.battery.rt3_accounting import RT3_ENERGY_J, RT3_FREQ_GHZ, RT3_SPLIT, RT3_VOLT_V, rt3_runs
from testbed.reproduce.rt3_paper import RT3_CONSTRAINTS_MS, paper_accounting
from testbed.rt3.opcount import RT3_LM, opcount_latency_ms


def test_paper_accounting_is_the_reference_computation() -> None:
    acc = paper_accounting()
    for s, f, limit in zip(acc.sparsity, RT3_FREQ_GHZ, RT3_CONSTRAINTS_MS, strict=True):
        assert opcount_latency_ms(RT3_LM, s, f) <= limit
    runs = rt3_runs(RT3_ENERGY_J, RT3_SPLIT, RT3_FREQ_GHZ, RT3_VOLT_V, acc.latency_ms).runs
    dense = rt3_runs(RT3_ENERGY_J, (1.0,), (1.4,), (1.24,), (opcount_latency_ms(RT3_LM, 0.0, 1.4),)).runs
    assert acc.runs == runs and acc.baseline_runs == dense
    assert acc.ratio == pytest.approx(runs / dense) and acc.ratio >= 4.0  # the paper's "> 4x"


@pytest.mark.slow
def test_reproduce_cli_prints_the_paper_ratio_and_a_waterfall_of_runs(tmp_path: Path) -> None:
    out = tmp_path / "rep"
    r = subprocess.run(
        [sys.executable, "-m", "testbed", "reproduce", "rt3-paper", "--out", str(out), "--json", "--format", "png"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["paper_ratio"] >= 4.0 and "unpruned" in data["baseline"]
    assert len(data["steps"]) >= 5 and all({"change", "ratio"} <= set(s) for s in data["steps"])
    assert data["steps"][0]["ratio"] == pytest.approx(data["paper_ratio"], rel=2e-3)  # the run reproduces it
    back = read_steps([s["change"] for s in data["steps"]], [Path(s["run"]) for s in data["steps"]])
    assert [b.ratio for b in back] == pytest.approx([s["ratio"] for s in data["steps"]])
    assert (out / "figures" / "waterfall.png").is_file() and (out / "tables" / "waterfall.csv").is_file()
    index = json.loads((out / "report.json").read_text())
    assert len(index["figures"]["waterfall"]["runs"]) == len(data["steps"])


@pytest.mark.slow
def test_sensitivity_grid_and_figure(tmp_path: Path) -> None:
    from analysis.reproduce import write_sensitivity_report
    from testbed.reproduce.sensitivity import sensitivity_grid

    grid, period = sensitivity_grid(tmp_path, period_factors=(1.25, 4.0), idle_scales=(0.0, 1.0))
    import pandas as pd

    df = pd.read_csv(grid)
    assert len(df) == 4 and period == 200.0
    with_idle = df[df["idle_scale"] == 1.0].sort_values("period_ms")["ratio"].to_list()
    assert with_idle[0] > with_idle[1] > 1.0  # idle power dilutes rt3's gain as requests thin out
    no_idle = df[df["idle_scale"] == 0.0]["ratio"].to_list()
    assert no_idle[0] == pytest.approx(no_idle[1], rel=1e-3)  # without idle power the period does not matter
    index = write_sensitivity_report(grid, tmp_path, period, ["png"])
    assert index["figures"]["sensitivity"]["inputs"][0]["path"] == str(grid)
