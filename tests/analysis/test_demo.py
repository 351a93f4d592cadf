"""The demo's own logic (deadline rule, experiment files) fast; the whole demo end to end as a slow test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.demo import derive_deadline_ms, experiment_toml, run_demo, scaled_cell
from testbed.experiment.config import load_experiment
from traces.profile import load_profile_table

PROFILE = Path(__file__).resolve().parents[2] / "testbed" / "data" / "profile-rpi4.csv"


def test_deadline_is_met_by_dense_max_at_the_top_and_the_sparsest_set_at_the_bottom():
    """Changed with issue 15: the old rule (1.1 x p99 of the sparsest set at the lowest level) was missed by
    dense-max at the top level on a noisy profile."""
    deadline, why = derive_deadline_ms(PROFILE)
    prof = load_profile_table(PROFILE)
    sparsest = prof.pattern_sets[-1]
    assert prof.get("dense", "f1500").latency_p99_ms <= deadline
    assert prof.get(sparsest, "f600").latency_p99_ms <= deadline < prof.get("dense", "f600").latency_p99_ms
    assert "met by dense-max at f1500" in why


def test_scaled_cell_divides_the_capacity(tmp_path):
    from testbed.battery.cell import load_cell

    original = load_cell("phone-lco")
    demo = load_cell(scaled_cell(tmp_path, factor=25.0))
    assert demo.capacity_ah == pytest.approx(original.capacity_ah / 25.0, rel=1e-5)
    assert demo.r0_ohm == original.r0_ohm


@pytest.mark.parametrize("battery", ["bucket", "ecm"])
def test_generated_experiments_validate(tmp_path, battery):
    toml = tmp_path / "exp.toml"
    toml.write_text(experiment_toml("demo-test", PROFILE, 120.0, battery))
    cfg = load_experiment(toml)
    assert cfg.battery.model == battery and cfg.requests.deadline_ms == 120.0
    assert cfg.strategies == ["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative --out, as `make demo` passes it
    summary = run_demo(Path("demo"))
    for s in ("dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"):
        row = summary["strategies"][s]
        assert row["life_h"] > 0 and row["inferences"] > 0 and row["deadline_misses"] >= 0
    assert (tmp_path / "demo" / "figures" / "battery_life.pdf").is_file()
    assert json.loads((tmp_path / "demo" / "summary.json").read_text())["deadline_ms"] == summary["deadline_ms"]
