"""The search loop: budget, memo, search log, checkpoints, ``--resume`` and the progress bar.

The **budget** is the number of *distinct* candidate evaluations (the expensive part: building K pattern sets
and measuring their accuracy), the same for RL, random search and TPE. A proposal the memo already holds costs
no evaluation but is still reported to the searcher (RT3 trains its controller on memo hits too) and logged.
The loop stops at the budget, when the space holds no unseen candidate, or after ``max_proposals`` proposals
(default 20 × budget), so a converged controller cannot spin for ever.

Per proposal: ask → evaluate (or memo) → tell → one row in the search log → commit → checkpoint. The
checkpoint (``search_state.pt``, replaced atomically) holds the searcher's state (generator states included),
the memo and the counters; on resume, log rows newer than the checkpoint are dropped and the loop continues
from it, so an interrupted search produces the same sequence as an uninterrupted one.

Search log rows go to the run store's generic ``log`` table: ``t_s`` (seconds since the search started),
``source`` ``search:<algo>``, ``kind`` ``candidate``, ``data`` a JSON object with ``proposal``,
``evaluation`` (index among distinct evaluations), ``memo_hit``, ``candidate`` (option per decision),
``sparsity``/``accuracy``/``latency_ms``/``deadline_latency_ms``/``deadline_ms``/``power_w``/``deadline_met``
per level (fastest first), ``terms`` (every reward term, runs per level), ``reward`` and ``best_reward``.

:func:`search_run` is a whole search run through the run executor (:mod:`testbed.runstore.executor`), as
``testbed search`` makes it: ``DIR/search_config.json`` (what ``--resume`` rebuilds the problem from), the run
store with the same manifest fields as every run, the loop as the run's one unit ``search:<algo>``, its
:class:`~testbed.runstore.results.SearchSummary` as the unit's result, ``summary.json``, ``best.json`` and
``best.rt3``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from devices.errors import BadInputError
from testbed.runstore.executor import RunDescription, RunExecutor, UnitContext
from testbed.runstore.results import SearchSummary
from testbed.runstore.store import RunStore
from testbed.search.evaluator import CandidateEvaluator, Evaluation
from testbed.search.latency import ProfileLatency
from testbed.search.layer_problem import TableLatency
from testbed.search.layerspace import TableEvaluator
from testbed.search.problem import Problem, SearchConfig, build_problem, make_searcher
from testbed.search.searcher import Searcher

STATE_FILE = "search_state.pt"
CONFIG_FILE = "search_config.json"


@dataclass
class SearchResult:
    """Outcome of one search loop: the best evaluation and the best reward after each distinct evaluation
    (what is stored of it is :func:`summarize`'s :class:`SearchSummary`)."""

    algo: str
    best: Evaluation
    proposals: int
    evaluations: int
    memo_hits: int
    wall_s: float
    stopped: str
    curve: list[float] = field(default_factory=list)


def _save_state(path: Path, state: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    os.replace(tmp, path)


def _load_state(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise BadInputError(f"{path}: no search checkpoint to resume from")
    try:
        state: dict[str, Any] = torch.load(path, weights_only=False)  # our own file, written by _save_state
    except Exception as exc:
        raise BadInputError(f"{path}: unreadable search checkpoint ({exc})") from None
    return state


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.fields[info]}"),
        console=Console(stderr=True),
        disable=not enabled,
    )


def _row(proposal: int, ev: Evaluation, hit: bool, deadlines_ms: list[float], best: float) -> dict[str, Any]:
    return {
        "proposal": proposal,
        "evaluation": ev.index,
        "memo_hit": hit,
        "candidate": ev.candidate,
        "sparsity": ev.sparsity,
        "accuracy": ev.accuracy,
        "latency_ms": ev.latency_ms,
        "deadline_latency_ms": ev.deadline_latency_ms,
        "deadline_ms": deadlines_ms,
        "deadline_met": ev.terms.deadline_met,
        "power_w": ev.power_w,
        "extrapolated": ev.extrapolated,
        "terms": ev.terms.to_dict(),
        "reward": ev.reward,
        "best_reward": best,
        "eval_s": 0.0 if hit else ev.eval_s,
    }


def run_search(
    searcher: Searcher,
    evaluator: CandidateEvaluator | TableEvaluator,
    budget: int,
    out_dir: Path | None = None,
    store: RunStore | None = None,
    resume: bool = False,
    max_proposals: int | None = None,
    progress: bool = False,
) -> SearchResult:
    """Run ``searcher`` until ``budget`` distinct evaluations (see the module text).

    ``out_dir``: where ``search_state.pt`` lives (None: no checkpoints, no resume). ``store``: the run store that
    receives the search log (None: no log). Raises :class:`BadInputError` for a budget < 1 or a resume without
    a checkpoint.
    """
    if budget < 1:
        raise BadInputError(f"--budget must be ≥ 1, got {budget}")
    cap = max_proposals if max_proposals is not None else 20 * budget
    source = f"search:{searcher.name}"
    state_path = out_dir / STATE_FILE if out_dir is not None else None
    proposals = 0
    t_offset = 0.0
    curve: list[float] = []
    best: Evaluation | None = None
    if resume:
        if state_path is None:
            raise BadInputError("resume needs an output directory")
        state = _load_state(state_path)
        if state["algo"] != searcher.name:
            raise BadInputError(f"{state_path}: checkpoint of --algo {state['algo']}, not {searcher.name}")
        searcher.load_state_dict(state["searcher"])
        evaluator.restore([Evaluation.from_dict(e) for e in state["memo"]])
        evaluator.hits = int(state["hits"])
        proposals = int(state["proposals"])
        t_offset = float(state["t_s"])
        curve = list(state["curve"])
        best = max(evaluator.memo.values(), key=lambda e: (e.reward, -e.index), default=None)
        if store is not None:
            store.conn.execute("DELETE FROM log WHERE source = ? AND t_s > ?", (source, t_offset))
    space_size = evaluator.space.cardinality()
    feedback = getattr(searcher, "tell_evaluation", None)
    t0 = time.monotonic()
    stopped = "budget"
    with _progress(progress) as bar:
        job = bar.add_task(f"search {searcher.name}", total=budget, completed=evaluator.n_evaluations, info="")
        while evaluator.n_evaluations < budget:
            if proposals >= cap:
                stopped = "proposal cap"
                break
            if evaluator.n_evaluations >= space_size:
                stopped = "space exhausted"
                break
            candidate = searcher.ask()
            ev, hit = evaluator.evaluate(candidate)
            if feedback is not None:  # a searcher that learns from more than the reward (RL's shaped reward)
                feedback(candidate, ev, evaluator.deadlines_ms, evaluator.reward_config)
            else:
                searcher.tell(candidate, ev.reward)
            if best is None or ev.reward > best.reward:
                best = ev
            if not hit:
                curve.append(best.reward)
            t_s = t_offset + time.monotonic() - t0
            if store is not None:
                row = _row(proposals, ev, hit, evaluator.deadlines_ms, best.reward)
                store.log(source, "candidate", row, t_s)
                store.commit()
            proposals += 1
            if state_path is not None:
                _save_state(
                    state_path,
                    {
                        "algo": searcher.name,
                        "proposals": proposals,
                        "t_s": t_s,
                        "hits": evaluator.hits,
                        "curve": curve,
                        "searcher": searcher.state_dict(),
                        "memo": [e.to_dict() for e in evaluator.memo.values()],
                    },
                )
            met = "all met" if best.terms.all_deadlines_met else "deadline missed"
            bar.update(
                job,
                completed=evaluator.n_evaluations,
                info=f"best {best.reward:+.3f} ({met})  proposals {proposals}  memo hits {evaluator.hits}",
            )
    if best is None:
        raise BadInputError("the search made no proposal (budget already spent?)")
    wall = t_offset + time.monotonic() - t0
    return SearchResult(searcher.name, best, proposals, evaluator.n_evaluations, evaluator.hits, wall, stopped, curve)


def summarize(result: SearchResult, problem: Problem) -> SearchSummary:
    """The stored outcome of a search: the best candidate per level (its deadline and runs), counts and curve."""
    best = result.best
    names = problem.latency.level_names
    terms = best.terms
    per_level: list[dict[str, Any]] = [
        {
            "level": names[k],
            "sparsity": best.sparsity[k],
            "accuracy": best.accuracy[k],
            "latency_ms": best.latency_ms[k],
            "deadline_latency_ms": best.deadline_latency_ms[k],
            "deadline_ms": problem.evaluator.deadlines_ms[k],
            "deadline_met": terms.deadline_met[k],
            "runs": terms.runs_per_level[k],
        }
        for k in range(len(names))
    ]
    return SearchSummary(
        algo=result.algo,
        reward=terms.reward,
        terms=dict(terms.to_dict()),
        candidate=list(best.candidate),
        levels=per_level,
        all_deadlines_met=all(r["deadline_met"] for r in per_level),
        latency_source=problem.latency.source,
        evaluations=result.evaluations,
        proposals=result.proposals,
        memo_hits=result.memo_hits,
        wall_s=result.wall_s,
        stopped=result.stopped,
        curve=list(result.curve),
    )


def describe_search(cfg: SearchConfig, ckpt: Path, problem: Problem) -> RunDescription:
    """A search run's manifest entries: no board, governor or meter of its own; the latency model and reward."""
    board = None
    if isinstance(problem.latency, ProfileLatency):
        board = problem.latency.table.meta.get("board")
    elif isinstance(problem.latency, TableLatency):  # --space layer: a per-layer table, measured on a board or not
        board = problem.latency.table.provenance.get("board_profile") or "none (latency table file)"
    return RunDescription(
        config=_search_config_json(cfg, ckpt),
        fidelity="search",
        seed=cfg.seed,
        board=board or "none (op-count model)",
        governor="n/a (search)",
        meter="n/a (search)",
        clock_offsets={},
        extra={
            "latency_source": problem.latency.source,
            "level_names": problem.latency.level_names,
            "deadlines_ms": problem.evaluator.deadlines_ms,
            "reward": problem.reward.to_dict(),
            "decisions": [[d.name, d.n_options] for d in problem.space.decisions],
        },
    )


def _search_config_json(cfg: SearchConfig, ckpt: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(json.dumps({"search": cfg.to_dict(), "checkpoint": str(ckpt)}))
    return data


def _same_search(config: dict[str, Any]) -> object:
    """What a resume must match: the search settings except the budget (a resume may grow it)."""
    search = config.get("search")
    return {k: v for k, v in search.items() if k != "budget"} if isinstance(search, dict) else None


@dataclass(frozen=True)
class SearchRunOutput:
    """What :func:`search_run` produced: the summary, and ``best.rt3`` when it was written."""

    summary: SearchSummary
    artifact: Path | None


def search_run(
    out: Path,
    *,
    ckpt: Path | None = None,
    cfg: SearchConfig | None = None,
    resume: bool = False,
    budget: int | None = None,
    progress: bool = False,
    artifact: bool = True,
) -> SearchRunOutput:
    """A new search of ``ckpt`` with ``cfg`` into ``out``, or (``resume``) the one in ``out`` continued with the
    stored settings (``budget`` may grow it). See the module text for the files written.

    Raises :class:`BadInputError` when ``out`` holds a search already (new run), holds none (resume), or when a new
    run lacks ``ckpt`` or ``cfg``.
    """
    from testbed.rt3.checkpoint import Checkpoint
    from testbed.search.artifact import write_best_artifact

    cfg_path = out / CONFIG_FILE
    if resume:
        if not cfg_path.is_file():
            raise BadInputError(f"{cfg_path}: nothing to resume (no search configuration in --out)")
        stored = json.loads(cfg_path.read_text())
        cfg = SearchConfig.from_dict({**stored["config"], "budget": budget or stored["config"]["budget"]})
        ckpt = Path(stored["checkpoint"])
    elif cfg_path.exists():
        raise BadInputError(f"{cfg_path} exists; use --resume or another --out directory")
    if cfg is None or ckpt is None:
        raise BadInputError("a new search needs a checkpoint and a configuration")
    conf, source = cfg, ckpt
    problem = build_problem(Checkpoint.load(source), conf)
    searcher = make_searcher(conf, problem.space)
    run = RunExecutor.open(
        _search_config_json(conf, source), lambda: describe_search(conf, source, problem),
        None if resume else out, out if resume else None, kind="search", comparable=_same_search,
    )  # fmt: skip
    unit = f"search:{conf.algo}"
    outcome: list[SearchResult] = []

    def search(ctx: UnitContext) -> SearchSummary:
        result = run_search(searcher, problem.evaluator, conf.budget, out, ctx.store, resume=resume, progress=progress)
        outcome.append(result)
        return summarize(result, problem)

    try:
        with run:
            if not resume:
                cfg_path.write_text(
                    json.dumps({"checkpoint": str(source.resolve()), "config": conf.to_dict()}, indent=2)
                )
            run.run_unit(unit, search, phase=f"search {conf.algo}")
            summary = run.finish([unit], SearchSummary)[unit]
    finally:
        close = getattr(problem.latency, "close", None)
        if callable(close):
            close()  # an agent-measured search gives the board's lease back
    (out / "best.json").write_text(json.dumps(summary.to_dict(), indent=2))
    path = None
    if artifact:
        path = write_best_artifact(problem, outcome[0].best, out / "best.rt3", conf.final_finetune_steps, conf.seed)
    return SearchRunOutput(summary, path)
