"""Latency and power of a pattern set at a frequency level: RT3's op-count PREDICTION or a profile table.

* :class:`OpCountLatency` — RT3's model (``utils/runs_number_reward.py``): latency from the operation counts of
  the masked linears, ``(3.0 / f_GHz) · (mults/1e4 · 0.014370 + adds/1e4 · 0.014575)`` ms, and RT3's dynamic
  power ``f·1e9·V²·1e-10`` W. Nothing is measured: every number is a prediction and is logged as such
  (``latency_source = "predicted: op-count (RT3)"``).
* :class:`ProfileLatency` — a profile table (``traces.profile``, the format the experiment
  runner reads; measured through an agent or an emulated board, or modelled when its ``source`` says so). A
  table holds a few pattern sets per level; a candidate's latency p50/p99 and mean power at a level are
  interpolated linearly in the pattern set's sparsity between the profiled sets of that level. Outside the
  profiled range the nearest profiled set's values are used and the cost is flagged ``extrapolated``.
  The latency compared with the deadline is the interpolated p99 (``tail="cell"``), or with ``tail="pooled"``
  the interpolated median × the table's pooled p99/p50 over the levels used — the rule of a pooled derived
  deadline (:class:`testbed.experiment.deadline.TailModel`), so a candidate is feasible by the same reading
  of the profile as the deadline it is held to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from devices.errors import BadInputError
from testbed.battery.rt3_accounting import RT3_FREQ_GHZ, RT3_VOLT_V, rt3_power_w
from testbed.experiment.deadline import TailModel
from testbed.rt3.pp import PatternSet
from testbed.rt3.search_api import PatternSearchAPI
from traces.profile import ProfileTable

OP_COUNT_SOURCE = "predicted: op-count (RT3)"


@dataclass(frozen=True)
class LevelCost:
    """Cost of one pattern set at one frequency level.

    ``latency_ms`` is the typical latency (used for the battery term), ``deadline_latency_ms`` the one compared
    with the deadline (p99 for a profile, the single prediction for the op-count model); ``power_w`` the mean
    power while inferring.
    """

    latency_ms: float
    deadline_latency_ms: float
    power_w: float
    extrapolated: bool = False


class LatencyModel(Protocol):
    """What the evaluator needs: level names (fastest first), a description of the source, and costs."""

    source: str

    @property
    def level_names(self) -> list[str]: ...

    def cost(self, pattern_set: PatternSet, level: int) -> LevelCost: ...


class OpCountLatency:
    """RT3's op-count latency PREDICTION at the given frequencies (GHz) and voltages (V), fastest first.

    ``counting="rt3"`` (with ``api``) counts as the reference does (every counted weight once, embedding and
    decoder included: :mod:`testbed.rt3.opcount`); ``"per-token"`` is this project's earlier variant (kept
    weights of the masked linears × ``tokens``, no embedding). The source string names the one used.
    """

    source = OP_COUNT_SOURCE

    def __init__(
        self,
        freq_ghz: Sequence[float] = RT3_FREQ_GHZ,
        volt_v: Sequence[float] = RT3_VOLT_V,
        tokens: int = 35,
        counting: str = "per-token",
        api: PatternSearchAPI | None = None,
    ) -> None:
        if counting not in ("rt3", "per-token"):
            raise BadInputError(f"op counting {counting!r}: choose rt3 or per-token")
        if counting == "rt3" and api is None:
            raise BadInputError("RT3's op counting needs the model (api)")
        self.counting = counting
        self.api = api
        self.source = (
            f"{OP_COUNT_SOURCE}, reference counting (weights once, embedding included)"
            if counting == "rt3"
            else OP_COUNT_SOURCE  # per-token counting (tokens × kept weights of the masked linears, no embedding)
        )
        if len(freq_ghz) != len(volt_v) or not freq_ghz:
            raise BadInputError(f"{len(freq_ghz)} frequencies but {len(volt_v)} voltages; give one voltage per level")
        if any(f <= 0 for f in freq_ghz) or any(v <= 0 for v in volt_v):
            raise BadInputError("frequencies and voltages must be positive")
        if list(freq_ghz) != sorted(freq_ghz, reverse=True):
            raise BadInputError(f"frequencies must be listed fastest first, got {list(freq_ghz)}")
        if tokens < 1:
            raise BadInputError(f"tokens must be ≥ 1, got {tokens}")
        self.freq_ghz = list(freq_ghz)
        self.volt_v = list(volt_v)
        self.tokens = tokens

    @property
    def level_names(self) -> list[str]:
        return [f"{f:g}GHz" for f in self.freq_ghz]

    def cost(self, pattern_set: PatternSet, level: int) -> LevelCost:
        if self.api is not None and self.counting == "rt3":
            ms = self.api.predict_rt3_latency_ms(pattern_set, self.freq_ghz[level])
        else:
            ms = PatternSearchAPI.predict_latency_ms(pattern_set, self.freq_ghz[level], self.tokens)
        return LevelCost(ms, ms, rt3_power_w(self.freq_ghz[level], self.volt_v[level]))


class ProfileLatency:
    """Costs interpolated in sparsity from a profile table; ``levels`` picks and orders the table's levels.

    Raises :class:`BadInputError` for a level the table lacks.
    """

    def __init__(self, table: ProfileTable, levels: Sequence[str] | None = None, tail: str = "cell") -> None:
        names = list(levels) if levels is not None else list(table.levels)
        unknown = [n for n in names if n not in table.levels]
        if unknown:
            raise BadInputError(f"{table.path}: no level(s) {', '.join(unknown)}; the profile has {table.levels}")
        order = {lv: i for i, lv in enumerate(table.levels)}
        if [order[n] for n in names] != sorted(order[n] for n in names):
            raise BadInputError(f"levels must be listed fastest first as in {table.path}: {table.levels}")
        self.table = table
        self._names = names
        self.tails = TailModel.of(table, names, tail)
        pooled = "" if self.tails.ratio is None else f"; deadline vs {self.tails.describe()}"
        self.source = f"profile: {table.path} ({table.meta.get('source', 'measured')}{pooled})"
        self._points: list[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = []
        for lv in names:
            rows = sorted((table.get(ps, lv) for ps in table.pattern_sets), key=lambda r: r.sparsity)
            self._points.append(
                (
                    np.array([r.sparsity for r in rows]),
                    np.array([r.latency_p50_ms for r in rows]),
                    np.array([self.tails.latency_ms(r) for r in rows]),
                    np.array([r.mean_power_w for r in rows]),
                )
            )

    @property
    def level_names(self) -> list[str]:
        return list(self._names)

    def freq_khz(self, level: int) -> int:
        return self.table.freq_khz(self._names[level])

    def cost(self, pattern_set: PatternSet, level: int) -> LevelCost:
        s, p50, p99, power = self._points[level]
        x = pattern_set.sparsity
        outside = bool(x < s[0] - 1e-9 or x > s[-1] + 1e-9)
        return LevelCost(
            float(np.interp(x, s, p50)), float(np.interp(x, s, p99)), float(np.interp(x, s, power)), outside
        )
