"""Typed results of a run: one :class:`StrategyResult` per strategy of an experiment, one
:class:`SearchSummary` per search.

They travel from the simulator (or the hil runner, or the search loop) to the run store's ``results``
table, to ``summary.json`` / ``--json`` output and to analysis. ``to_dict`` gives the JSON object with
the keys the outputs have always had (optional hil-only fields are left out when absent);
``from_dict`` reads it back and raises :class:`~devices.errors.BadInputError` naming the first missing
or mistyped key. Units are in the field names: seconds (``_s``), hours (``_h``), joules (``_j``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, TypeAlias, TypeVar

from pydantic import BeforeValidator, TypeAdapter, ValidationError

from devices.errors import BadInputError

JsonDict: TypeAlias = dict[str, Any]
T = TypeVar("T")
_ADAPTERS: dict[type, TypeAdapter[Any]] = {}


def _nan_for_none(value: object) -> object:
    return math.nan if value is None else value


def _parse(kind: type[T], d: Mapping[str, Any], what: str) -> T:
    """``d`` as a ``kind`` dataclass (validated by pydantic); :class:`BadInputError` naming the first bad key."""
    adapter = _ADAPTERS.setdefault(kind, TypeAdapter(kind))
    try:
        # strict JSON validation: a JSON object is accepted for a dataclass, "many" or "yes" are not coerced
        return adapter.validate_json(json.dumps(dict(d)), strict=True)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(part) for part in err["loc"])
        if err["type"] == "missing":
            raise BadInputError(f"{what}: missing key {key!r}") from None
        raise BadInputError(f"{what}: {key}={err['input']!r} is not valid ({err['msg']})") from None


@dataclass(frozen=True)
class Extrapolation:
    """How far a time-compressed hil run's life can be off: the validation error per level (relative),
    the bound over the levels a strategy uses (relative), the method, and repetitions per measured cell."""

    validation_rel_error_per_level: dict[str, float]
    life_rel_error_bound: float
    method: str
    cells_repetitions: dict[str, int]

    def to_dict(self) -> JsonDict:
        return asdict(self)


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
    accuracy_time_weighted: Annotated[float, BeforeValidator(_nan_for_none)]
    switches: int
    level_changes: int
    load_energy_j: float
    soc_end: float
    end_reason: str
    time_at_level_s: dict[str, float]
    time_at_set_s: dict[str, float]
    throttled_windows: int | None = None
    wall_s: float = 0.0
    compressed: bool | None = None
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
        d = asdict(self)
        for key in ("throttled_windows", "compressed", "extrapolation"):
            if d[key] is None:
                del d[key]
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> StrategyResult:
        """Read a :meth:`to_dict` object back; :class:`BadInputError` naming a missing or mistyped key."""
        return _parse(cls, d, f"result of {d.get('strategy', '?')!r}")


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
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> SearchSummary:
        return _parse(cls, d, f"search result of {d.get('algo', '?')!r}")


#: What a run store's ``results`` table holds per unit of work.
UnitResult: TypeAlias = StrategyResult | SearchSummary


def result_from_dict(d: Mapping[str, Any]) -> UnitResult:
    """A stored result object as its type: a search summary when it names an ``algo``, else a strategy result."""
    if "algo" in d and "strategy" not in d:
        return SearchSummary.from_dict(d)
    return StrategyResult.from_dict(d)
