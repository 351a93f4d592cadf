"""Typed results of a run: one :class:`StrategyResult` per strategy of an experiment, one
:class:`SearchSummary` per search.

They travel from the simulator (or the hil runner, or the search loop) to the run store's ``results``
table, to ``summary.json`` / ``--json`` output and to analysis. ``to_dict`` gives the JSON object with
the keys the outputs have always had (optional hil-only fields are left out when absent);
``from_dict`` reads it back and raises :class:`~devices.errors.BadInputError` naming the first missing
or mistyped key. Units are in the field names: seconds (``_s``), hours (``_h``), joules (``_j``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from devices.errors import BadInputError

JsonDict: TypeAlias = dict[str, Any]


def _get(d: Mapping[str, Any], key: str, kind: type | tuple[type, ...], what: str) -> Any:
    if key not in d:
        raise BadInputError(f"{what}: missing key {key!r}")
    value = d[key]
    if kind in (float, int) and isinstance(value, bool):
        raise BadInputError(f"{what}: {key}={value!r} is not a number")
    if not isinstance(value, kind):
        raise BadInputError(f"{what}: {key}={value!r} is not a {getattr(kind, '__name__', kind)}")
    return value


def _num(d: Mapping[str, Any], key: str, what: str) -> float:
    value = _get(d, key, (int, float), what)
    return float(value)


def _int(d: Mapping[str, Any], key: str, what: str) -> int:
    value = _get(d, key, (int, float), what)
    if isinstance(value, float) and not value.is_integer():
        raise BadInputError(f"{what}: {key}={value!r} is not an integer")
    return int(value)


def _seconds(d: Mapping[str, Any], key: str, what: str) -> dict[str, float]:
    raw = _get(d, key, dict, what)
    try:
        return {str(k): float(v) for k, v in raw.items()}
    except (TypeError, ValueError):
        raise BadInputError(f"{what}: {key} must map names to seconds") from None


@dataclass(frozen=True)
class Extrapolation:
    """How far a time-compressed hil run's life can be off: the validation error per level (relative),
    the bound over the levels a strategy uses (relative), the method, and repetitions per measured cell."""

    validation_rel_error_per_level: dict[str, float]
    life_rel_error_bound: float
    method: str
    cells_repetitions: dict[str, int]

    def to_dict(self) -> JsonDict:
        return {
            "validation_rel_error_per_level": dict(self.validation_rel_error_per_level),
            "life_rel_error_bound": self.life_rel_error_bound,
            "method": self.method,
            "cells_repetitions": dict(self.cells_repetitions),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Extrapolation:
        what = "extrapolation"
        reps = _get(d, "cells_repetitions", dict, what)
        return cls(
            validation_rel_error_per_level=_seconds(d, "validation_rel_error_per_level", what),
            life_rel_error_bound=_num(d, "life_rel_error_bound", what),
            method=str(_get(d, "method", str, what)),
            cells_repetitions={str(k): int(v) for k, v in reps.items()},
        )


@dataclass(frozen=True)
class StrategyResult:
    """One strategy's battery life and what happened on the way (sim and hil alike).

    ``accuracy_time_weighted`` is NaN when no time passed. ``compressed``, ``throttled_windows`` and
    ``extrapolation`` are hil-only (None in sim runs and left out of :meth:`to_dict`).
    """

    strategy: str
    life_s: float
    life_h: float
    inferences: int
    deadline_misses: int
    miss_rate: float
    accuracy_time_weighted: float
    switches: int
    level_changes: int
    load_energy_j: float
    soc_end: float
    end_reason: str
    time_at_level_s: dict[str, float]
    time_at_set_s: dict[str, float]
    wall_s: float = 0.0
    compressed: bool | None = None
    throttled_windows: int | None = None
    extrapolation: Extrapolation | None = None

    @classmethod
    def from_counts(
        cls,
        strategy: str,
        *,
        life_s: float,
        inferences: int,
        deadline_misses: int,
        accuracy_time_weighted: float,
        switches: int,
        level_changes: int,
        load_energy_j: float,
        soc_end: float,
        end_reason: str,
        time_at_level_s: Mapping[str, float],
        time_at_set_s: Mapping[str, float],
        wall_s: float = 0.0,
        throttled_windows: int | None = None,
        compressed: bool | None = None,
    ) -> StrategyResult:
        """A result with the derived fields (``life_h``, ``miss_rate``) computed from the counts."""
        return cls(
            strategy=strategy,
            life_s=life_s,
            life_h=life_s / 3600.0,
            inferences=inferences,
            deadline_misses=deadline_misses,
            miss_rate=deadline_misses / inferences if inferences else 0.0,
            accuracy_time_weighted=accuracy_time_weighted,
            switches=switches,
            level_changes=level_changes,
            load_energy_j=load_energy_j,
            soc_end=soc_end,
            end_reason=end_reason,
            time_at_level_s=dict(time_at_level_s),
            time_at_set_s=dict(time_at_set_s),
            wall_s=wall_s,
            compressed=compressed,
            throttled_windows=throttled_windows,
        )

    def to_dict(self) -> JsonDict:
        """The JSON object of ``summary.json`` and ``--json`` (hil-only keys only when set)."""
        d: JsonDict = {
            "strategy": self.strategy,
            "life_s": self.life_s,
            "life_h": self.life_h,
            "inferences": self.inferences,
            "deadline_misses": self.deadline_misses,
            "miss_rate": self.miss_rate,
            "accuracy_time_weighted": self.accuracy_time_weighted,
            "switches": self.switches,
            "level_changes": self.level_changes,
            "load_energy_j": self.load_energy_j,
            "soc_end": self.soc_end,
            "end_reason": self.end_reason,
            "time_at_level_s": dict(self.time_at_level_s),
            "time_at_set_s": dict(self.time_at_set_s),
        }
        if self.throttled_windows is not None:
            d["throttled_windows"] = self.throttled_windows
        d["wall_s"] = self.wall_s
        if self.compressed is not None:
            d["compressed"] = self.compressed
        if self.extrapolation is not None:
            d["extrapolation"] = self.extrapolation.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StrategyResult:
        """Read a :meth:`to_dict` object back; :class:`BadInputError` naming a missing or mistyped key."""
        what = f"result of {d.get('strategy', '?')!r}"
        compressed = d.get("compressed")
        if compressed is not None and not isinstance(compressed, bool):
            raise BadInputError(f"{what}: compressed={compressed!r} is not true/false")
        ex = d.get("extrapolation")
        return cls(
            strategy=str(_get(d, "strategy", str, what)),
            life_s=_num(d, "life_s", what),
            life_h=_num(d, "life_h", what),
            inferences=_int(d, "inferences", what),
            deadline_misses=_int(d, "deadline_misses", what),
            miss_rate=_num(d, "miss_rate", what),
            accuracy_time_weighted=_num(d, "accuracy_time_weighted", what)
            if d.get("accuracy_time_weighted") is not None
            else math.nan,
            switches=_int(d, "switches", what),
            level_changes=_int(d, "level_changes", what),
            load_energy_j=_num(d, "load_energy_j", what),
            soc_end=_num(d, "soc_end", what),
            end_reason=str(_get(d, "end_reason", str, what)),
            time_at_level_s=_seconds(d, "time_at_level_s", what),
            time_at_set_s=_seconds(d, "time_at_set_s", what),
            wall_s=_num(d, "wall_s", what) if "wall_s" in d else 0.0,
            compressed=compressed,
            throttled_windows=_int(d, "throttled_windows", what) if d.get("throttled_windows") is not None else None,
            extrapolation=Extrapolation.from_dict(ex) if isinstance(ex, Mapping) else None,
        )


@dataclass(frozen=True)
class SearchSummary:
    """The outcome of one pattern-set search (``best.json``): the best candidate's reward and its terms,
    per-level choices (each with ``level``, ``sparsity``, ``accuracy``, ``latency_ms``,
    ``deadline_latency_ms``, ``deadline_ms``, ``deadline_met``, ``runs``), the counts, wall time (s),
    why it stopped and the best reward after each distinct evaluation."""

    algo: str
    reward: float
    terms: JsonDict
    candidate: list[int]
    levels: list[JsonDict]
    all_deadlines_met: bool
    latency_source: str
    evaluations: int
    proposals: int
    memo_hits: int
    wall_s: float
    stopped: str
    curve: list[float] = field(default_factory=list)

    def to_dict(self) -> JsonDict:
        return {
            "algo": self.algo,
            "reward": self.reward,
            "terms": dict(self.terms),
            "candidate": list(self.candidate),
            "levels": [dict(lv) for lv in self.levels],
            "all_deadlines_met": self.all_deadlines_met,
            "latency_source": self.latency_source,
            "evaluations": self.evaluations,
            "proposals": self.proposals,
            "memo_hits": self.memo_hits,
            "wall_s": self.wall_s,
            "stopped": self.stopped,
            "curve": list(self.curve),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSummary:
        what = f"search result of {d.get('algo', '?')!r}"
        return cls(
            algo=str(_get(d, "algo", str, what)),
            reward=_num(d, "reward", what),
            terms=dict(_get(d, "terms", dict, what)),
            candidate=[int(c) for c in _get(d, "candidate", list, what)],
            levels=[dict(lv) for lv in _get(d, "levels", list, what)],
            all_deadlines_met=bool(_get(d, "all_deadlines_met", bool, what)),
            latency_source=str(_get(d, "latency_source", str, what)),
            evaluations=_int(d, "evaluations", what),
            proposals=_int(d, "proposals", what),
            memo_hits=_int(d, "memo_hits", what),
            wall_s=_num(d, "wall_s", what),
            stopped=str(_get(d, "stopped", str, what)),
            curve=[float(c) for c in _get(d, "curve", list, what)],
        )


#: What a run store's ``results`` table holds per unit of work.
UnitResult: TypeAlias = StrategyResult | SearchSummary


def result_from_dict(d: Mapping[str, Any]) -> UnitResult:
    """A stored result object as its type: a search summary when it names an ``algo``, else a strategy result."""
    if "algo" in d and "strategy" not in d:
        return SearchSummary.from_dict(d)
    return StrategyResult.from_dict(d)
