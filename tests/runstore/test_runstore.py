"""The run store: WAL, batched commits with checkpoints, the named checks, export and the CLI."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.experiment.config import load_experiment
from testbed.experiment.runner import run_experiment
from testbed.runstore.export import export_run, list_runs
from testbed.runstore.manifest import base_manifest, source_hash
from testbed.runstore.schema import REQUIRED_MANIFEST
from testbed.runstore.store import RunStore
from testbed.runstore.verify import verify_run

EXPERIMENT = """
name = "small"
strategies = ["dense-max", "rt3"]
[requests]
period_ms = 200.0
deadline_ms = 115.0
[battery]
model = "bucket"
energy_j = 600.0
record_interval_s = 2.0
[policy]
thresholds = [0.5, 0.2]
levels = ["f1500", "f1000", "f600"]
"""


@pytest.fixture
def finished_run(tmp_path: Path) -> Path:
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT)
    run_experiment(load_experiment(exp), tmp_path / "runs" / "a")
    return tmp_path / "runs" / "a"


def _manifest() -> dict[str, object]:
    m = base_manifest({"strategies": ["x"]}, "simulation", 1)
    m.update({"board": "rpi4", "governor": "soc", "meter": "model", "clock_offsets": {}})
    return m


def test_wal_and_uncommitted_rows_are_lost_committed_ones_kept(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, _manifest(), commit_interval_s=3600.0)
    assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    store.add("events", ("x", 0.0, "a", None))
    store.commit(("x", 0.0, {"k": 1}))
    store.add("events", ("x", 1.0, "b", None))
    assert not store.maybe_commit()  # the interval has not passed: still buffered
    store.conn.close()  # a crash: the buffer never reaches the file
    again = RunStore.open(tmp_path)
    assert [r[2] for r in again.rows("events")] == ["a"]
    assert again.checkpoint("x") == (0.0, {"k": 1})
    again.close()


def test_create_refuses_an_existing_run_and_open_rejects_non_runs(tmp_path: Path) -> None:
    RunStore.create(tmp_path, _manifest()).close()
    with pytest.raises(BadInputError, match="already exists"):
        RunStore.create(tmp_path, _manifest())
    with pytest.raises(BadInputError, match="no run store"):
        RunStore.open(tmp_path / "nowhere")
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BadInputError, match="not a run store"):
        RunStore.open(junk)


def test_manifest_records_code_and_machine() -> None:
    m = _manifest()
    assert set(REQUIRED_MANIFEST) - {"schema_version"} <= set(m)
    assert m["source_hash"] == source_hash() and len(str(m["source_hash"])) == 64
    assert m["versions"]["python"]  # type: ignore[index]


def test_finished_run_passes_every_check(finished_run: Path) -> None:
    checks = verify_run(finished_run)
    assert [c.name for c in checks] == [
        "manifest_complete", "phases_monotonic", "time_monotonic", "energy_balance", "throttle_flagged",
        "results_complete", "results_recomputed", "sqlite_integrity", "content_digest",
    ]  # fmt: skip
    assert all(c.passed for c in checks), checks


@pytest.mark.parametrize(
    ("sql", "failing"),
    [
        ("DELETE FROM manifest WHERE key = 'meter'", "manifest_complete"),
        ("UPDATE power_samples SET power_w = power_w * 1.05 WHERE rowid % 2 = 0", "energy_balance"),
        ("UPDATE inferences SET t_s = 0.5 WHERE rowid = (SELECT max(rowid) FROM inferences)", "time_monotonic"),
        ("UPDATE power_samples SET throttled = 1 WHERE rowid = 3", "throttle_flagged"),
        ("UPDATE power_samples SET throttled = 1, flagged = 1 WHERE rowid = 3", "throttle_flagged"),
        ("DELETE FROM results WHERE strategy = 'rt3'", "results_complete"),
        ("UPDATE phases SET wall_end_s = NULL, mono_end_s = NULL WHERE rowid = 2", "phases_monotonic"),
    ],
)
def test_each_check_catches_its_fault(finished_run: Path, sql: str, failing: str) -> None:
    conn = sqlite3.connect(finished_run / "run.sqlite")
    conn.execute(sql)
    conn.commit()
    conn.close()
    result = {c.name: c.passed for c in verify_run(finished_run)}
    assert result[failing] is False
    assert result["content_digest"] is False  # every edit after writing breaks the chained digest
    assert sum(not ok for name, ok in result.items() if name != "content_digest") == 1


def test_export_csv_and_parquet(finished_run: Path, tmp_path: Path) -> None:
    import pandas as pd

    store = RunStore.open(finished_run)
    n = store.count("inferences")
    store.close()
    files = export_run(finished_run, tmp_path / "csv", "csv")
    assert {f.name for f in files} >= {"inferences.csv", "manifest.csv", "battery_state.csv"}
    assert len(pd.read_csv(tmp_path / "csv" / "inferences.csv")) == n
    export_run(finished_run, tmp_path / "pq", "parquet")
    df = pd.read_parquet(tmp_path / "pq" / "inferences.parquet")
    assert len(df) == n and {"latency_ms", "energy_j", "pattern_set"} <= set(df.columns)


def test_list_runs(finished_run: Path) -> None:
    runs = list_runs(finished_run.parent)
    assert len(runs) == 1 and runs[0]["complete"] and runs[0]["strategies"] == ["dense-max", "rt3"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "testbed", *args], capture_output=True, text=True, check=False)


def test_cli_forms_and_exit_codes(finished_run: Path, tmp_path: Path) -> None:
    out = _cli("runs", "list", str(finished_run.parent), "--json")
    assert out.returncode == 0 and json.loads(out.stdout)[0]["name"] == "small"
    ok = _cli("verify", str(finished_run), "--json")
    assert ok.returncode == 0 and all(c["passed"] for c in json.loads(ok.stdout))
    exp = _cli("export", str(finished_run), "--csv", "--out", str(tmp_path / "x"))
    assert exp.returncode == 0 and (tmp_path / "x" / "switches.csv").is_file()
    both = _cli("export", str(finished_run), "--csv", "--parquet", "--out", str(tmp_path / "y"))
    assert both.returncode == 2 and both.stderr.count("\n") == 1 and "exactly one" in both.stderr
    missing = _cli("verify", str(tmp_path / "nothing"))
    assert missing.returncode == 2 and missing.stderr.startswith("error: ") and missing.stderr.count("\n") == 1
    conn = sqlite3.connect(finished_run / "run.sqlite")
    conn.execute("DELETE FROM manifest WHERE key = 'seed'")
    conn.commit()
    conn.close()
    bad = _cli("verify", str(finished_run))
    assert bad.returncode == 1 and "manifest_complete" in bad.stderr


def test_run_cli_bad_experiment_is_one_line(tmp_path: Path) -> None:
    exp = tmp_path / "e.toml"
    exp.write_text(EXPERIMENT.replace("energy_j = 600.0", "energy_j = -5"))
    r = _cli("run", str(exp), "--out", str(tmp_path / "o"))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "battery.energy_j" in r.stderr and str(exp) in r.stderr


def test_generic_log_for_other_components(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, _manifest())
    store.log("search", "episode", {"reward": 0.5, "sets": ["a", "b"]}, t_s=1.0)
    store.log("search", "episode", {"reward": 0.7})
    store.close()
    rows = RunStore.open(tmp_path).rows("log")
    assert [json.loads(r[3])["reward"] for r in rows] == [0.5, 0.7]
    assert rows[0][:3] == (1.0, "search", "episode")


def test_verify_export_and_list_never_write_to_a_run(finished_run: Path, tmp_path: Path) -> None:
    """A run has one writer: the checker, the exporter and the lister read it through the read-only reader."""
    before = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in finished_run.iterdir()}
    assert all(c.passed for c in verify_run(finished_run))
    assert export_run(finished_run, tmp_path / "csv", "csv")
    assert [r["run"] for r in list_runs(finished_run.parent)] == [str(finished_run)]
    after = {p.name: (p.stat().st_mtime_ns, p.stat().st_size) for p in finished_run.iterdir()}
    assert after == before  # no -wal/-shm file appeared, nothing was touched


def test_export_of_a_non_run_creates_nothing(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    with pytest.raises(BadInputError):
        export_run(tmp_path / "junk", tmp_path / "out", "csv")
    assert not (tmp_path / "out").exists()
