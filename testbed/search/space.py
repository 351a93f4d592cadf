"""RT3's search space of pattern sets per DVFS level, as a flat list of categorical decisions.

A candidate is one *pattern set per frequency level* (K levels, fastest first):

* the **level assignment** — which K of the L candidate sparsity levels go to the K frequency levels, in
  increasing sparsity from the fastest to the slowest level (RT3: all C(10, 3) = 120 ordered triples a<b<c);
  one categorical decision over the C(L, K) combinations in lexicographic order;
* per pruned layer and sparsity level, **which candidate pattern** the layer's tiles use: one of the layer's
  candidates at that level, or (the last option) "any": each tile takes the best of all candidates, as
  :func:`testbed.rt3.pp.uniform_choices` does. Pairs with a single candidate are not decisions.

A candidate is the tuple of option indices of every decision, in the order of :attr:`SearchSpace.decisions`
(the order the controller emits them: level assignment first). Only the pattern decisions of the K chosen
levels change the pattern sets, so :meth:`SearchSpace.key` — the memo key — ignores the others.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from devices.errors import BadInputError
from testbed.rt3.pp import Choices, LayerChoice, PatternSpace

Candidate = tuple[int, ...]
#: What fully determines the K pattern sets of a candidate: per level, the sparsity index and the allowed
#: candidate of every layer (None = any).
CandidateKey = tuple[tuple[int, tuple[int | None, ...]], ...]


@dataclass(frozen=True)
class Decision:
    """One categorical decision: ``name``, number of options; ``layer``/``level`` for a pattern decision."""

    name: str
    n_options: int
    layer: str | None = None
    level: int | None = None


class DecisionSpace(Protocol):
    """What every searcher sees of a space: its categorical decisions (names and option counts)."""

    decisions: list[Decision]

    @property
    def sizes(self) -> list[int]: ...


class SearchSpace:
    """The decisions of a :class:`PatternSpace` for ``n_freq_levels`` frequency levels.

    ``allowed_levels`` restricts the sparsity levels that may be assigned (indices into
    ``pattern_space.levels``; default all). Raises :class:`BadInputError` when fewer sparsity levels than
    frequency levels are available.
    """

    def __init__(
        self, pattern_space: PatternSpace, n_freq_levels: int, allowed_levels: Sequence[int] | None = None
    ) -> None:
        n_sparsity = len(pattern_space.levels)
        levels = sorted(set(allowed_levels)) if allowed_levels is not None else list(range(n_sparsity))
        if any(not 0 <= i < n_sparsity for i in levels):
            raise BadInputError(f"allowed sparsity level indices {levels} outside 0…{n_sparsity - 1}")
        if n_freq_levels < 1:
            raise BadInputError(f"need at least one frequency level, got {n_freq_levels}")
        if len(levels) < n_freq_levels:
            raise BadInputError(
                f"{len(levels)} sparsity levels cannot fill {n_freq_levels} frequency levels with distinct sparsities"
            )
        self.pattern_space = pattern_space
        self.n_freq_levels = n_freq_levels
        self.sparsity_levels: tuple[float, ...] = tuple(pattern_space.levels)
        self.assignments: list[tuple[int, ...]] = list(itertools.combinations(levels, n_freq_levels))
        self.layers: list[str] = list(pattern_space.candidates)
        decisions = [Decision("levels", len(self.assignments))]
        self._pattern_index: dict[tuple[str, int], int] = {}
        for layer in self.layers:
            for lv in levels:
                n = pattern_space.n_candidates(layer, lv)
                if n > 1:
                    self._pattern_index[(layer, lv)] = len(decisions)
                    decisions.append(Decision(f"{layer}@{pattern_space.levels[lv]:g}", n + 1, layer, lv))
        self.decisions: list[Decision] = decisions

    @property
    def sizes(self) -> list[int]:
        """Number of options of every decision, in order."""
        return [d.n_options for d in self.decisions]

    def cardinality(self) -> int:
        """Number of distinct candidate keys (distinct K-tuples of pattern sets)."""
        total = 0
        for combo in self.assignments:
            n = 1
            for lv in combo:
                for layer in self.layers:
                    i = self._pattern_index.get((layer, lv))
                    n *= self.decisions[i].n_options if i is not None else 1
            total += n
        return total

    def validate(self, candidate: Sequence[int]) -> Candidate:
        """The candidate as a tuple; :class:`BadInputError` for a wrong length or an option out of range."""
        cand = tuple(int(a) for a in candidate)
        if len(cand) != len(self.decisions):
            raise BadInputError(f"candidate has {len(cand)} decisions, the space has {len(self.decisions)}")
        for a, d in zip(cand, self.decisions, strict=True):
            if not 0 <= a < d.n_options:
                raise BadInputError(f"decision {d.name}: option {a} outside 0…{d.n_options - 1}")
        return cand

    def assignment(self, candidate: Candidate) -> tuple[int, ...]:
        """Sparsity level index of every frequency level (fastest first; increasing sparsity)."""
        return self.assignments[candidate[0]]

    def _allowed(self, candidate: Candidate, layer: str, level: int) -> int | None:
        i = self._pattern_index.get((layer, level))
        if i is None:
            return None
        option = candidate[i]
        return None if option == self.decisions[i].n_options - 1 else option

    def choices(self, candidate: Candidate) -> list[Choices]:
        """The K :class:`~testbed.rt3.pp.Choices` of a candidate (fastest level first)."""
        cand = self.validate(candidate)
        out = []
        for lv in self.assignment(cand):
            ch: Choices = {}
            for layer in self.layers:
                a = self._allowed(cand, layer, lv)
                ch[layer] = LayerChoice(lv, (a,) if a is not None else None)
            out.append(ch)
        return out

    def set_key(self, candidate: Candidate, k: int) -> tuple[int, tuple[int | None, ...]]:
        """Key of the pattern set at frequency level ``k``: its sparsity index and per-layer allowed pattern."""
        lv = self.assignment(candidate)[k]
        return lv, tuple(self._allowed(candidate, layer, lv) for layer in self.layers)

    def key(self, candidate: Sequence[int]) -> CandidateKey:
        """Memo key: equal for candidates that differ only in decisions of unassigned sparsity levels."""
        cand = self.validate(candidate)
        return tuple(self.set_key(cand, k) for k in range(self.n_freq_levels))

    def describe(self, candidate: Candidate) -> dict[str, object]:
        """JSON-friendly description: sparsity per level and the chosen pattern per layer (None = any)."""
        cand = self.validate(candidate)
        return {
            "sparsity_per_level": [self.sparsity_levels[lv] for lv in self.assignment(cand)],
            "patterns_per_level": [list(self.set_key(cand, k)[1]) for k in range(self.n_freq_levels)],
        }

    def structured_seeds(self) -> list[Candidate]:
        """Every level assignment with every pattern choice "any" (what the structured baseline tries first)."""
        anys = [d.n_options - 1 for d in self.decisions[1:]]
        return [(a, *anys) for a in range(len(self.assignments))]

    def coordinates(self) -> list[int]:
        """The pattern decisions, in order (what the structured baseline's greedy pass walks)."""
        return list(range(1, len(self.decisions)))

    def log10_size(self) -> float:
        """log10 of the number of decision sequences (for reporting the size of the space)."""
        return sum(math.log10(n) for n in self.sizes)
