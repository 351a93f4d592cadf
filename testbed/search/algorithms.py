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
from devices.registry import Registry
from testbed.search.baselines import RandomSearch, TPESearch
from testbed.search.reinforce import Reinforce, ReinforceConfig
from testbed.search.searcher import Searcher
from testbed.search.space import DecisionSpace
from testbed.search.structured import StructuredSearch


@dataclass(frozen=True)
class SearcherOptions:
    """What a factory may use besides the space: the seed and the RL controller's settings."""

    seed: int = 0
    rl: ReinforceConfig = field(default_factory=ReinforceConfig)


SearcherFactory = Callable[[DecisionSpace, SearcherOptions], Searcher]


#: The search algorithms by ``--algo`` name, in registration order.
SEARCHERS: Registry[SearcherFactory] = Registry("search algorithm")


def register_searcher(name: str, summary: str, factory: SearcherFactory) -> None:
    """Make ``factory`` available as ``--algo name``; :class:`BadInputError` if the name is taken."""
    SEARCHERS.register(name, factory, summary)


def searcher_names() -> tuple[str, ...]:
    """The registered ``--algo`` names, in registration order."""
    return SEARCHERS.names()


def check_algorithm(name: str) -> None:
    """Raise :class:`BadInputError` (one line, listing the choices) unless ``name`` is registered."""
    if name not in SEARCHERS:
        raise BadInputError(f"--algo {name!r}: choose {', '.join(SEARCHERS)}")


def make_searcher(name: str, space: DecisionSpace, options: SearcherOptions) -> Searcher:
    """A fresh searcher of algorithm ``name`` over ``space``'s decisions."""
    check_algorithm(name)
    return SEARCHERS.get(name)(space, options)


register_searcher(
    "rl",
    "RT3's LSTM controller trained with REINFORCE",
    lambda space, o: Reinforce(space.sizes, o.seed, o.rl, space.decisions),
)
register_searcher("random", "uniform random candidates", lambda space, o: RandomSearch(space.sizes, o.seed))
register_searcher(
    "tpe",
    "Optuna's Tree-structured Parzen Estimator",
    lambda space, o: TPESearch(space.sizes, [d.name for d in space.decisions], o.seed),
)
register_searcher(
    "structured",
    "every level triple, then greedy per layer (the baseline to beat)",
    lambda space, o: StructuredSearch(space, o.seed),  # type: ignore[arg-type]
)
