"""A run killed with SIGKILL resumes from its last commit and ends with the uninterrupted run's results."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from testbed.experiment.config import load_experiment
from testbed.experiment.runner import run_experiment
from testbed.runstore.store import RunStore
from testbed.runstore.verify import verify_run

EXPERIMENT = """
name = "resume"
seed = 7
strategies = ["dense-max", "rt3", "oracle"]
[requests]
period_ms = 200.0
deadline_ms = 115.0
[battery]
model = "ecm"
cell = "nmc-18650"
soc0 = 0.4
record_interval_s = 30.0
[policy]
thresholds = [0.3, 0.15]
levels = ["f1500", "f1000", "f600"]
"""


def _strip(results: dict[str, dict[str, object]]) -> dict[str, dict[str, object]]:
    return {s: {k: v for k, v in r.items() if k != "wall_s"} for s, r in results.items()}


def _killable_point(db: Path) -> bool:
    """True once a strategy has finished and the next one has committed a checkpoint."""
    if not db.exists():
        return False
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=0.1)
        try:
            done = {r[0] for r in conn.execute("SELECT strategy FROM results")}
            ck = {r[0] for r in conn.execute("SELECT strategy FROM checkpoints")}
        finally:
            conn.close()
    except sqlite3.Error:
        return False
    return bool(done) and bool(ck - done)


def test_sigkill_then_resume_matches_uninterrupted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT)
    reference = run_experiment(load_experiment(exp), tmp_path / "reference")

    env = {**os.environ, "TESTBED_COMMIT_INTERVAL_S": "0.02"}
    run_dir = tmp_path / "killed"
    cmd = [sys.executable, "-m", "testbed", "run", str(exp), "--out", str(run_dir), "--json"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        while proc.poll() is None and not _killable_point(run_dir / "run.sqlite"):
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be killed; make the experiment longer"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL

    store = RunStore.open(run_dir)
    partial = store.results()
    store.close()
    assert 1 <= len(partial) < 3  # killed in the middle

    done = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(exp), "--resume", str(run_dir), "--json"],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    resumed = json.loads(done.stdout)["results"]
    assert _strip(resumed) == _strip({s: r.to_dict() for s, r in reference.items()})

    store = RunStore.open(run_dir)
    for s, r in resumed.items():
        assert store.count("inferences") >= r["inferences"]
        assert len(store.rows("inferences", s)) == r["inferences"]  # nothing lost, nothing twice
    store.close()
    checks = {c.name: c.passed for c in verify_run(run_dir)}
    assert all(checks.values()), checks


def test_resume_with_other_config_is_refused(tmp_path: Path) -> None:
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT.replace("soc0 = 0.4", "soc0 = 0.02"))
    run_experiment(load_experiment(exp), tmp_path / "run")
    exp.write_text(EXPERIMENT.replace("soc0 = 0.4", "soc0 = 0.03"))
    from devices.errors import BadInputError

    with pytest.raises(BadInputError, match="different experiment configuration"):
        run_experiment(load_experiment(exp), None, tmp_path / "run")
