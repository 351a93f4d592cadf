"""Searches on Ray Tune (local instance): same budget, memo, log rows and results as the sequential runner."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.runstore.reader import RunReader, SearchSummary
from testbed.runstore.verify import verify_run
from testbed.search.problem import SearchConfig
from testbed.search.runner import search_run
from testbed.search.tune import STATE_FILE, TUNE_DIR, tune_search_run

pytestmark = pytest.mark.usefixtures("local_ray")

#: Small, fast settings: 4 sparsity levels, 2 candidates per layer and level, 1 eval batch.
SMALL = {
    "sparsity_levels": (0.0, 0.25, 0.5, 0.75),
    "pattern_cols": 8,
    "n_candidates": 2,
    "deadlines_ms": (0.7,),
    "accuracy": {"eval_batches": 1},
}


def _log(run_dir: Path) -> list[dict]:
    with RunReader.open(run_dir) as r:
        return [json.loads(row[3]) for row in r.rows("log")]


@pytest.mark.slow  # about 20 s on 2 busy cores
def test_rl_on_tune_with_one_trial_at_a_time_is_the_sequential_search(bp_checkpoint: Path, tmp_path: Path) -> None:
    cfg = SearchConfig(algo="rl", budget=5, **SMALL)  # type: ignore[arg-type]
    seq = search_run(tmp_path / "seq", ckpt=bp_checkpoint, cfg=cfg, artifact=False).summary
    tuned = tune_search_run(tmp_path / "tune", ckpt=bp_checkpoint, cfg=cfg, parallel=1, artifact=False).summary
    assert tuned.candidate == seq.candidate and tuned.reward == seq.reward
    assert (tuned.evaluations, tuned.proposals, tuned.memo_hits) == (seq.evaluations, seq.proposals, seq.memo_hits)
    assert tuned.curve == seq.curve
    a, b = _log(tmp_path / "seq"), _log(tmp_path / "tune")
    assert [r["candidate"] for r in a] == [r["candidate"] for r in b]
    assert [r["reward"] for r in a] == [r["reward"] for r in b]
    assert sorted(a[0]) == sorted(b[0])  # the same row format


@pytest.mark.parametrize("algo", [pytest.param("tpe", marks=pytest.mark.slow), "random"])
def test_tune_searchers_spend_exactly_the_budget_in_batches(algo: str, bp_checkpoint: Path, tmp_path: Path) -> None:
    cfg = SearchConfig(algo=algo, budget=4, seed=3, **SMALL)  # type: ignore[arg-type]
    out = tmp_path / "out"
    done = tune_search_run(out, ckpt=bp_checkpoint, cfg=cfg, parallel=2, artifact=False)
    s = done.summary
    assert s.algo == algo and s.evaluations == 4 and s.stopped == "budget"
    rows = _log(out)
    assert len(rows) == s.proposals and sum(not r["memo_hit"] for r in rows) == 4
    assert [r["proposal"] for r in rows] == list(range(len(rows)))
    assert sorted(r["evaluation"] for r in rows if not r["memo_hit"]) == [0, 1, 2, 3]
    assert s.curve == sorted(s.curve) and s.curve[-1] == s.reward
    with RunReader.open(out) as r:
        stored = r.results()[f"search:{algo}"]
        assert isinstance(stored, SearchSummary) and stored.candidate == s.candidate
        assert r.manifest.get("finished_wall")
    failing = {c.name for c in verify_run(out) if not c.passed}
    assert failing <= {"energy_balance"}  # as for a sequential search: a search records no battery state
    assert (out / TUNE_DIR).is_dir() and (out / STATE_FILE).is_file()
    assert json.loads((out / "best.json").read_text())["reward"] == s.reward


def test_cli_rejects_bad_parallel_options(
    bp_checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from testbed.cli.main import run

    for extra, fragment in (
        (["--address", "auto"], "--address needs --parallel"),
        (["--parallel", "0"], "--parallel must be"),
        (["--parallel", "2", "--address", "http://x"], "--address 'http://x'"),
    ):
        with pytest.raises(SystemExit) as exc:
            run(["search", str(bp_checkpoint), "--out", str(tmp_path / "o"), "--budget", "2", *extra])
        assert exc.value.code == 2
        assert fragment in capsys.readouterr().err
        assert not (tmp_path / "o").exists()


@pytest.mark.slow  # two Tune experiments: about 60 s on 2 busy cores
def test_a_resume_grows_the_budget_of_a_finished_tune_search(bp_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    cfg = SearchConfig(algo="rl", budget=3, **SMALL)  # type: ignore[arg-type]
    first = tune_search_run(out, ckpt=bp_checkpoint, cfg=cfg, parallel=2, artifact=False).summary
    again = tune_search_run(out, resume=True, budget=6, artifact=False).summary
    assert (first.evaluations, again.evaluations) == (3, 6)
    assert again.curve[:3] == first.curve and again.reward >= first.reward
    rows = _log(out)
    assert [r["proposal"] for r in rows] == list(range(again.proposals))
    assert sorted(r["evaluation"] for r in rows if not r["memo_hit"]) == list(range(6))
    assert (out / f"{TUNE_DIR}.1").is_dir()


@pytest.mark.slow  # a killed driver and Tune's restore: about 90 s on 2 busy cores
def test_a_killed_tune_search_resumes_from_tunes_experiment(bp_checkpoint: Path, tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import sys
    import time

    out = tmp_path / "out"
    args = [sys.executable, "-m", "testbed", "search", str(bp_checkpoint), "--out", str(out), "--algo", "random",
            "--budget", "8", "--parallel", "2", "--deadline-ms", "0.7", "--sparsity", "0,0.25,0.5,0.75",
            "--candidates", "2", "--eval-batches", "1", "--no-artifact", "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / STATE_FILE).is_file() and len(_log(out)) >= 2:  # a batch is logged and saved
            break
        time.sleep(0.5)
    assert proc.poll() is None, "the search ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)  # the driver and the Ray it started
    proc.wait(timeout=30)
    logged = len(_log(out))
    done = tune_search_run(out, resume=True, artifact=False).summary
    assert done.evaluations == 8 and done.stopped == "budget"
    rows = _log(out)
    assert len(rows) >= logged and [r["proposal"] for r in rows] == list(range(done.proposals))
    assert sorted(r["evaluation"] for r in rows if not r["memo_hit"]) == list(range(8))
