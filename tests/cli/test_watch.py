"""`testbed watch` and `testbed run --live`: the live view read from a run store another writer is filling."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

from testbed.runstore.manifest import base_manifest
from testbed.runstore.store import RunStore
from testbed.watch import StrategyView, WatchSnapshot, snapshot, sparkline
from tests.conftest import CliResult

CONFIG = {"name": "live", "mode": "sim", "strategies": ["dense-max", "rt3"]}


def _writer(run: Path) -> RunStore:
    return RunStore.create(run, base_manifest(CONFIG, "simulation", 0) | {"config": CONFIG}, commit_interval_s=0.01)


def _rows(store: RunStore, strategy: str, soc_from: float, soc_to: float, n: int) -> None:
    for k in range(n):
        t = 10.0 * k
        soc = soc_from + (soc_to - soc_from) * k / max(n - 1, 1)
        store.add("inferences", (strategy, k, t, "f1000", "ps50", 90.0, 0.4, int(k % 4 == 0), 0))
        store.add("battery_state", (strategy, t, soc, 3.7 - 0.1 * (1 - soc), 1.0, 100.0 * k))
        store.add("power_samples", (strategy, t, 10.0, 3.0 + 0.1 * (k % 3), 0, 0))
    store.add("level_changes", (strategy, 0.0, None, "f1000", 1000000))
    store.commit()


def test_snapshot_sees_what_the_writer_committed(tmp_path: Path) -> None:
    run = tmp_path / "run"
    store = _writer(run)
    try:
        store.begin_phase("strategy:dense-max")
        _rows(store, "dense-max", 1.0, 0.6, 8)
        snap = snapshot(run, now_wall_s=None)
        assert snap.current == "dense-max" and not snap.complete and snap.finished == []
        v = snap.views["dense-max"]
        assert (v.level, v.freq_khz, v.pattern_set) == ("f1000", 1000000, "ps50")
        assert v.inferences == 8 and v.deadline_misses == 2 and abs(v.soc - 0.6) < 1e-9
        assert abs(v.progress - 0.4) < 1e-9 and v.voltage_v is not None and len(v.power_w) == 8
        assert "rt3" not in snap.views  # not started yet
        _rows(store, "dense-max", 0.6, 0.2, 4)  # more rows arrive while the reader is closed
        assert snapshot(run).views["dense-max"].inferences == 12
    finally:
        store.close()


def test_eta_from_progress_and_the_strategies_left() -> None:
    running = StrategyView("a", False, soc=0.75, soc_start=1.0, wall_elapsed_s=10.0)
    assert running.progress == 0.25 and running.eta_s == 30.0
    done = StrategyView("b", True, wall_elapsed_s=20.0)
    snap = WatchSnapshot("r", "n", "sim", "simulation", ("b", "a", "c"), {"a": running, "b": done}, "a")
    assert snap.eta_s == 30.0 + (20.0 + 40.0) / 2  # c is assumed to take the mean of b and a
    assert StrategyView("x", False, soc=1.0, soc_start=1.0, wall_elapsed_s=5.0).eta_s is None
    assert sparkline([1, 2, 3, 4]) == "▁▃▆█" and sparkline([2, 2]) == "▅▅" and sparkline([]) == ""


def test_watch_once_and_json(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    run = tmp_path / "run"
    store = _writer(run)
    try:
        store.begin_phase("strategy:dense-max")
        _rows(store, "dense-max", 1.0, 0.5, 6)
        res = cli("watch", run, "--once")
        assert res.code == 0, res.err
        assert "live  (sim, simulation)  0/2 strategies finished" in res.out
        assert "dense-max" in res.out and "running" in res.out and "power " in res.out and "misses" in res.out
        data = json.loads(cli("watch", run, "--json").out)
        assert data["current"] == "dense-max" and data["strategies"]["dense-max"]["inferences"] == 6
    finally:
        store.close()
    missing = cli("watch", tmp_path / "nosuch", "--timeout", "0")
    assert missing.code == 2 and missing.err.startswith("error: ") and len(missing.err.splitlines()) == 1


def test_run_live_shows_the_view_while_the_run_writes(tmp_path: Path) -> None:
    exp = tmp_path / "tiny.toml"
    exp.write_text(
        textwrap.dedent(
            """
            name = "tiny-live"
            mode = "sim"
            strategies = ["dense-max", "rt3"]
            [requests]
            period_ms = 200.0
            deadline_ms = 115.0
            [battery]
            model = "bucket"
            energy_j = 3000.0
            record_interval_s = 10.0
            """
        )
    )
    env = {**os.environ, "COLUMNS": "120", "TESTBED_COMMIT_INTERVAL_S": "0.05"}
    res = subprocess.run(
        [sys.executable, "-m", "testbed", "run", str(exp), "--out", str(tmp_path / "run"), "--live"],
        capture_output=True, text=True, env=env, check=False, timeout=300,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    assert "tiny-live  (sim, simulation)  complete" in res.stdout  # the live view's last frame
    assert "battery life" in res.stdout  # then the usual table
    assert snapshot(tmp_path / "run").complete
