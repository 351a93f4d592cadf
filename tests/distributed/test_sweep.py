"""Sweeps on a local Ray instance: every cell a verified run store, reruns skip, failures are retried and reported,
a killed worker's cell is retried and resumed, and `testbed report DIR` draws the varied key."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import psutil
import pytest

from devices.errors import BadInputError
from testbed.distributed.grid import Grid, build_grid
from testbed.distributed.sweep import SUMMARY_FILE, SWEEP_FILE, SweepOutcome, run_sweep
from testbed.runstore.reader import RunReader
from testbed.runstore.verify import verify_run

pytestmark = pytest.mark.usefixtures("local_ray")

Swept = tuple[Path, Grid, SweepOutcome]

EXP = """
name = "sweep"
seed = 1
strategies = ["dense-max", "rt3"]
[requests]
period_ms = 200.0
deadline_ms = 115.0
[battery]
model = "bucket"
energy_j = {energy_j}
record_interval_s = 10.0
[policy]
kind = "soc"
thresholds = [0.5, 0.2]
levels = ["f1500", "f1000", "f600"]
"""


def _exp(tmp_path: Path, energy_j: float = 400.0) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(EXP.format(energy_j=energy_j))
    return p


def _digests(out: Path) -> dict[str, str]:
    out_digests = {}
    for d in sorted(out.iterdir()):
        if (d / "run.sqlite").is_file():
            with RunReader.open(d) as r:
                out_digests[d.name] = r.content_sha256
    return out_digests


def _verified(run_dir: Path) -> bool:
    return all(c.passed for c in verify_run(run_dir))


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> Swept:
    tmp = tmp_path_factory.mktemp("sweep")
    grid = build_grid(_exp(tmp), ["requests.period_ms=100,200", "battery.energy_j=300,600"])
    return tmp / "out", grid, run_sweep(grid, tmp / "out")


def test_every_cell_is_one_verified_run_store(swept: Swept) -> None:
    out, _, outcome = swept
    assert [c.status for c in outcome.cells] == ["done"] * 4
    assert outcome.cluster is not None and outcome.cluster.nodes == 1
    index = json.loads((out / SWEEP_FILE).read_text())
    assert index["keys"] == ["requests.period_ms", "battery.energy_j"] and len(index["cells"]) == 4
    for cell in index["cells"]:
        run_dir = out / cell["dir"]
        assert _verified(run_dir)
        with RunReader.open(run_dir) as r:
            assert r.config["requests"]["period_ms"] == cell["values"]["requests.period_ms"]
            assert r.config["battery"]["energy_j"] == cell["values"]["battery.energy_j"]
    summary = json.loads((out / SUMMARY_FILE).read_text())
    lives = [c["life_h"]["rt3"] for c in summary["cells"]]
    assert lives[1] > lives[0] and lives[3] > lives[2]  # twice the energy lasts longer
    assert lives[2] > lives[0]  # fewer requests last longer


def test_a_rerun_skips_finished_cells_and_changes_nothing(swept: Swept) -> None:
    out, grid, _ = swept
    before = _digests(out)
    again = run_sweep(grid, out)
    assert [c.status for c in again.cells] == ["skipped"] * 4 and again.cluster is None
    assert _digests(out) == before


def test_the_same_cells_in_one_process_give_the_same_results(swept: Swept, tmp_path: Path) -> None:
    _, grid, on_ray = swept
    here = run_sweep(grid, tmp_path / "seq", sequential=True)
    assert [c.results for c in here.cells] != []
    for a, b in zip(here.cells, on_ray.cells, strict=True):
        assert {s: r.life_s for s, r in a.results.items()} == {s: r.life_s for s, r in b.results.items()}


def test_a_directory_holding_another_sweep_is_refused(swept: Swept, tmp_path: Path) -> None:
    out, _, _ = swept
    other = build_grid(_exp(tmp_path), ["requests.period_ms=100,300"])
    with pytest.raises(BadInputError, match="holds a different sweep"):
        run_sweep(other, out)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    with pytest.raises(BadInputError, match="not empty and holds no sweep"):
        run_sweep(other, tmp_path / "full")


def test_a_failing_cell_is_retried_then_reported_and_the_others_finish(tmp_path: Path) -> None:
    grid = build_grid(_exp(tmp_path), ["profile.table=rpi4,missing.csv"])
    seen: list[str] = []
    outcome = run_sweep(grid, tmp_path / "out", retries=1, on_done=lambda o: seen.append(o.status))
    good, bad = outcome.cells
    assert good.status == "done" and _verified(tmp_path / "out" / good.name)
    assert bad.status == "failed" and "missing.csv" in (bad.error or "") and "\n" not in (bad.error or "")
    assert sorted(seen) == ["done", "failed"]
    assert outcome.failed == [bad]


def _cell_workers() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if cmd and cmd[0].startswith("ray::execute_cell"):
            found.append(p)
    return found


@pytest.mark.slow  # about 20 s: two 3-s cells, a SIGKILL, a fresh worker and the resumed cell
def test_a_killed_worker_cell_is_retried_and_the_sweep_completes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_COMMIT_INTERVAL_S", "0.05")
    grid = build_grid(_exp(tmp_path, energy_j=30_000.0), ["requests.period_ms=150,200"])
    killed: list[int] = []

    def killer() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not killed:
            started = all((tmp_path / "out" / c.name / "run.sqlite").is_file() for c in grid.cells)
            workers = _cell_workers()
            if started and workers:  # both cells run and have written to their run stores: kill one of them
                time.sleep(0.3)
                os.kill(workers[0].pid, signal.SIGKILL)
                killed.append(workers[0].pid)
            time.sleep(0.1)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    outcome = run_sweep(grid, tmp_path / "out", retries=2)
    t.join(timeout=5)
    assert killed, "no cell worker was found to kill"
    assert [c.status for c in outcome.cells] == ["done", "done"]
    assert any(c.resumed for c in outcome.cells)  # the retry continued the killed cell's run store
    for c in outcome.cells:
        assert _verified(tmp_path / "out" / c.name)


def test_report_of_a_sweep_draws_each_varied_key(swept: Swept, tmp_path: Path) -> None:
    from analysis.report import build_report

    out, _, _ = swept
    rep = build_report([out], tmp_path / "rep", ["png"])
    assert {"sweep-requests-period_ms", "sweep-battery-energy_j"} <= set(rep.figures)
    index = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert len(index["figures"]["sweep-requests-period_ms"]["runs"]) == 4


def _cli(argv: list[str]) -> int:
    from testbed.cli.main import run

    with pytest.raises(SystemExit) as exc:
        run(argv)
    return int(exc.value.code or 0)


def test_cli_sweep_table_rerun_and_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    exp = str(_exp(tmp_path))
    out = str(tmp_path / "out")
    assert _cli(["sweep", exp, "--vary", "requests.period_ms=100,200", "--out", out]) == 0
    text = capsys.readouterr().out
    assert "requests.period_ms" in text and "rt3 h" in text and "2 cells in" in text
    assert _cli(["sweep", exp, "--vary", "requests.period_ms=100,200", "--out", out, "--json"]) == 0
    assert [c["status"] for c in json.loads(capsys.readouterr().out)["cells"]] == ["skipped", "skipped"]
    # bad input: one line, exit 2, nothing created
    for argv, fragment in (
        (["--vary", "requests.period_ms=0"], "greater than 0"),
        (["--vary", "nope"], "expected KEY=V1"),
        (["--vary", "seed=1", "--address", "http://h"], "--address 'http://h'"),
    ):
        assert _cli(["sweep", exp, *argv, "--out", str(tmp_path / "bad")]) == 2
        err = capsys.readouterr().err
        assert fragment in err and err.count("\n") == 1
        assert not (tmp_path / "bad").exists()
    # a cell that fails at run time: reported, exit 1, the other cell finished
    failing = ["sweep", exp, "--vary", "profile.table=rpi4,gone.csv", "--retries", "0", "--out", str(tmp_path / "f")]
    assert _cli(failing) == 1
    captured = capsys.readouterr()
    assert "1 of 2 cells failed" in captured.err and "gone.csv" in captured.err
    assert "failed" in captured.out
