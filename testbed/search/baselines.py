"""Baselines for the RL controller at the same evaluation budget: random search and Optuna's TPE.

Both are :class:`~testbed.search.searcher.Searcher` s over the same decisions as the controller:

* :class:`RandomSearch` — every decision uniform and independent (NumPy ``Generator`` seeded; its bit-generator
  state is the whole search state);
* :class:`TPESearch` — Optuna's Tree-structured Parzen Estimator, one categorical parameter per decision, ask/tell
  on an in-memory study; the study (trials and the seeded sampler) is pickled for ``--resume``. A proposal the
  memo already knows is told its stored reward again, so TPE sees every proposal it made.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np

from devices.errors import TestbedError
from testbed.search.space import Candidate


class RandomSearch:
    """Uniform random candidates."""

    name = "random"

    def __init__(self, sizes: Sequence[int], seed: int = 0) -> None:
        self.sizes = [int(n) for n in sizes]
        self.rng = np.random.default_rng(seed)

    def ask(self) -> Candidate:
        return tuple(int(self.rng.integers(n)) for n in self.sizes)

    def tell(self, candidate: Candidate, reward: float) -> None:
        """Random search learns nothing."""

    def state_dict(self) -> dict[str, Any]:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = state["rng"]


class TPESearch:
    """Optuna TPE over one categorical parameter per decision (``names`` label them in the study)."""

    name = "tpe"

    def __init__(self, sizes: Sequence[int], names: Sequence[str] | None = None, seed: int = 0) -> None:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        self.sizes = [int(n) for n in sizes]
        self.names = list(names) if names is not None else [f"d{i}" for i in range(len(self.sizes))]
        self.study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=seed))
        self._pending: Any = None

    def ask(self) -> Candidate:
        if self._pending is not None:
            raise TestbedError("TPE: ask() called twice without tell()")
        trial = self.study.ask()
        self._pending = trial
        return tuple(
            int(trial.suggest_categorical(name, list(range(n)))) for name, n in zip(self.names, self.sizes, strict=True)
        )

    def tell(self, candidate: Candidate, reward: float) -> None:
        if self._pending is None:
            raise TestbedError("TPE: tell() without a pending ask()")
        self.study.tell(self._pending, reward)
        self._pending = None

    def state_dict(self) -> dict[str, Any]:
        return {"study": pickle.dumps(self.study)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.study = pickle.loads(state["study"])
        self._pending = None
