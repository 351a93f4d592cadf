"""The structured baseline every learned searcher must beat: every level triple, then greedy per layer.

Phase 1 proposes the space's ``structured_seeds()`` — for RT3's spaces every strictly increasing triple of
sparsity levels over the three frequency levels (C(10, 3) = 120) with every layer of a level at that level
(pattern choices "any"). Phase 2 is coordinate ascent from the best seed over ``coordinates()`` (per frequency
level, per layer): move one decision by ±1 option, keep the move when the reward rises (first improvement);
when a whole pass improves nothing, try ±2, ±3, … ; when no step size helps (a local optimum) it spends the
rest of the budget on seeded random candidates. Deterministic; the whole state round-trips for ``--resume``.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np

from devices.errors import BadInputError, TestbedError
from testbed.search.space import Candidate


class StructuredSpace(Protocol):
    """What the baseline needs from a space besides the decision sizes."""

    @property
    def sizes(self) -> list[int]: ...

    def structured_seeds(self) -> list[Candidate]: ...

    def coordinates(self) -> list[int]: ...


class StructuredSearch:
    """Seeds first, then greedy coordinate moves (see the module text)."""

    name = "structured"

    def __init__(self, space: StructuredSpace, seed: int = 0) -> None:
        if not hasattr(space, "structured_seeds"):
            raise BadInputError("--algo structured needs a space with level triples (RT3's spaces)")
        self.sizes = list(space.sizes)
        self.seeds = [tuple(c) for c in space.structured_seeds()]
        self.coords = list(space.coordinates())
        self.steps = list(range(1, max(self.sizes)))
        self.rng = np.random.default_rng(seed)
        self.seed_idx = 0
        self.best: Candidate | None = None
        self.best_reward = -np.inf
        self.current: Candidate | None = None
        self.current_reward = -np.inf
        self.coord_pos = 0
        self.direction = 0
        self.step_idx = 0
        self.improved = False
        self.pending: Candidate | None = None

    def _advance(self) -> None:
        self.direction += 1
        if self.direction == 2:
            self.direction = 0
            self.coord_pos += 1
            if self.coord_pos == len(self.coords):
                self.coord_pos = 0
                if self.improved:
                    self.improved = False
                else:
                    self.step_idx += 1

    def _next(self) -> Candidate:
        if self.seed_idx < len(self.seeds):
            self.seed_idx += 1
            return self.seeds[self.seed_idx - 1]
        if self.current is None:
            self.current, self.current_reward = self.best, self.best_reward
        while self.current is not None and self.step_idx < len(self.steps) and self.coords:
            i = self.coords[self.coord_pos]
            delta = self.steps[self.step_idx] * (1 if self.direction == 0 else -1)
            self._advance()
            option = self.current[i] + delta
            if 0 <= option < self.sizes[i]:
                cand = list(self.current)
                cand[i] = option
                return tuple(cand)
        return tuple(int(self.rng.integers(n)) for n in self.sizes)

    def ask(self) -> Candidate:
        if self.pending is not None:
            raise TestbedError("structured: ask() called twice without tell()")
        self.pending = self._next()
        return self.pending

    def tell(self, candidate: Candidate, reward: float) -> None:
        if self.pending is None:
            raise TestbedError("structured: tell() without a pending ask()")
        self.pending = None
        cand = tuple(candidate)
        if reward > self.best_reward:
            self.best, self.best_reward = cand, reward
        if self.current is not None and reward > self.current_reward:
            self.current, self.current_reward = cand, reward
            self.improved = True
            self.step_idx = 0

    def state_dict(self) -> dict[str, Any]:
        keys = ("seed_idx", "best", "best_reward", "current", "current_reward", "coord_pos", "direction")
        state = {k: getattr(self, k) for k in (*keys, "step_idx", "improved")}
        state["rng"] = self.rng.bit_generator.state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for k, v in state.items():
            if k == "rng":
                self.rng.bit_generator.state = v
            elif k in ("best", "current"):
                setattr(self, k, tuple(v) if v is not None else None)
            else:
                setattr(self, k, v)
        self.pending = None
