"""Runs must not be silently wrong: recomputed results, the chained digest, SQLite's integrity check, one writer,
phases across a reboot."""

from __future__ import annotations

import json
import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.experiment.config import load_experiment
from testbed.experiment.runner import run_experiment
from testbed.runstore.manifest import base_manifest
from testbed.runstore.reader import RunReader
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
energy_j = 300.0
record_interval_s = 2.0
[policy]
thresholds = [0.5, 0.2]
levels = ["f1500", "f1000", "f600"]
"""


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("integrity")
    exp = d / "e.toml"
    exp.write_text(EXPERIMENT)
    run_experiment(load_experiment(exp), d / "run")
    return d / "run"


@pytest.fixture
def run(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(pristine, copy)
    return copy


def _sql(run: Path, *statements: str) -> None:
    conn = sqlite3.connect(run / "run.sqlite")
    for stmt in statements:
        conn.execute(stmt)
    conn.commit()
    conn.close()


def _failed(run: Path) -> set[str]:
    return {c.name for c in verify_run(run) if not c.passed}


def test_pristine_run_passes(run: Path) -> None:
    assert _failed(run) == set()


def test_doubled_life_and_inferences_in_results_fail(run: Path) -> None:
    conn = sqlite3.connect(run / "run.sqlite")
    data = json.loads(conn.execute("SELECT data FROM results WHERE strategy = 'rt3'").fetchone()[0])
    data["life_h"] *= 2
    data["life_s"] *= 2
    data["inferences"] *= 2
    conn.execute("UPDATE results SET data = ? WHERE strategy = 'rt3'", (json.dumps(data),))
    conn.commit()
    conn.close()
    assert {"results_recomputed", "content_digest"} <= _failed(run)


def test_half_of_the_inference_rows_deleted_fails(run: Path) -> None:
    _sql(run, "DELETE FROM inferences WHERE strategy = 'rt3' AND rowid % 2 = 0")
    assert {"results_recomputed", "content_digest"} <= _failed(run)


def test_a_changed_value_fails_the_digest(run: Path) -> None:
    _sql(run, "UPDATE inferences SET latency_ms = latency_ms + 1e-9 WHERE rowid = 7")
    assert _failed(run) == {"content_digest"}


def test_flipped_bits_never_pass_and_never_crash(run: Path, tmp_path: Path) -> None:
    rng = random.Random(13)
    data = (run / "run.sqlite").read_bytes()
    for i in range(20):
        bad = bytearray(data)
        pos = rng.randrange(len(bad))
        bad[pos] ^= 1 << rng.randrange(8)
        copy = tmp_path / f"flip{i}"
        copy.mkdir()
        (copy / "run.sqlite").write_bytes(bytes(bad))
        checks = verify_run(copy)  # never raises, never an internal error
        if all(c.passed for c in checks):  # only a flip in unused space (content unchanged) may pass
            with RunReader.open(copy) as damaged, RunReader.open(run) as original:
                assert damaged.content_sha256 == original.content_sha256, f"flip at byte {pos} passed"


def test_damaged_pages_are_a_named_fail_in_the_cli(run: Path) -> None:
    raw = bytearray((run / "run.sqlite").read_bytes())
    raw[4096 : 4096 + 64] = b"\xff" * 64  # the second page
    (run / "run.sqlite").write_bytes(bytes(raw))
    res = subprocess.run([sys.executable, "-m", "testbed", "verify", str(run), "--json"], capture_output=True,
                         text=True, check=False)  # fmt: skip
    assert res.returncode == 1, res.stderr
    assert "internal error" not in res.stderr and "Traceback" not in res.stderr
    failed = {c["name"] for c in json.loads(res.stdout) if not c["passed"]}
    assert failed


def _manifest() -> dict[str, object]:
    m = base_manifest({"strategies": ["x"]}, "simulation", 1)
    m.update({"board": "rpi4", "governor": "soc", "meter": "model", "clock_offsets": {}})
    return m


HOLD = textwrap.dedent(
    """
    import sys, time
    from testbed.runstore.store import RunStore
    s = RunStore.open(sys.argv[1])
    print("open", flush=True)
    time.sleep(60)
    """
)


def test_one_writer_per_run_store(tmp_path: Path) -> None:
    RunStore.create(tmp_path / "r", _manifest()).close()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path / "r")], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "open"
        with pytest.raises(BadInputError, match="being written by pid"):
            RunStore.open(tmp_path / "r")
    finally:
        proc.kill()
        proc.wait(timeout=30)
    RunStore.open(tmp_path / "r").close()  # the holder died: its lock went with it


def test_same_process_connections_share_the_writer_lock(tmp_path: Path) -> None:
    a = RunStore.create(tmp_path / "r", _manifest())
    b = RunStore.open(tmp_path / "r")  # a second writer thread's connection
    b.close()
    a.close()


def test_phases_across_a_reboot_are_monotonic_per_boot(tmp_path: Path) -> None:
    s = RunStore.create(tmp_path / "r", _manifest())
    s.boot_id, s._mono = "boot-a", (lambda: 5000.0)
    s.begin_phase("setup")
    s.end_phase("setup")
    s.begin_phase("strategy:x")  # the machine reboots here: this phase never ends
    s.close()
    s = RunStore.open(tmp_path / "r")
    s.mark_interrupted()
    s.boot_id, s._mono = "boot-b", (lambda: 12.0)  # monotonic time restarted at boot
    s.begin_phase("resume")
    s.end_phase("resume")
    s.close()
    checks = {c.name: c for c in verify_run(tmp_path / "r")}
    assert checks["phases_monotonic"].passed, checks["phases_monotonic"].detail
    assert checks["content_digest"].passed, checks["content_digest"].detail


def test_resume_that_deletes_rows_reseals_the_chain(tmp_path: Path) -> None:
    s = RunStore.create(tmp_path / "r", _manifest())
    for t in range(10):
        s.add("events", ("x", float(t), "tick", None))
    s.commit(("x", 4.0, {}))
    s.discard_after("x", 4.0)
    s.close()
    checks = {c.name: c for c in verify_run(tmp_path / "r")}
    assert checks["content_digest"].passed, checks["content_digest"].detail
