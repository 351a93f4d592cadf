"""A sweep: every cell of a :class:`~testbed.distributed.grid.Grid` one run store under ``DIR``, run as Ray tasks.

Layout of ``DIR``::

    sweep.json              the grid: experiment file and its SHA-256, the --vary lists, --seeds, and per cell
                            its index, directory and values (what ``testbed report DIR`` reads)
    sweep_summary.json      per cell: status (done, skipped, failed), the node it ran on, its error, and every
                            strategy's battery life (h)
    cNNN-key=value…/        one run store per cell (``run.sqlite``, ``summary.json``), as ``testbed run`` writes it

A cell is one call of :func:`execute_cell` in a Ray worker: it runs the cell's experiment through
:func:`~testbed.experiment.runner.run_experiment` into its directory, or resumes the run there when one was
started (a retry after a killed worker, or a rerun of an interrupted sweep); the run executor makes the resumed
result equal to an uninterrupted one. Ray retries a cell whose worker died or that raised, up to ``retries``
times (``max_retries`` with ``retry_exceptions``); a cell that still fails is reported with its error, and the
other cells go on. On a rerun into the same ``DIR`` finished cells (``finished_wall`` in the manifest) are
skipped; a ``DIR`` that holds a different sweep is refused. hil cells go to the board farm
(:mod:`testbed.distributed.farm`): each runs on a free board whose profile is the cell's ``board.profile``.

``sequential=True`` runs the same cells one after another in this process (the baseline of ``make bench``).

Failure modes: :class:`~devices.errors.BadInputError` when ``DIR`` holds another sweep or a file is in the
way; failed cells do not raise (see :attr:`SweepOutcome.failed`).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.distributed.cells import CellOutcome, CellSpec, error_line, execute_cell, finished_results
from testbed.distributed.cluster import ClusterInfo, ray_session
from testbed.distributed.grid import Grid

SWEEP_FILE = "sweep.json"
SUMMARY_FILE = "sweep_summary.json"
#: Version of the ``sweep.json`` layout (analysis reads it).
SWEEP_VERSION = 1


@dataclass(frozen=True)
class SweepOutcome:
    """Every cell's outcome in grid order, where it ran and how long the sweep took (s)."""

    out_dir: Path
    cells: list[CellOutcome]
    cluster: ClusterInfo | None
    wall_s: float

    @property
    def failed(self) -> list[CellOutcome]:
        return [c for c in self.cells if c.status == "failed"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "out_dir": str(self.out_dir),
            "cluster": None if self.cluster is None else self.cluster.describe(),
            "wall_s": self.wall_s,
            "cells": [c.to_dict() for c in self.cells],
        }


def prepare_dir(grid: Grid, out_dir: Path) -> None:
    """Write ``sweep.json`` (or check that the one there is this sweep's); :class:`BadInputError` otherwise."""
    index = {
        "sweep_version": SWEEP_VERSION,
        "experiment": str(grid.experiment),
        **grid.identity(),
        "keys": grid.keys,
        "cells": [{"index": c.index, "dir": c.name, "values": c.values} for c in grid.cells],
    }
    path = out_dir / SWEEP_FILE
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: not a directory")
    if path.is_file():
        try:
            old = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise BadInputError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from None
        if {k: old.get(k) for k in grid.identity()} != grid.identity():
            raise BadInputError(f"{out_dir} holds a different sweep (experiment or grid changed); use another --out")
        return
    if out_dir.is_dir() and any(out_dir.iterdir()):
        raise BadInputError(f"{out_dir} is not empty and holds no sweep; use another --out")
    out_dir.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")


def run_sweep(
    grid: Grid,
    out_dir: Path,
    *,
    address: str | None = None,
    retries: int = 2,
    sequential: bool = False,
    num_cpus: int | None = None,
    token: str | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callable[[CellOutcome], None] | None = None,
) -> SweepOutcome:
    """Run every unfinished cell of ``grid`` into ``out_dir`` (see the module text).

    ``on_start(total, already_done)`` is called once the skipped cells are known, ``on_done(outcome)`` after every
    cell (skipped ones included). ``token``: the agents' token for hil cells (default: their ``board.token_file``).
    """
    if retries < 0:
        raise BadInputError(f"--retries must be ≥ 0, got {retries}")
    t0 = time.perf_counter()
    prepare_dir(grid, out_dir)
    outcomes: dict[int, CellOutcome] = {}
    pending: list[CellSpec] = []
    for cell in grid.cells:
        done = finished_results(out_dir / cell.name)
        if done is not None:
            outcomes[cell.index] = CellOutcome(cell.index, cell.name, "skipped", done)
        else:
            pending.append(CellSpec.of(cell, grid, out_dir))
    if on_start is not None:
        on_start(len(grid.cells), len(outcomes))
    for o in outcomes.values():
        if on_done is not None:
            on_done(o)

    def record(o: CellOutcome) -> None:
        outcomes[o.index] = o
        if on_done is not None:
            on_done(o)

    cluster: ClusterInfo | None = None
    hil = [s for s in pending if s.data.get("mode") == "hil"]
    sim = [s for s in pending if s.data.get("mode") != "hil"]
    if sequential:
        for spec in pending:
            record(_run_here(spec, retries))
    elif pending:
        with ray_session(address, num_cpus) as cluster:
            if sim:
                _run_on_ray(sim, retries, record)
            if hil:
                from testbed.distributed.farm import run_hil_cells

                run_hil_cells(hil, grid, retries, record, token)
    outcome = SweepOutcome(out_dir, [outcomes[c.index] for c in grid.cells], cluster, time.perf_counter() - t0)
    (out_dir / SUMMARY_FILE).write_text(json.dumps(outcome.to_dict(), indent=2) + "\n", encoding="utf-8")
    return outcome


def _run_here(spec: CellSpec, retries: int) -> CellOutcome:
    err = ""
    for _ in range(retries + 1):
        try:
            return execute_cell(spec)
        except Exception as exc:
            err = error_line(exc)
    return CellOutcome(spec.index, spec.name, "failed", error=err)


def _run_on_ray(specs: Sequence[CellSpec], retries: int, record: Callable[[CellOutcome], None]) -> None:
    import ray

    task = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=True)(execute_cell)
    env = {k: v for k, v in os.environ.items() if k.startswith("TESTBED_")}
    refs = {task.options(runtime_env={"env_vars": env} if env else None).remote(s): s for s in specs}
    waiting = list(refs)
    while waiting:
        ready, waiting = ray.wait(waiting, num_returns=1)
        for ref in ready:
            spec = refs[ref]
            try:
                record(ray.get(ref))
            except Exception as exc:  # the task failed every attempt (or its worker died every time)
                record(CellOutcome(spec.index, spec.name, "failed", error=error_line(exc)))


def summary_rows(outcome: SweepOutcome, grid: Grid) -> tuple[list[str], list[list[str]]]:
    """The summary table: one row per cell (its values, status, node, life per strategy in hours, error)."""
    strategies: list[str] = []
    for c in grid.cells:
        for s in c.config.strategies:
            if s not in strategies:
                strategies.append(s)
    header = ["cell", *grid.keys, "status", *[f"{s} h" for s in strategies]]
    rows: list[list[str]] = []
    for cell, o in zip(grid.cells, outcome.cells, strict=True):
        lives = [f"{o.results[s].life_h:.3f}" if s in o.results else "-" for s in strategies]
        status = o.status if o.error is None else f"failed: {o.error}"
        rows.append([str(cell.index), *[str(cell.values.get(k, "")) for k in grid.keys], status, *lives])
    return header, rows
