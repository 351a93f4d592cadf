"""RT3's reward for a candidate (one pattern set per frequency level), with every weight configurable.

For K levels (fastest first) with accuracies ``a_k``, latencies and deadlines::

    weighted_accuracy = Σ w_k · a_k                               (RT3: w = 0.5/0.3/0.2)
    accuracy_term     = deadline_reward                 if any level's latency > its deadline   (RT3: −1)
                      = (weighted_accuracy − acc_low) / (acc_high − acc_low)   otherwise   (RT3: 0.85, 0.9745)
    monotonic_term    = −monotonic_penalty  unless a_1 ≥ a_2 ≥ … ≥ a_K      (RT3: 0.5; accuracy must fall
                                                                           from high to low frequency)
    battery_term      = (runs − runs_low) / (runs_high − runs_low)          (RT3: 2.3e6, 4.5e6)
    reward            = w_accuracy · accuracy_term + monotonic_term + w_battery · battery_term   (RT3: 1, 1)

``runs`` comes from the battery model ``rt3-accounting`` of :mod:`testbed.battery.registry` (:func:`battery_runs`,
RT3's ideal energy bucket): the battery energy is split over the levels (RT3: 0.5/0.3/0.2 of 37 800 J,
high frequency first) and each level affords ``floor(E_k / P_k · 1000 / latency_k)`` inferences.
RT3's normalisation constants fit its 800-wide model only; :func:`calibrated` derives ``runs_low/high``
and ``acc_low/high`` from the densest and sparsest sets of the actual model.

``battery_model="ecm"`` replaces the ideal bucket by the equivalent-circuit model of a bundled or given cell
(``cell``, default ``phone-lco``): the cell is discharged level after level at each level's power, level *k*
until its state of charge falls to 1 − (split_1 + … + split_k) (RT3's 50/30/20 % as SoC thresholds), the last
one to the cut-off, and each level affords ``floor(t_k · 1000 / latency_k)`` inferences. Static power, the
converter and the cut-off voltage then count, as in the simulator. Level durations depend on the powers
only and are cached.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from functools import lru_cache

from devices.errors import BadInputError
from testbed.battery import registry
from testbed.battery.model import BatteryParams
from testbed.battery.rt3_accounting import NAME as RT3_ACCOUNTING
from testbed.battery.rt3_accounting import RT3_ENERGY_J, level_runs


def default_level_weights(k: int) -> list[float]:
    """RT3's 0.5/0.3/0.2 for three levels; otherwise weights decreasing linearly, summing to 1."""
    if k == 3:
        return [0.5, 0.3, 0.2]
    raw = [float(k - i) for i in range(k)]
    return [r / sum(raw) for r in raw]


@dataclass(frozen=True)
class RewardConfig:
    """Weights and normalisation of the reward (defaults: RT3's values). ``None`` weights: RT3's split for K."""

    acc_low: float = 0.85
    acc_high: float = 0.9745
    deadline_reward: float = -1.0
    monotonic_penalty: float = 0.5
    runs_low: float = 2.3e6
    runs_high: float = 4.5e6
    w_accuracy: float = 1.0
    w_battery: float = 1.0
    accuracy_weights: tuple[float, ...] | None = None
    battery_energy_j: float = float(RT3_ENERGY_J)
    battery_split: tuple[float, ...] | None = None
    battery_model: str = RT3_ACCOUNTING  # rt3-accounting (RT3's ideal bucket) | ecm
    cell: str = "phone-lco"  # the ECM's cell: a bundled name or a TOML path

    def __post_init__(self) -> None:
        if self.battery_model not in (RT3_ACCOUNTING, "ecm"):
            raise BadInputError(f"battery term model {self.battery_model!r}: choose {RT3_ACCOUNTING} or ecm")
        if not self.acc_high > self.acc_low:
            raise BadInputError(f"acc_high {self.acc_high} must exceed acc_low {self.acc_low}")
        if not self.runs_high > self.runs_low:
            raise BadInputError(f"runs_high {self.runs_high:g} must exceed runs_low {self.runs_low:g}")
        if not (math.isfinite(self.battery_energy_j) and self.battery_energy_j > 0):
            raise BadInputError(f"battery energy must be positive, got {self.battery_energy_j} J")
        if self.battery_split is not None and math.fsum(self.battery_split) > 1 + 1e-9:
            raise BadInputError(f"battery split {self.battery_split} sums to more than 1")

    def weights(self, k: int) -> list[float]:
        """Accuracy weights for K levels; :class:`BadInputError` if configured for another K."""
        w = list(self.accuracy_weights) if self.accuracy_weights is not None else default_level_weights(k)
        if len(w) != k:
            raise BadInputError(f"{len(w)} accuracy weights for {k} frequency levels")
        return w

    def split(self, k: int) -> list[float]:
        """Battery energy share per level (fastest first)."""
        s = list(self.battery_split) if self.battery_split is not None else default_level_weights(k)
        if len(s) != k:
            raise BadInputError(f"{len(s)} battery split values for {k} frequency levels")
        return s

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@dataclass(frozen=True)
class RewardTerms:
    """Every term of one candidate's reward, and the inputs that decide the penalties."""

    weighted_accuracy: float
    accuracy_term: float
    monotonic_term: float
    battery_term: float
    runs: int
    runs_per_level: list[int]
    deadline_met: list[bool]
    monotonic: bool
    reward: float
    notes: list[str] = field(default_factory=list)
    memory_term: float = 0.0  # layer space with a memory weight: −weight · resident / dense (testbed.search.memory)
    resident_mb: float | None = None  # resident packed weights of all levels (1e6 bytes), when counted

    @property
    def all_deadlines_met(self) -> bool:
        return all(self.deadline_met)

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def battery_runs(
    energy_j: float, split: Sequence[float], power_w: Sequence[float], latency_ms: Sequence[float]
) -> list[int]:
    """Inferences per level from RT3's ideal bucket: ``floor((split_k·E / P_k) · 1000 / latency_k)``.

    Each level's share is a fresh ``rt3-accounting`` battery from the registry, counted by
    :func:`testbed.battery.rt3_accounting.level_runs`, so with RT3's powers the result equals
    :func:`~testbed.battery.rt3_accounting.rt3_runs` exactly. Raises :class:`BadInputError` for a non-positive
    power or latency.
    """
    if not (len(split) == len(power_w) == len(latency_ms)):
        raise BadInputError("split, power and latency need one value per level")
    out = []
    for s, p, lat in zip(split, power_w, latency_ms, strict=True):
        if not (p > 0 and lat > 0):
            raise BadInputError(f"power ({p} W) and latency ({lat} ms) must be positive")
        energy = s * energy_j
        if energy == 0.0:  # a level given no share of the battery
            out.append(0)
            continue
        out.append(level_runs(registry.create(RT3_ACCOUNTING, BatteryParams(energy_j=energy)), p, lat)[1])
    return out


@lru_cache(maxsize=4096)
def ecm_level_times_s(
    cell: str, split: tuple[float, ...], power_w: tuple[float, ...], dt_s: float = 60.0
) -> tuple[float, ...]:
    """Seconds the ECM cell ``cell`` sustains each level's power, level after level (see the module text)."""
    from testbed.battery.cell import load_cell

    battery = registry.create("ecm", BatteryParams(cell=load_cell(cell), max_step_s=30.0))
    times = []
    done = 0.0
    for k, p in enumerate(power_w):
        if not p > 0:
            raise BadInputError(f"power must be positive, got {p} W")
        done += split[k]
        floor = 1.0 - done if k < len(power_w) - 1 else -1.0
        t = 0.0
        while not battery.ended and battery.soc > floor + 1e-12:
            got = battery.step(p, dt_s)
            if got <= 0:
                break
            t += got
        times.append(t)
    return tuple(times)


def ecm_runs(cell: str, split: Sequence[float], power_w: Sequence[float], latency_ms: Sequence[float]) -> list[int]:
    """Inferences per level when an ECM cell is discharged level after level (see the module text)."""
    if not (len(split) == len(power_w) == len(latency_ms)):
        raise BadInputError("split, power and latency need one value per level")
    if any(not lat > 0 for lat in latency_ms):
        raise BadInputError(f"latencies must be positive, got {list(latency_ms)}")
    times = ecm_level_times_s(cell, tuple(split), tuple(round(p, 12) for p in power_w))
    return [int(t * 1000 // lat) for t, lat in zip(times, latency_ms, strict=True)]


def config_runs(config: RewardConfig, k: int, power_w: Sequence[float], latency_ms: Sequence[float]) -> list[int]:
    """Runs per level under ``config``'s battery term (ideal bucket or ECM)."""
    if config.battery_model == "ecm":
        return ecm_runs(config.cell, config.split(k), power_w, latency_ms)
    return battery_runs(config.battery_energy_j, config.split(k), power_w, latency_ms)


def is_monotonic(accuracy: Sequence[float]) -> bool:
    """Accuracy does not rise from a faster level to a slower one (a_1 ≥ a_2 ≥ … ≥ a_K)."""
    return all(a >= b for a, b in itertools.pairwise(accuracy))


def compute_reward(
    accuracy: Sequence[float],
    latency_ms: Sequence[float],
    deadline_latency_ms: Sequence[float],
    power_w: Sequence[float],
    deadlines_ms: Sequence[float],
    config: RewardConfig,
) -> RewardTerms:
    """The reward of K pattern sets (one per level, fastest first); see the module text.

    ``latency_ms`` feeds the battery term, ``deadline_latency_ms`` is compared with ``deadlines_ms`` (a level
    meets its deadline when ≤). Raises :class:`BadInputError` when the lists differ in length.
    """
    k = len(accuracy)
    if not (len(latency_ms) == len(deadline_latency_ms) == len(power_w) == len(deadlines_ms) == k) or k == 0:
        raise BadInputError(f"reward needs one accuracy, latency, power and deadline per level ({k} levels)")
    met = [lat <= d for lat, d in zip(deadline_latency_ms, deadlines_ms, strict=True)]
    wacc = math.fsum(w * a for w, a in zip(config.weights(k), accuracy, strict=True))
    acc_term = (wacc - config.acc_low) / (config.acc_high - config.acc_low) if all(met) else config.deadline_reward
    mono = is_monotonic(accuracy)
    mono_term = 0.0 if mono else -config.monotonic_penalty
    per_level = config_runs(config, k, power_w, latency_ms)
    runs = sum(per_level)
    battery_term = (runs - config.runs_low) / (config.runs_high - config.runs_low)
    total = config.w_accuracy * acc_term + mono_term + config.w_battery * battery_term
    return RewardTerms(wacc, acc_term, mono_term, battery_term, runs, per_level, met, mono, total)


def calibrated(
    config: RewardConfig,
    dense_runs: float | None = None,
    sparse_runs: float | None = None,
    dense_accuracy: float | None = None,
) -> RewardConfig:
    """``config`` with the normalisation fitted to this model instead of RT3's 800-wide one.

    ``runs_low/high`` = bucket runs with every level at the densest / sparsest allowed sparsity;
    ``acc_high`` = the accuracy of the densest set, ``acc_low`` = acc_high − RT3's span (0.1245). Values left
    None keep ``config``'s. Raises :class:`BadInputError` when sparse runs do not exceed dense runs.
    """
    out = config
    if dense_runs is not None and sparse_runs is not None:
        if not sparse_runs > dense_runs:
            raise BadInputError(
                f"cannot calibrate the battery term: the sparsest sets afford {sparse_runs:g} runs, "
                f"not more than the densest ({dense_runs:g})"
            )
        out = replace(out, runs_low=float(dense_runs), runs_high=float(sparse_runs))
    if dense_accuracy is not None:
        span = config.acc_high - config.acc_low
        out = replace(out, acc_high=float(dense_accuracy), acc_low=float(dense_accuracy) - span)
    return out
