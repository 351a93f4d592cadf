"""A board farm on Ray: every device agent a Ray actor holding one lease and one client, labelled by its profile.

:class:`BoardFarm` starts one :class:`BoardActor` per agent endpoint (no CPU reserved: the board does the work).
The actor takes the board's lease through an :class:`~testbed.agent.pool.AgentPool` of that one endpoint (renewed
in the background) and keeps it until the farm closes; its label is the profile the agent reports (``rpi4``,
``jetson-orin-nano``, …). :meth:`BoardFarm.run` schedules jobs, each asking for a label, on a *free* board of
that label: an actor runs one job at a time, and a job waits until a board of its kind is free. Jobs are plain
callables of a :class:`~testbed.agent.pool.PooledAgent` (pickled to the actor):

- :class:`HilCellJob` — a hil sweep cell: the experiment through the board the farm holds (its
  ``board.agents`` replaced by that board), into the cell's run store, resumed when one was started;
- :class:`ProfileCellJob` — a profiling cell: the steady state of (level, pattern set) cells of an artifact on
  the board, written as a profile table CSV.

The boards stay Ray-free: they run the HTTP agent (``testbed agent serve``); only this controller side uses Ray.

Failure modes: :class:`~devices.errors.BadInputError` for a job whose label no board of the farm has, or an
empty farm; agent errors (a board leased by someone else: 409) propagate from :meth:`BoardFarm.__enter__`
after the actors started so far are closed; a job's own error is its outcome (:attr:`FarmResult.error`).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI
from testbed.agent.pool import AgentEndpoint, AgentPool, PooledAgent
from testbed.distributed.cells import CellError, CellOutcome, CellSpec, error_line, finished_results
from testbed.distributed.grid import Grid

#: A job on one board: called in the board's actor with the leased agent; its return value is the result.
FarmJob = Callable[[PooledAgent], Any]


class HeldAgent:
    """An agent whose lease the farm already holds: ``lease`` and ``close`` do nothing, the rest is the client's.

    It is what a job's own :class:`AgentPool` connects to (``connect=``), so run code written for a pool
    (``run_hil``) works unchanged on a farm board.
    """

    def __init__(self, agent: AgentAPI) -> None:
        self._agent = agent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._agent, name)

    @contextlib.contextmanager
    def lease(self, holder: str, ttl_s: float = 30.0) -> Iterator[AgentAPI]:
        yield cast(AgentAPI, self)

    def close(self) -> None:
        """The farm closes the client."""


class BoardActor:
    """One board of the farm (a Ray actor; see the module text)."""

    def __init__(self, endpoint: AgentEndpoint, holder: str, ttl_s: float = 30.0) -> None:
        self.pool = AgentPool([endpoint], holder, ttl_s)
        self.pool.__enter__()
        self.board = self.pool.first()
        info = self.board.agent.info()
        self._label = str(info.get("profile") or info.get("board") or "unknown")

    def label(self) -> str:
        """The board's profile name, as its agent reports it."""
        return self._label

    def node_id(self) -> str:
        import ray

        node: str = ray.get_runtime_context().get_node_id()
        return node

    def run(self, job: FarmJob) -> Any:
        """``job(board)``; an error comes back as a one-line :class:`~testbed.distributed.cells.CellError`."""
        try:
            return job(self.board)
        except Exception as exc:
            raise CellError(error_line(exc)) from None

    def close(self) -> None:
        self.pool.close()


@dataclass(frozen=True)
class FarmTask:
    """A job for a board labelled ``label``; ``key`` identifies it in the results."""

    key: Any
    label: str
    job: FarmJob


@dataclass(frozen=True)
class FarmResult:
    """How a job ended: its value or its error (one line), the board (URL) and node it ran on, its wall time."""

    key: Any
    value: Any = None
    error: str | None = None
    board: str | None = None
    node_id: str | None = None
    wall_s: float = 0.0


@dataclass
class _Board:
    url: str
    label: str
    actor: Any
    node_id: str
    busy: bool = False
    done: int = 0


class BoardFarm:
    """Agents as Ray actors (see the module text); use as a context manager inside a Ray session."""

    def __init__(self, endpoints: Sequence[AgentEndpoint], holder: str = "testbed-farm", ttl_s: float = 30.0) -> None:
        if not endpoints:
            raise BadInputError("a board farm needs at least one agent URL")
        self.endpoints = list(endpoints)
        self.holder = holder
        self.ttl_s = ttl_s
        self.boards: list[_Board] = []

    def __enter__(self) -> BoardFarm:
        import ray

        actor_cls: Any = ray.remote(num_cpus=0, max_restarts=0)(BoardActor)
        try:
            for e in self.endpoints:
                actor: Any = actor_cls.remote(e, self.holder, self.ttl_s)
                label, node = ray.get([actor.label.remote(), actor.node_id.remote()])
                self.boards.append(_Board(e.url, label, actor, node))
        except Exception:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Release every lease (each board restored) and end the actors; safe to call twice."""
        import ray

        boards, self.boards = self.boards, []
        for b in boards:
            with contextlib.suppress(Exception):
                ray.get(b.actor.close.remote(), timeout=60)
            with contextlib.suppress(Exception):
                ray.kill(b.actor)

    def labels(self) -> dict[str, int]:
        """Boards per label."""
        out: dict[str, int] = {}
        for b in self.boards:
            out[b.label] = out.get(b.label, 0) + 1
        return out

    def run(self, tasks: Sequence[FarmTask], on_done: Callable[[FarmResult], None] | None = None) -> list[FarmResult]:
        """Every task on a free board of its label, as boards become free; results in task order."""
        import ray

        have = self.labels()
        missing = sorted({t.label for t in tasks} - set(have))
        if missing:
            raise BadInputError(
                f"no board of profile {', '.join(missing)} in the farm (it has {', '.join(sorted(have)) or 'none'})"
            )
        queue = list(tasks)
        running: dict[Any, tuple[FarmTask, _Board, float]] = {}
        results: dict[int, FarmResult] = {}
        order = {id(t): i for i, t in enumerate(tasks)}
        while queue or running:
            for t in list(queue):
                board = next((b for b in self.boards if b.label == t.label and not b.busy), None)
                if board is None:
                    continue
                board.busy = True
                queue.remove(t)
                running[board.actor.run.remote(t.job)] = (t, board, time.perf_counter())
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                t, board, t0 = running.pop(ref)
                board.busy = False
                board.done += 1
                try:
                    r = FarmResult(t.key, ray.get(ref), None, board.url, board.node_id, time.perf_counter() - t0)
                except Exception as exc:
                    r = FarmResult(t.key, None, error_line(exc), board.url, board.node_id, time.perf_counter() - t0)
                results[order[id(t)]] = r
                if on_done is not None:
                    on_done(r)
        return [results[i] for i in range(len(tasks))]


# -- jobs ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HilCellJob:
    """A hil cell on the board it is given: ``data`` (a validated experiment table) into ``run_dir``."""

    data: dict[str, Any]
    experiment: str
    base_dir: str
    run_dir: str

    def __call__(self, board: PooledAgent) -> dict[str, Any]:
        from testbed.experiment.config import parse_experiment
        from testbed.experiment.hil import run_hil

        run_dir = Path(self.run_dir)
        done = finished_results(run_dir)
        if done is not None:
            return dict(done)
        cfg = parse_experiment(self.data, self.experiment, self.base_dir)
        cfg = cfg.model_copy(update={"board": cfg.board.model_copy(update={"agents": [board.url]})})
        resumed = (run_dir / "run.sqlite").is_file()
        results = run_hil(cfg, None if resumed else run_dir, run_dir if resumed else None,
                          connect=lambda _e: cast(AgentAPI, HeldAgent(board.agent)))  # fmt: skip
        return dict(results)


@dataclass(frozen=True)
class ProfileCellJob:
    """A profiling cell: ``artifact``'s (level, pattern set) steady states on the board, written to ``out_csv``."""

    artifact: str
    out_csv: str
    levels: tuple[str, ...] | None = None
    window_s: float = 0.2
    max_reps: int = 3

    def __call__(self, board: PooledAgent) -> str:
        from testbed.agent.loading import load_on_agent
        from testbed.experiment.profiler import ProfileOptions, artifact_metadata, profile_through_agent

        loaded = load_on_agent(board.agent, Path(self.artifact), board.local)
        names = [p["name"] for p in loaded["pattern_sets"]]
        opts = ProfileOptions(window_s=self.window_s, warmup=1, min_reps=2, max_reps=self.max_reps,
                              levels=self.levels)  # fmt: skip
        table = profile_through_agent(board.agent, loaded["model_id"], names, artifact_metadata(Path(self.artifact)),
                                      opts)  # fmt: skip
        out = Path(self.out_csv)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(table.to_csv(), encoding="utf-8")
        return str(out)


@dataclass(frozen=True)
class FarmSpec:
    """The boards of a farm: their URLs and the token they share."""

    urls: tuple[str, ...]
    token: str = field(repr=False)

    def endpoints(self) -> list[AgentEndpoint]:
        return [AgentEndpoint(u, self.token) for u in self.urls]


def run_hil_cells(
    specs: Sequence[CellSpec], grid: Grid, retries: int, record: Callable[[CellOutcome], None], token: str | None = None
) -> None:
    """A sweep's hil cells on a farm of the union of their ``board.agents``: each cell on a free board whose
    profile is its ``board.profile``, retried up to ``retries`` times (see :mod:`testbed.distributed.sweep`)."""
    from testbed.agent.client import read_token
    from testbed.runstore.results import StrategyResult

    cells = {c.index: c for c in grid.cells}
    urls: list[str] = []
    for s in specs:
        for u in cells[s.index].config.board.agents:
            if u not in urls:
                urls.append(u)
    first = cells[specs[0].index].config
    if token is None:
        token = read_token(Path(first.board.token_file) if first.board.token_file else None)
    attempts = {s.index: 0 for s in specs}
    todo = list(specs)
    with BoardFarm(FarmSpec(tuple(urls), token).endpoints(), holder=f"testbed-sweep-{first.name}") as farm:
        while todo:
            tasks = [FarmTask(s, cells[s.index].config.board.profile,
                              HilCellJob(s.data, s.experiment, s.base_dir, s.run_dir)) for s in todo]  # fmt: skip
            todo = []
            for r in farm.run(tasks):
                spec = r.key
                attempts[spec.index] += 1
                if r.error is None:
                    results = {k: v for k, v in r.value.items() if isinstance(v, StrategyResult)}
                    record(CellOutcome(spec.index, spec.name, "done", results, node_id=r.node_id,
                                       wall_s=r.wall_s))  # fmt: skip
                elif attempts[spec.index] <= retries:
                    todo.append(spec)
                else:
                    record(CellOutcome(spec.index, spec.name, "failed", error=f"{r.board}: {r.error}"))
