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
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from devices.errors import BadInputError
from testbed.runstore import RunStore
from testbed.search.evaluator import CandidateEvaluator, Evaluation
from testbed.search.searcher import Searcher

STATE_FILE = "search_state.pt"


@dataclass
class SearchResult:
    """Outcome of one search: the best evaluation and the best reward after each distinct evaluation."""

    algo: str
    best: Evaluation
    proposals: int
    evaluations: int
    memo_hits: int
    wall_s: float
    stopped: str
    curve: list[float] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["best"] = self.best.to_dict()
        return d


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
    evaluator: CandidateEvaluator,
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
            searcher.tell(candidate, ev.reward)
            if best is None or ev.reward > best.reward:
                best = ev
            if not hit:
                curve.append(best.reward)
            t_s = t_offset + time.monotonic() - t0
            if store is not None:
                row = _row(proposals, ev, hit, evaluator.deadlines_ms, best.reward)
                store.add("log", (t_s, source, "candidate", json.dumps(row)))
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
