"""``hil`` mode against a real emulated agent process: real time with a short battery, and compressed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.agent.runner import sha256_file
from testbed.agent.launch import start_local_agent
from testbed.experiment.config import load_experiment
from testbed.experiment.runner import run_experiment
from testbed.experiment.sweep import ModelConfig, write_encoder_onnx
from testbed.runstore.executor import FINISHED_MANIFEST
from testbed.runstore.results import StrategyResult
from testbed.runstore.store import RunStore
from testbed.runstore.verify import verify_run
from traces.profile import ProfileRow, build_table

ALL = '["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]'


def _artifact(d: Path) -> Path:
    """Two pattern sets of one interface: a wide FFN ("dense") and a narrow one ("sparse")."""
    d.mkdir()
    entries = []
    for name, ffn, sp, acc in (("dense", 512, 0.0, 0.91), ("sparse", 64, 0.75, 0.89)):
        f = write_encoder_onnx(ModelConfig(1, 64, 2, ffn), d / f"{name}.onnx")
        entries.append({"name": name, "file": f.name, "sha256": sha256_file(f), "sparsity": sp, "accuracy": acc})
    (d / "manifest.json").write_text(json.dumps({"format": "rt3-onnx/1", "pattern_sets": entries}))
    return d


def _planning_table(path: Path) -> Path:
    """A planning profile with the artifact's set names: dense meets the deadline only at the top level."""
    rows = []
    for lv, f in (("f1500", 1_500_000), ("f1000", 1_000_000), ("f750", 750_000), ("f600", 600_000)):
        for ps, sp, acc, ms in (("dense", 0.0, 0.91, 6.0e6 / f), ("sparse", 0.75, 0.89, 2.0e6 / f)):
            rows.append(ProfileRow(ps, lv, f, sp, acc, ms, ms, ms, 0.01, 4.0, 4.0, 3.0))
    path.write_text(build_table(rows, {"source": "test planning table"}).to_csv())
    return path


def _experiment(
    tmp_path: Path, url: str | list[str], token: Path, compress: bool, energy_j: float, strategies: str = ALL
) -> Path:
    urls = json.dumps([url] if isinstance(url, str) else url)
    per_window = 8 if compress else 4  # real time: small windows, so the SoC steps through every threshold
    exp = tmp_path / f"hil-{compress}.toml"
    exp.write_text(f"""
name = "hil"
mode = "hil"
strategies = {strategies}
[board]
profile = "rpi4"
agents = {urls}
token_file = "{token}"
[profile]
table = "{_planning_table(tmp_path / "plan.csv")}"
[artifact]
path = "{tmp_path / "art"}"
[requests]
period_ms = 25.0
deadline_ms = 5.0
[battery]
model = "bucket"
energy_j = {energy_j}
record_interval_s = 1.0
[policy]
thresholds = [0.5, 0.2]
levels = ["f1500", "f1000", "f600"]
[strategy]
switch_ms = 1.0
[hil]
compress = {str(compress).lower()}
inferences_per_level = {per_window}
warmup = 1
""")
    return exp


def _check_run(run_dir: Path, results: dict[str, StrategyResult]) -> None:
    checks = {c.name: c for c in verify_run(run_dir)}
    store = RunStore.open(run_dir)
    assert all(c.passed for c in checks.values()), checks
    assert store.manifest()["fidelity"] == "hardware-in-the-loop (emulated board)"
    assert set(FINISHED_MANIFEST) <= set(store.manifest())  # the same keys as sim and search runs
    for s, r in results.items():
        assert len(store.rows("inferences", s)) == r.inferences
    store.close()


def test_hil_real_time_short_battery_on_two_agents(tmp_path: Path) -> None:
    _artifact(tmp_path / "art")
    first = start_local_agent(tmp_path / "agent1", "rpi4")
    (tmp_path / "agent2").mkdir()
    (tmp_path / "agent2" / "token").write_text(first.token + "\n")  # one token for both boards
    (tmp_path / "agent2" / "token").chmod(0o600)  # the agent refuses a token file others may read
    second = start_local_agent(tmp_path / "agent2", "rpi4")
    with first, second:
        token = tmp_path / "agent1" / "token"
        # 30 J: the emulated Pi is about 25x slower than this host (CPU time x board speed), so several windows
        exp = _experiment(
            tmp_path, [first.url, second.url], token, compress=False, energy_j=30.0,
            strategies='["dense-max", "dvfs-dense", "rt3"]',
        )  # fmt: skip
        results = run_experiment(load_experiment(exp), tmp_path / "run")
    _check_run(tmp_path / "run", results)
    for r in results.values():
        assert r.end_reason == "empty" and r.compressed is False
        assert float(r.load_energy_j) == pytest.approx(30.0, rel=1e-9)
        assert int(r.inferences) > 0
    # the policy walked dvfs-dense down the levels; rt3 switched to the sparse set below the top
    assert set(results["dvfs-dense"].time_at_level_s) == {"f1500", "f1000", "f600"}
    assert results["rt3"].switches == 1
    assert set(results["dense-max"].time_at_level_s) == {"f1500"}


@pytest.mark.slow
def test_hil_compressed_states_the_extrapolation_error(tmp_path: Path) -> None:
    _artifact(tmp_path / "art")
    agent = start_local_agent(tmp_path / "agent", "rpi4")
    with agent:
        token = tmp_path / "agent" / "token"
        cfg = load_experiment(_experiment(tmp_path, agent.url, token, compress=True, energy_j=500.0))
        results = run_experiment(cfg, tmp_path / "run")
    _check_run(tmp_path / "run", results)
    for r in results.values():
        assert r.compressed is True
        ex = r.extrapolation
        assert ex is not None
        assert set(ex.validation_rel_error_per_level) == {"f1500", "f1000", "f600"}
        assert 0.0 <= ex.life_rel_error_bound < 1.0
        assert r.end_reason == "empty"
