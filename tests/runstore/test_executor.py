"""The run executor on a real run store: new run, crash, resume from the checkpoint, summary and manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.errors import BadInputError, TestbedError
from testbed.runstore.executor import RunDescription, RunExecutor, UnitContext
from testbed.runstore.reader import RunReader
from testbed.runstore.results import SearchSummary, StrategyResult
from testbed.runstore.schema import REQUIRED_MANIFEST
from testbed.runstore.store import RunStore
from testbed.runstore.verify import check_manifest, check_phases

CONFIG = {"name": "toy", "strategies": ["a", "b", "c"]}
STEPS = 6


def _describe() -> RunDescription:
    return RunDescription(CONFIG, "simulation", 3, "rpi4", "policy:soc", "model://rpi4", {"sim": 0.0}, {"x": 1})


class Toy:
    """A unit runner: one event row and one checkpoint per step; ``crash_in`` raises after step 2's checkpoint."""

    def __init__(self, crash_in: str | None = None) -> None:
        self.crash_in = crash_in
        self.calls: list[tuple[str, int]] = []

    def __call__(self, ctx: UnitContext) -> StrategyResult:
        start = int(ctx.resume_from.state["next"]) if ctx.resume_from is not None else 0
        self.calls.append((ctx.unit, start))
        for i in range(start, STEPS):
            ctx.store.add("events", (ctx.unit, float(i), "step", None))
            if ctx.unit == self.crash_in and i == 3:
                raise RuntimeError("killed")  # row 3 is buffered, its checkpoint never written
            ctx.store.commit((ctx.unit, float(i), {"next": i + 1}))
            if ctx.progress is not None:
                ctx.progress((i + 1) / STEPS)
        return StrategyResult.from_counts(
            ctx.unit, life_s=float(STEPS), inferences=STEPS, deadline_misses=0, accuracy_time_weighted=0.9,
            switches=0, level_changes=0, load_energy_j=1.0, soc_end=0.0, end_reason="empty",
            time_at_level_s={"f": float(STEPS)}, time_at_set_s={"s": float(STEPS)},
        )  # fmt: skip


def test_new_run_writes_manifest_summary_and_finished_wall(tmp_path: Path) -> None:
    seen: list[tuple[str, float]] = []
    with RunExecutor.open(CONFIG, _describe, tmp_path / "run", None) as run:
        assert not run.resumed and run.setup_phase == "setup"
        run.run_units(["a", "b"], Toy(), lambda u, f: seen.append((u, f)))
        results = run.finish(["a", "b"], StrategyResult)
    assert list(results) == ["a", "b"] and seen[-1] == ("b", 1.0)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary == {u: r.to_dict() for u, r in results.items()}
    with RunStore.open(tmp_path / "run") as store:
        m = store.manifest()
        assert set(REQUIRED_MANIFEST) | {"finished_wall", "x"} <= set(m)
        assert (m["board"], m["meter"], m["seed"], m["config"]) == ("rpi4", "model://rpi4", 3, CONFIG)
        assert [p["name"] for p in store.phases()] == ["strategy:a", "strategy:b"]
    with RunReader.open(tmp_path / "run") as reader:
        assert check_manifest(reader).passed and check_phases(reader).passed


def test_resume_continues_from_the_checkpoint(tmp_path: Path) -> None:
    crashing = Toy(crash_in="b")
    with pytest.raises(RuntimeError), RunExecutor.open(CONFIG, _describe, tmp_path, None) as run:
        run.run_units(CONFIG["strategies"], crashing)
    assert crashing.calls == [("a", 0), ("b", 0)]
    with RunStore.open(tmp_path) as store:
        assert store.finished_units() == ["a"]
        assert [r[1] for r in store.rows("events", "b")] == [0.0, 1.0, 2.0, 3.0]  # row 3 beyond the checkpoint

    again = Toy()
    with RunExecutor.open(CONFIG, _describe, None, tmp_path) as run:
        assert run.resumed and run.setup_phase == "resume"
        with run.phase(run.setup_phase):
            pass
        run.run_units(CONFIG["strategies"], again)
        results = run.finish(CONFIG["strategies"], StrategyResult)
    assert again.calls == [("b", 3), ("c", 0)]  # a is done; b continues after its last checkpoint
    assert list(results) == ["a", "b", "c"]
    with RunStore.open(tmp_path) as store:
        assert [r[1] for r in store.rows("events", "b")] == [float(i) for i in range(STEPS)]  # none lost, none twice
        interrupted = [r for r in store.rows("events") if r[2] == "interrupted"]
        assert len(interrupted) == 1 and "strategy:b" in interrupted[0][3]
        names = [p["name"] for p in store.phases()]
        assert "strategy:b (interrupted)" in names and names.count("strategy:b") == 1
        assert "finished_wall" in store.manifest()
    with RunReader.open(tmp_path) as reader:
        assert check_phases(reader).passed


def test_resume_refuses_another_configuration(tmp_path: Path) -> None:
    with RunExecutor.open(CONFIG, _describe, tmp_path, None) as run:
        run.run_units(["a"], Toy())
    with pytest.raises(BadInputError, match="different search configuration"):
        RunExecutor.open({**CONFIG, "name": "other"}, _describe, None, tmp_path, kind="search")
    # a comparison that ignores what may change on resume (the search's budget)
    with RunExecutor.open({**CONFIG, "name": "other"}, _describe, None, tmp_path, comparable=len) as run:
        assert run.resumed


def test_bad_directories_and_wrong_result_types(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--out DIR"):
        RunExecutor.open(CONFIG, _describe, None, None)
    with pytest.raises(BadInputError, match="no run store"):
        RunExecutor.open(CONFIG, _describe, None, tmp_path / "none")
    with RunExecutor.open(CONFIG, _describe, tmp_path, None) as run:
        run.run_units(["a"], Toy())
        with pytest.raises(TestbedError, match="no SearchSummary"):
            run.finish(["a"], SearchSummary)
    with pytest.raises(BadInputError, match="already exists"):
        RunExecutor.open(CONFIG, _describe, tmp_path, None)


def test_one_connection_per_writer_thread(tmp_path: Path) -> None:
    import threading

    with RunExecutor.open(CONFIG, _describe, tmp_path, None) as run:

        def worker(units: list[str]) -> None:
            own = run.connection()
            try:
                run.run_units(units, Toy(), store=own)
            finally:
                own.close()

        threads = [threading.Thread(target=worker, args=(u,)) for u in (["a", "c"], ["b"])]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results = run.finish(CONFIG["strategies"], StrategyResult)
    assert [r.inferences for r in results.values()] == [STEPS] * 3
