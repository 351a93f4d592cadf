"""The registry of search algorithms: a name (``--algo``) → a factory of :class:`~testbed.search.searcher.Searcher`.

The RL controller and its two baselines register here; a new algorithm is one ``register_searcher`` call in its
own module (imported below or by the user before the search starts). Everything that chooses an algorithm by
name — the search CLI, :class:`~testbed.search.problem.SearchConfig` validation, the comparison script — goes
through :func:`make_searcher` and :func:`searcher_names`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from devices.errors import BadInputError
from testbed.search.baselines import RandomSearch, TPESearch
from testbed.search.reinforce import Reinforce, ReinforceConfig
from testbed.search.searcher import Searcher
from testbed.search.space import SearchSpace


@dataclass(frozen=True)
class SearcherOptions:
    """What a factory may use besides the space: the seed and the RL controller's settings."""

    seed: int = 0
    rl: ReinforceConfig = field(default_factory=ReinforceConfig)


SearcherFactory = Callable[[SearchSpace, SearcherOptions], Searcher]


@dataclass(frozen=True)
class SearchAlgorithm:
    """One registered algorithm: its ``--algo`` name, a one-line summary and its factory."""

    name: str
    summary: str
    factory: SearcherFactory


_REGISTRY: dict[str, SearchAlgorithm] = {}


def register_searcher(name: str, summary: str, factory: SearcherFactory) -> None:
    """Make ``factory`` available as ``--algo name``; registering a name twice is a programming error."""
    if name in _REGISTRY:
        raise ValueError(f"search algorithm {name!r} is already registered")
    _REGISTRY[name] = SearchAlgorithm(name, summary, factory)


def searcher_names() -> tuple[str, ...]:
    """The registered ``--algo`` names, in registration order."""
    return tuple(_REGISTRY)


def algorithms() -> tuple[SearchAlgorithm, ...]:
    return tuple(_REGISTRY.values())


def check_algorithm(name: str) -> None:
    """Raise :class:`BadInputError` (one line, listing the choices) unless ``name`` is registered."""
    if name not in _REGISTRY:
        raise BadInputError(f"--algo {name!r}: choose {', '.join(_REGISTRY)}")


def make_searcher(name: str, space: SearchSpace, options: SearcherOptions) -> Searcher:
    """A fresh searcher of algorithm ``name`` over ``space``'s decisions."""
    check_algorithm(name)
    return _REGISTRY[name].factory(space, options)


register_searcher(
    "rl",
    "RT3's LSTM controller trained with REINFORCE",
    lambda space, o: Reinforce(space.sizes, o.seed, o.rl),
)
register_searcher("random", "uniform random candidates", lambda space, o: RandomSearch(space.sizes, o.seed))
register_searcher(
    "tpe",
    "Optuna's Tree-structured Parzen Estimator",
    lambda space, o: TPESearch(space.sizes, [d.name for d in space.decisions], o.seed),
)
