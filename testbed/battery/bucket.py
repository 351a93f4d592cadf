"""RT3's ideal energy bucket, reproduced exactly, and a bucket battery that drains by load energy.

RT3's public code (``utils/runs_number_reward.py`` of smallred-ops/Column_pruning) counts the inference
runs a battery affords:

- the energy (37800, unit unstated; joules are consistent with the rest) is split over the DVFS
  levels, 0.5/0.3/0.2 from the highest frequency to the lowest;
- the power of level *i* is ``f_i[GHz] · 10**9 · V_i**2 · 10**-10`` W (dynamic power only);
- ``usage_time_i = energy_i / power_i · 1000`` ms and ``runs_i = usage_time_i // latency_i``;
- ``runs = Σ runs_i``.

:func:`rt3_runs` performs the same floating-point operations in the same order, so its numbers equal
the reference's bit for bit. There is no static power, no converter loss, no voltage cut-off and no
rate effect: it is the paper's baseline, not a battery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from devices.errors import BadInputError

#: RT3's constants (utils/runs_number_reward.py).
RT3_ENERGY_J = 37800
RT3_SPLIT = (0.5, 0.3, 0.2)
RT3_FREQ_GHZ = (1.4, 1.0, 0.8)
RT3_VOLT_V = (1.24, 1.06625, 0.9925)


@dataclass(frozen=True)
class BucketRuns:
    """Inference runs per level and in total, with the per-level power and usage time."""

    runs: int
    runs_per_level: list[int]
    power_w: list[float]
    usage_time_ms: list[float]
    energy_j: list[float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def rt3_power_w(freq_ghz: float, volt_v: float) -> float:
    """RT3's level power: ``f·10**9·V**2·10**-10`` watts, in the reference's operation order."""
    return freq_ghz * pow(10, 9) * pow(volt_v, 2) * pow(10, -10)


def _check(name: str, values: Sequence[float], n: int) -> None:
    if len(values) != n:
        raise BadInputError(f"--{name} has {len(values)} values, expected {n} (one per level)")
    for v in values:
        if not (math.isfinite(v) and v > 0):
            raise BadInputError(f"--{name} values must be positive numbers, got {v}")


def rt3_runs(
    energy_j: float,
    split: Sequence[float],
    freq_ghz: Sequence[float],
    volt_v: Sequence[float],
    latency_ms: Sequence[float],
) -> BucketRuns:
    """Runs afforded by an ideal bucket of ``energy_j`` split over DVFS levels (RT3's accounting).

    Raises :class:`BadInputError` when the lists differ in length, hold a non-positive value, or the
    split sums to more than 1.
    """
    n = len(split)
    if n == 0:
        raise BadInputError("--split needs at least one level")
    if not (math.isfinite(energy_j) and energy_j > 0):
        raise BadInputError(f"--energy-j must be a positive number, got {energy_j}")
    _check("split", split, n)
    _check("freq-ghz", freq_ghz, n)
    _check("volt", volt_v, n)
    _check("latency-ms", latency_ms, n)
    if math.fsum(split) > 1.0 + 1e-9:
        raise BadInputError(f"--split sums to {math.fsum(split):g} > 1: more energy than the bucket holds")
    per_level: list[int] = []
    powers: list[float] = []
    usage: list[float] = []
    energies: list[float] = []
    for i in range(n):
        energy = split[i] * energy_j
        power = rt3_power_w(freq_ghz[i], volt_v[i])
        usage_time = (energy / power) * 1000
        runs_i = usage_time // latency_ms[i]
        per_level.append(int(runs_i))
        powers.append(power)
        usage.append(usage_time)
        energies.append(energy)
    return BucketRuns(sum(per_level), per_level, powers, usage, energies)


def bucket_life_s(
    energy_j: float, pass_energy_j: float, cumulative_j: Sequence[float], times_s: Sequence[float]
) -> float:
    """When a repeating load has drawn ``energy_j`` from an ideal bucket.

    ``cumulative_j[k]`` is the energy drawn by ``times_s[k]`` within one pass (both start at 0 and end
    with the pass's energy and period). Linear within each hold segment.
    """
    if pass_energy_j <= 0:
        raise BadInputError("the load draws no energy: an ideal bucket would last forever")
    passes = math.floor(energy_j / pass_energy_j)
    rest = energy_j - passes * pass_energy_j
    if rest <= 0:
        return passes * times_s[-1]
    for k in range(1, len(cumulative_j)):
        if cumulative_j[k] >= rest:
            e0, e1 = cumulative_j[k - 1], cumulative_j[k]
            t0, t1 = times_s[k - 1], times_s[k]
            frac = (rest - e0) / (e1 - e0) if e1 > e0 else 0.0
            return passes * times_s[-1] + t0 + frac * (t1 - t0)
    return (passes + 1) * times_s[-1]
