"""The ask/tell interface shared by the RL controller and its baselines (what the runner drives)."""

from __future__ import annotations

from typing import Any, Protocol

from testbed.search.space import Candidate


class Searcher(Protocol):
    """Proposes candidates and learns from their rewards; its whole state round-trips for ``--resume``.

    ``ask`` returns the next candidate (option index per decision); ``tell`` reports that candidate's reward
    (called exactly once after every ``ask``); ``state_dict``/``load_state_dict`` capture everything that decides
    later proposals (random generator states included), so a resumed search proposes what an uninterrupted
    one would have.
    """

    name: str

    def ask(self) -> Candidate: ...

    def tell(self, candidate: Candidate, reward: float) -> None: ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...
