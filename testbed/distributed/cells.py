"""One cell of a sweep: what a worker gets (:class:`CellSpec`), how it ended (:class:`CellOutcome`), and
:func:`execute_cell`, the Ray task that runs (or resumes) a simulated cell's experiment into its run store.

Errors leave a worker as :class:`CellError`, one line (:func:`error_line`), so they always pickle and print alike.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.errors import BadInputError, TestbedError
from testbed.distributed.grid import Cell, Grid
from testbed.runstore.reader import RunReader
from testbed.runstore.results import StrategyResult
from testbed.runstore.store import RUN_FILE


@dataclass(frozen=True)
class CellSpec:
    """What a worker needs to run one cell: its validated TOML table, where it was read from, its directory."""

    index: int
    name: str
    run_dir: str
    data: dict[str, Any]
    experiment: str
    base_dir: str

    @classmethod
    def of(cls, cell: Cell, grid: Grid, out_dir: Path) -> CellSpec:
        return cls(cell.index, cell.name, str(out_dir / cell.name), cell.data, str(grid.experiment),
                   str(grid.experiment.parent))  # fmt: skip


@dataclass(frozen=True)
class CellOutcome:
    """How one cell ended: ``done`` (ran now), ``skipped`` (finished before), ``failed`` (``error`` says why)."""

    index: int
    name: str
    status: str
    results: dict[str, StrategyResult] = field(default_factory=dict)
    error: str | None = None
    node_id: str | None = None
    resumed: bool = False
    wall_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index, "name": self.name, "status": self.status, "error": self.error,
            "node_id": self.node_id, "resumed": self.resumed, "wall_s": self.wall_s,
            "life_h": {s: r.life_h for s, r in self.results.items()},
        }  # fmt: skip


def finished_results(run_dir: Path) -> dict[str, StrategyResult] | None:
    """The stored results of a finished run in ``run_dir`` (read-only), or None when it is not finished."""
    if not (run_dir / RUN_FILE).is_file():
        return None
    try:
        with RunReader.open(run_dir) as reader:
            if not reader.manifest.get("finished_wall"):
                return None
            return {k: v for k, v in reader.results().items() if isinstance(v, StrategyResult)}
    except BadInputError:
        return None


def _node_id() -> str | None:
    try:
        import ray

        if ray.is_initialized():
            node: str = ray.get_runtime_context().get_node_id()
            return node
    except Exception:  # outside a Ray worker
        return None
    return None


class CellError(TestbedError):
    """A cell failed; the message is the original error's type and first line (it pickles, unlike some errors)."""


def execute_cell(spec: CellSpec) -> CellOutcome:
    """Run (or resume) one cell's experiment into its directory; what a Ray task runs (see the module text).

    Errors are raised as :class:`CellError` (one line)."""
    try:
        return _execute_cell(spec)
    except Exception as exc:
        raise CellError(error_line(exc)) from None


def _execute_cell(spec: CellSpec) -> CellOutcome:
    from testbed.experiment.config import parse_experiment
    from testbed.experiment.runner import run_experiment

    t0 = time.perf_counter()
    run_dir = Path(spec.run_dir)
    cfg = parse_experiment(spec.data, spec.experiment, spec.base_dir)
    done = finished_results(run_dir)
    resumed = False
    if done is None:
        resumed = (run_dir / RUN_FILE).is_file()
        done = run_experiment(cfg, None if resumed else run_dir, run_dir if resumed else None)
    return CellOutcome(spec.index, spec.name, "done", dict(done), node_id=_node_id(), resumed=resumed,
                       wall_s=time.perf_counter() - t0)  # fmt: skip


def error_line(exc: BaseException) -> str:
    """One line for a failed cell: the original exception of a Ray task error, its type and first line."""
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, BaseException) else exc
    text = str(err).strip().splitlines()
    if isinstance(err, CellError):
        return text[0] if text else "CellError"
    return f"{type(err).__name__}: {text[0] if text else ''}".rstrip(": ")
