"""The bundled rpi4 experiments: all five strategies run from the bundled profile and the run verifies."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from testbed.experiment.config import load_experiment
from testbed.experiment.runner import run_experiment
from testbed.runstore.results import StrategyResult
from testbed.runstore.verify import verify_run


def _run(model: str, tmp_path: Path) -> dict[str, StrategyResult]:
    path = Path(str(resources.files("testbed") / "data" / f"experiment-rpi4-{model}.toml"))
    cfg = load_experiment(path)
    results = run_experiment(cfg, tmp_path / model)
    checks = verify_run(tmp_path / model)
    assert all(c.passed for c in checks), checks
    assert list(results) == ["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]
    return results


def _shape(results: dict[str, StrategyResult]) -> None:
    life = {s: float(r.life_s) for s, r in results.items()}
    assert life["rt3"] > life["dvfs-dense"] > life["dense-max"]
    assert life["oracle"] >= life["rt3"] * 0.999
    assert results["dvfs-dense"].deadline_misses > 0


def test_bucket_experiment(tmp_path: Path) -> None:
    results = _run("bucket", tmp_path)
    _shape(results)
    for r in results.values():
        assert r.end_reason == "empty"
        assert float(r.load_energy_j) == pytest.approx(37800.0, rel=1e-9)


@pytest.mark.slow
def test_ecm_experiment(tmp_path: Path) -> None:
    results = _run("ecm", tmp_path)
    _shape(results)
    assert {r.end_reason for r in results.values()} <= {"cutoff", "power_limit", "empty"}
