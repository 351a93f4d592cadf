"""The search-algorithm registry: the seam where a user adds a searcher by name."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devices.errors import BadInputError
from testbed.runstore import RunStore
from testbed.search import algorithms
from testbed.search.algorithms import SearcherOptions, register_searcher, searcher_names
from testbed.search.problem import SearchConfig, make_searcher
from testbed.search.runner import run_search
from testbed.search.space import Candidate, SearchSpace

from .conftest import make_problem


class FirstOptions:
    """Walks the first decision (the level assignment), option 0 elsewhere: a deterministic test searcher."""

    name = "first-options"

    def __init__(self, sizes: list[int]) -> None:
        self.sizes = sizes
        self.step = 0

    def ask(self) -> Candidate:
        first = self.step % self.sizes[0]
        self.step += 1
        return (first, *([0] * (len(self.sizes) - 1)))

    def tell(self, candidate: Candidate, reward: float) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


@pytest.fixture
def first_options() -> Iterator[str]:
    def factory(space: SearchSpace, options: SearcherOptions) -> FirstOptions:
        return FirstOptions(list(space.sizes))

    register_searcher("first-options", "test searcher", factory)
    yield "first-options"
    algorithms.SEARCHERS.unregister("first-options")


def test_the_bundled_algorithms_are_registered() -> None:
    assert searcher_names()[:3] == ("rl", "random", "tpe")
    assert all(e.summary for e in algorithms.SEARCHERS.entries())


def test_an_unknown_algorithm_is_refused_in_one_line() -> None:
    with pytest.raises(BadInputError, match=r"--algo 'nosuch': choose rl, random, tpe"):
        SearchConfig(algo="nosuch")


def test_a_registered_algorithm_runs_a_search_by_name(
    bp_checkpoint_dir: Path, tmp_path: Path, first_options: str
) -> None:
    problem = make_problem(bp_checkpoint_dir, algo=first_options)
    searcher = make_searcher(SearchConfig(algo=first_options), problem.space)
    assert searcher.name == first_options
    with RunStore.create(tmp_path, {"seed": 0}) as store:
        res = run_search(searcher, problem.evaluator, 2, tmp_path, store)
    assert res.evaluations == 2
    assert list(res.best.candidate)[1:] == [0] * (len(problem.space.sizes) - 1)


def test_registering_a_name_twice_is_an_error() -> None:
    with pytest.raises(BadInputError, match="already registered"):
        register_searcher("rl", "again", lambda space, o: FirstOptions(list(space.sizes)))
