"""One resumable run executor for every kind of run: simulated and hil experiments, searches, sweeps.

A run is a list of named *units* of work (the strategies of an experiment, ``search:<algo>`` for a
search). The executor owns everything around them that must be the same in every mode:

- opening: a new run store in ``out_dir`` with the manifest (:class:`RunDescription` plus the
  run UUID, wall time, source hash, versions, kernel and host of :func:`base_manifest`), or the run in
  ``resume_dir`` after checking that it was started with the same configuration; phases a killed
  process left open are marked interrupted (and an ``interrupted`` event is logged);
- the checkpoint loop: for each unit that has no result yet, the unit runner gets the unit's last
  checkpoint (its rows after it are discarded first; without one its rows are cleared), runs inside a
  ``strategy:<unit>`` phase, and its typed result is stored;
- the summary: ``summary.json`` (every unit's result) beside the run file and ``finished_wall`` in the
  manifest.

A mode supplies only what differs: how to describe its run, and a :data:`UnitRunner`.

Failure modes: :class:`~devices.errors.BadInputError` when neither directory is given, when
``out_dir`` already holds a run, when ``resume_dir`` holds none, or when its configuration differs;
:class:`~devices.errors.TestbedError` when a unit's stored result is not of the expected type.
Errors of a unit runner propagate; its phase stays open and is marked interrupted on resume.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from devices.errors import BadInputError, TestbedError
from testbed.runstore.manifest import base_manifest
from testbed.runstore.results import UnitResult
from testbed.runstore.schema import REQUIRED_MANIFEST
from testbed.runstore.store import RunStore

R = TypeVar("R", bound=UnitResult)

#: The manifest keys of every finished run, whatever its mode (sim, hil, search, sweep).
FINISHED_MANIFEST: tuple[str, ...] = (*REQUIRED_MANIFEST, "finished_wall")

#: ``progress(unit, fraction)``: how far a unit is (0..1; for experiments the fraction of the battery used).
ProgressFn = Callable[[str, float], None]


def commit_interval_s() -> float:
    """Seconds between run-store commits: 1 s, or ``TESTBED_COMMIT_INTERVAL_S`` (tests use a shorter one)."""
    raw = os.environ.get("TESTBED_COMMIT_INTERVAL_S", "1.0")
    try:
        value = float(raw)
    except ValueError:
        raise BadInputError(f"TESTBED_COMMIT_INTERVAL_S={raw!r} is not a number") from None
    if not value > 0:
        raise BadInputError(f"TESTBED_COMMIT_INTERVAL_S must be > 0, got {raw}")
    return value


def utc_now() -> str:
    """The wall time as the manifest writes it (ISO 8601, UTC, seconds)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass(frozen=True)
class RunDescription:
    """What a mode says about its run; every mode gives every field (None where it does not apply).

    ``config`` is the run's configuration as JSON (what a resume must match); ``fidelity`` says what
    produced the numbers (``simulation``, ``hardware-in-the-loop``, ``search``, …); ``board``,
    ``governor`` and ``meter`` name the device side; ``clock_offsets`` relates the run's ``t_s`` to
    device clocks; ``extra`` holds mode-specific manifest entries.
    """

    config: dict[str, Any]
    fidelity: str
    seed: int
    board: str | None
    governor: str | None
    meter: str | None
    clock_offsets: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def manifest(self) -> dict[str, Any]:
        """The manifest of a new run: the machine and code (:func:`base_manifest`), then this description."""
        m = base_manifest(self.config, self.fidelity, self.seed)
        m.update(board=self.board, governor=self.governor, meter=self.meter, clock_offsets=self.clock_offsets)
        m.update(self.extra)
        return m


@dataclass(frozen=True)
class Checkpoint:
    """A unit's last committed checkpoint: run time ``t_s`` (s) and the writer's JSON state."""

    t_s: float
    state: dict[str, Any]


@dataclass(frozen=True)
class UnitContext:
    """What a unit runner gets: its unit, the store to write to, where to resume from, a progress callback."""

    unit: str
    store: RunStore
    resume_from: Checkpoint | None
    progress: Callable[[float], None] | None


#: Runs one unit to its end and returns its result (the executor stores it).
UnitRunner = Callable[[UnitContext], UnitResult]


def _identity(config: dict[str, Any]) -> object:
    return config


class RunExecutor:
    """An open run (see the module text). Use :meth:`open`, then :meth:`run_units`, then :meth:`finish`."""

    def __init__(self, store: RunStore, resumed: bool) -> None:
        self.store = store
        self.resumed = resumed

    @classmethod
    def open(
        cls,
        config: dict[str, Any],
        describe: Callable[[], RunDescription],
        out_dir: Path | None,
        resume_dir: Path | None,
        *,
        kind: str = "experiment",
        comparable: Callable[[dict[str, Any]], object] = _identity,
    ) -> RunExecutor:
        """Create a run in ``out_dir`` (``describe()`` gives its manifest) or reopen ``resume_dir``.

        A resume is refused unless ``comparable`` of the stored configuration equals ``comparable(config)``
        (``kind`` names the configuration in the message).
        """
        interval_s = commit_interval_s()
        if resume_dir is not None:
            store = RunStore.open(resume_dir, interval_s)
            old = store.manifest().get("config")
            if not isinstance(old, dict) or comparable(old) != comparable(config):
                store.conn.close()
                raise BadInputError(f"{resume_dir}: the run was started with a different {kind} configuration")
            for name in store.mark_interrupted():
                store.add("events", (None, 0.0, "interrupted", f"phase {name} did not end; resumed"))
            store.commit()
            return cls(store, resumed=True)
        if out_dir is None:
            raise BadInputError("give --out DIR for a new run or --resume DIR to continue one")
        return cls(RunStore.create(out_dir, describe().manifest(), interval_s), resumed=False)

    # -- phases and units -------------------------------------------------------------------------------

    @property
    def setup_phase(self) -> str:
        """``resume`` when this process continues a run, else ``setup``."""
        return "resume" if self.resumed else "setup"

    @contextmanager
    def phase(self, name: str, store: RunStore | None = None) -> Iterator[None]:
        """A phase around a block: its start and end times recorded; left open when the block raises."""
        s = store if store is not None else self.store
        s.begin_phase(name)
        yield
        s.end_phase(name)

    def connection(self) -> RunStore:
        """Another connection to this run (one per writer thread; the caller closes it)."""
        return RunStore.open(self.store.path, self.store.commit_interval_s)

    def pending(self, units: Sequence[str]) -> list[str]:
        """The units of ``units`` that have no stored result yet, in order."""
        done = set(self.store.finished_units())
        return [u for u in units if u not in done]

    def run_unit(
        self,
        unit: str,
        runner: UnitRunner,
        progress: ProgressFn | None = None,
        *,
        store: RunStore | None = None,
        phase: str | None = None,
    ) -> UnitResult:
        """Run ``unit`` from its checkpoint (or from scratch), in the phase ``phase`` (default
        ``strategy:<unit>``), and store its result; on ``store`` (default the executor's own)."""
        s = store if store is not None else self.store
        ck = s.checkpoint(unit)
        if ck is not None:
            s.discard_after(unit, ck[0])
        else:
            s.clear_strategy(unit)
        bound = None if progress is None else (lambda frac: progress(unit, frac))
        with self.phase(phase or f"strategy:{unit}", s):
            result = runner(UnitContext(unit, s, Checkpoint(*ck) if ck is not None else None, bound))
            s.set_result(unit, result)
        return result

    def run_units(
        self,
        units: Sequence[str],
        runner: UnitRunner,
        progress: ProgressFn | None = None,
        on_start: Callable[[str], None] | None = None,
        *,
        store: RunStore | None = None,
    ) -> None:
        """Run every unit of ``units`` without a result, one after another (see :meth:`run_unit`)."""
        done = set((store if store is not None else self.store).finished_units())
        for unit in units:
            if unit in done:
                continue
            if on_start is not None:
                on_start(unit)
            self.run_unit(unit, runner, progress, store=store)

    # -- the end ---------------------------------------------------------------------------------------

    def finish(self, units: Sequence[str], kind: type[R]) -> dict[str, R]:
        """The results of ``units`` in order; written to ``summary.json``, and ``finished_wall`` set."""
        stored = self.store.results()
        summary: dict[str, R] = {}
        for unit in units:
            result = stored.get(unit)
            if not isinstance(result, kind):
                raise TestbedError(f"{self.store.path}: {unit}: no {kind.__name__} stored")
            summary[unit] = result
        write_summary(self.store.path.parent, summary)
        self.store.set_manifest("finished_wall", utc_now())
        return summary

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> RunExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_summary(run_dir: Path, results: Mapping[str, UnitResult]) -> Path:
    """``run_dir/summary.json``: every unit's result as its JSON object, in order."""
    path = run_dir / "summary.json"
    path.write_text(json.dumps({u: r.to_dict() for u, r in results.items()}, indent=2) + "\n")
    return path
