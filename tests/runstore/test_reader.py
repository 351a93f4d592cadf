"""The read-only run-store reader: never writes, typed results, one-line errors, a content digest that follows
the content (not the file's bytes)."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.experiment.config import load_experiment
from testbed.experiment.runner import run_experiment
from testbed.paths import data_dir
from testbed.runstore.manifest import base_manifest
from testbed.runstore.reader import Phase, RunReader, StrategyResult
from testbed.runstore.store import RunStore
from tests.runstore.test_runstore import EXPERIMENT


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("reader")
    exp = base / "e.toml"
    exp.write_text(EXPERIMENT)
    run_experiment(load_experiment(exp), base / "run")
    return base / "run"


def _copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def _listing_and_bytes(d: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(d.iterdir())}


def test_reading_writes_nothing_next_to_a_closed_run(finished: Path, tmp_path: Path) -> None:
    run = _copy(finished, tmp_path / "run")
    before = _listing_and_bytes(run)
    assert "run.sqlite-wal" not in before  # the writer closed the run
    with RunReader.open(run) as reader:
        reader.results()
        reader.rows("inferences")
        _ = reader.content_sha256
    assert _listing_and_bytes(run) == before  # no -wal/-shm created, no byte changed


def test_a_run_being_written_is_read_up_to_its_last_commit(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, base_manifest({}, "simulation", 0), commit_interval_s=3600.0)
    store.add("events", ("x", 0.0, "a", None))
    store.commit()
    store.add("events", ("x", 1.0, "b", None))  # buffered, not committed
    with RunReader.open(tmp_path) as reader:
        assert [r[2] for r in reader.rows("events")] == ["a"]
    store.close()


def test_manifest_results_and_phases_are_typed(finished: Path) -> None:
    with RunReader.open(finished / "run.sqlite") as reader:
        manifest = json.loads(json.dumps(reader.manifest))
        assert reader.run_id == manifest["run_uuid"] and len(reader.run_id) == 36
        assert reader.fidelity == "simulation"
        results = reader.results()
        assert list(results) == ["dense-max", "rt3"]
        assert all(isinstance(r, StrategyResult) for r in results.values())
        rt3 = results["rt3"]
        assert isinstance(rt3, StrategyResult) and rt3.life_h == pytest.approx(rt3.life_s / 3600.0)
        phases = reader.phases()
        assert phases and all(isinstance(p, Phase) and p.mono_end_s is not None for p in phases)
        rows = reader.rows("inferences", "rt3")
        frame = reader.frame("inferences", "rt3")
        assert len(rows) == len(frame) == rt3.inferences
        assert list(frame.columns[:3]) == ["strategy", "seq", "t_s"]
        with pytest.raises(BadInputError, match="unknown table 'nope'"):
            reader.rows("nope")


def test_not_a_run_store_is_one_line_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="not a run") as err:
        RunReader.open(tmp_path)
    assert str(tmp_path) in str(err.value)
    junk = tmp_path / "run.sqlite"
    junk.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BadInputError, match="not a run store") as err:
        RunReader.open(tmp_path)
    assert str(junk) in str(err.value) and "\n" not in str(err.value)
    other = tmp_path / "other.sqlite"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.close()
    with pytest.raises(BadInputError, match="not a run store"):
        RunReader.open(other)


def test_content_digest_follows_the_content_not_the_file(finished: Path, tmp_path: Path) -> None:
    with RunReader.open(finished) as reader:
        digest = reader.content_sha256
    assert len(digest) == 64
    copy = _copy(finished, tmp_path / "copy")
    with RunReader.open(copy) as reader:
        assert reader.content_sha256 == digest  # a copy of the run is the same run
    conn = sqlite3.connect(copy / "run.sqlite")
    conn.execute("VACUUM")  # a new page layout, the same content
    conn.close()
    with RunReader.open(copy) as reader:
        assert reader.content_sha256 == digest
    conn = sqlite3.connect(copy / "run.sqlite")
    conn.execute("UPDATE inferences SET latency_ms = latency_ms + 1e-9 WHERE rowid = 1")
    conn.commit()
    conn.close()
    with RunReader.open(copy) as reader:
        assert reader.content_sha256 != digest


def test_profile_table_path_of_new_and_old_runs(finished: Path, tmp_path: Path) -> None:
    bundled = data_dir() / "profile-rpi4.csv"
    with RunReader.open(finished) as reader:
        assert reader.profile_table_path() == bundled  # resolved when the experiment was loaded
    # an old run: the table relative to the experiment's base_dir, or a bundled name
    copy = _copy(finished, tmp_path / "old")
    (tmp_path / "prof.csv").write_bytes(bundled.read_bytes())
    for table, expected in (("prof.csv", tmp_path / "prof.csv"), ("rpi4", bundled)):
        conn = sqlite3.connect(copy / "run.sqlite")
        config = json.loads(conn.execute("SELECT value FROM manifest WHERE key = 'config'").fetchone()[0])
        config["profile"]["table"], config["base_dir"] = table, str(tmp_path)
        conn.execute("UPDATE manifest SET value = ? WHERE key = 'config'", (json.dumps(config),))
        conn.commit()
        conn.close()
        with RunReader.open(copy) as reader:
            assert reader.profile_table_path() == expected
