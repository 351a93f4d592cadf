from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.errors import BadInputError
from testbed.runstore import RunStore
from testbed.search.baselines import RandomSearch, TPESearch
from testbed.search.problem import Problem, SearchConfig, make_searcher
from testbed.search.reinforce import Reinforce
from testbed.search.runner import STATE_FILE, run_search

from .conftest import make_problem


def _log(store_dir: Path) -> list[dict]:  # type: ignore[type-arg]
    with RunStore.open(store_dir) as s:
        return [json.loads(r[3]) for r in s.rows("log")]


def test_memo_prevents_re_evaluation(problem: Problem) -> None:
    ev = problem.evaluator
    cand = tuple([1] + [0] * (len(problem.space.sizes) - 1))
    first, hit1 = ev.evaluate(cand)
    # same assignment (levels 0, 1, 3); change a decision of the unassigned sparsity level 2 only
    other = list(cand)
    unassigned = next(i for i, d in enumerate(problem.space.decisions) if d.level == 2)
    other[unassigned] = 1
    again, hit2 = ev.evaluate(tuple(other))
    assert (hit1, hit2) == (False, True)
    assert again is first
    assert ev.n_evaluations == 1 and ev.hits == 1


def test_evaluation_reports_every_level(problem: Problem) -> None:
    ev, _ = problem.evaluator.evaluate(tuple([3] + [2] * (len(problem.space.sizes) - 1)))  # levels 0.25/0.5/0.75
    assert ev.sparsity == sorted(ev.sparsity)  # sparser at slower levels
    assert all(0.0 <= a <= 1.0 for a in ev.accuracy)
    assert ev.latency_ms[0] < ev.latency_ms[1] < ev.latency_ms[2] or ev.sparsity[0] < ev.sparsity[2]
    assert ev.terms.deadline_met == [True, True, True]  # the conftest deadline admits exactly this assignment
    ev0, _ = problem.evaluator.evaluate(tuple([0] * len(problem.space.sizes)))  # levels 0/0.25/0.5
    assert not ev0.terms.all_deadlines_met and ev0.terms.accuracy_term == -1.0


@pytest.mark.parametrize("algo", ["rl", "random", "tpe"])
def test_every_algorithm_spends_exactly_the_budget(bp_checkpoint_dir: Path, tmp_path: Path, algo: str) -> None:
    problem = make_problem(bp_checkpoint_dir, algo=algo)
    searcher = make_searcher(SearchConfig(algo=algo), problem.space)
    assert searcher.name == algo
    with RunStore.create(tmp_path, {"seed": 0}) as store:
        res = run_search(searcher, problem.evaluator, 6, tmp_path, store)
    assert res.evaluations == 6 and res.stopped == "budget"
    rows = _log(tmp_path)
    assert len(rows) == res.proposals >= 6
    assert sum(not r["memo_hit"] for r in rows) == 6
    assert [r["proposal"] for r in rows] == list(range(len(rows)))
    assert res.curve == sorted(res.curve) and res.curve[-1] == res.best.reward
    assert all(len(r["latency_ms"]) == 3 and "battery_term" in r["terms"] for r in rows)


def test_the_proposal_cap_stops_a_searcher_stuck_on_known_candidates(problem: Problem) -> None:
    class Stuck(RandomSearch):
        def ask(self) -> tuple[int, ...]:
            return tuple(0 for _ in self.sizes)

    res = run_search(Stuck(problem.space.sizes), problem.evaluator, budget=5, max_proposals=7)
    assert (res.evaluations, res.proposals, res.stopped) == (1, 7, "proposal cap")


@pytest.mark.parametrize("algo", ["rl", "tpe", "random"])
def test_resume_continues_exactly(bp_checkpoint_dir: Path, tmp_path: Path, algo: str) -> None:
    full_dir, part_dir = tmp_path / "full", tmp_path / "part"
    p = make_problem(bp_checkpoint_dir)
    with RunStore.create(full_dir, {}) as store:
        full = run_search(_searcher(algo, p), p.evaluator, 8, full_dir, store)
    p1 = make_problem(bp_checkpoint_dir)
    with RunStore.create(part_dir, {}) as store:
        run_search(_searcher(algo, p1), p1.evaluator, 4, part_dir, store)
        # a row written after the last checkpoint (a crash between commit and checkpoint) must be dropped
        store.add("log", (1e9, f"search:{algo}", "candidate", json.dumps({"proposal": -1})))
    p2 = make_problem(bp_checkpoint_dir)
    fresh = _searcher(algo, p2, seed=123)  # the checkpoint overrides seed and state
    with RunStore.open(part_dir) as store:
        resumed = run_search(fresh, p2.evaluator, 8, part_dir, store, resume=True)
    strip = [(r["candidate"], r["reward"], r["memo_hit"]) for r in _log(full_dir)]
    assert [(r["candidate"], r["reward"], r["memo_hit"]) for r in _log(part_dir)] == strip
    assert resumed.curve == full.curve and resumed.proposals == full.proposals


def _searcher(algo: str, p: Problem, seed: int = 0) -> Reinforce | RandomSearch | TPESearch:
    if algo == "rl":
        return Reinforce(p.space.sizes, seed)
    if algo == "tpe":
        return TPESearch(p.space.sizes, seed=seed)
    return RandomSearch(p.space.sizes, seed)


def test_resume_needs_a_checkpoint_of_the_same_algorithm(problem: Problem, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no search checkpoint"):
        run_search(RandomSearch(problem.space.sizes), problem.evaluator, 2, tmp_path, resume=True)
    run_search(RandomSearch(problem.space.sizes), problem.evaluator, 2, tmp_path)
    assert (tmp_path / STATE_FILE).is_file()
    with pytest.raises(BadInputError, match="--algo random"):
        run_search(TPESearch(problem.space.sizes), problem.evaluator, 3, tmp_path, resume=True)
    with pytest.raises(BadInputError, match="budget"):
        run_search(RandomSearch(problem.space.sizes), problem.evaluator, 0)
