"""RT3's own battery accounting, reproduced exactly: an ideal energy bucket split over DVFS levels.

RT3's public code (``utils/runs_number_reward.py`` of smallred-ops/Column_pruning) counts the inference
runs a battery affords:

- the energy (37800, unit unstated; joules are consistent with the rest) is split over the DVFS
  levels, 0.5/0.3/0.2 from the highest frequency to the lowest;
- the power of level *i* is ``f_i[GHz] · 10**9 · V_i**2 · 10**-10`` W (dynamic power only);
- ``usage_time_i = energy_i / power_i · 1000`` ms and ``runs_i = usage_time_i // latency_i``;
- ``runs = Σ runs_i``.

The model registered as ``rt3-accounting`` is the :class:`~testbed.battery.energy_bucket.EnergyBucket`
with no converter loss and no static power, so its ``life_at_power_s`` is RT3's ``energy / power`` bit for
bit; :func:`level_runs` turns that into runs and :func:`rt3_runs` performs RT3's whole computation in the
reference's operation order. There is no static power, no converter loss, no voltage cut-off and no rate
effect: it is the paper's baseline, not a battery.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from devices.errors import BadInputError
from testbed.battery.energy_bucket import EnergyBucket
from testbed.battery.model import BatteryModel, BatteryParams, ModelSpec

NAME = "rt3-accounting"
#: RT3's constants (utils/runs_number_reward.py).
RT3_ENERGY_J = 37800
RT3_SPLIT = (0.5, 0.3, 0.2)
RT3_FREQ_GHZ = (1.4, 1.0, 0.8)
RT3_VOLT_V = (1.24, 1.06625, 0.9925)


@dataclass(frozen=True)
class Rt3Runs:
    """Inference runs per level and in total, with the per-level power and usage time."""

    runs: int
    runs_per_level: list[int]
    power_w: list[float]
    usage_time_ms: list[float]
    energy_j: list[float]

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def ideal_bucket(params: BatteryParams) -> EnergyBucket:
    """RT3's bucket: an :class:`EnergyBucket` that refuses converter loss and static power."""
    if params.efficiency != 1.0 or params.static_power_w != 0.0:
        raise BadInputError(
            f"battery.efficiency: {NAME} has no converter loss or static power "
            f"(got efficiency {params.efficiency}, static_power_w {params.static_power_w}); use energy-bucket"
        )
    return EnergyBucket(params, name=NAME)


def rt3_power_w(freq_ghz: float, volt_v: float) -> float:
    """RT3's level power: ``f·10**9·V**2·10**-10`` watts, in the reference's operation order."""
    return freq_ghz * pow(10, 9) * pow(volt_v, 2) * pow(10, -10)


def level_runs(battery: BatteryModel, power_w: float, latency_ms: float) -> tuple[float, int]:
    """``(usage_time_ms, runs)``: how long ``battery`` lasts at ``power_w`` and how many inferences of
    ``latency_ms`` fit, as RT3 counts them (``usage_time // latency``)."""
    usage_time_ms = battery.life_at_power_s(power_w) * 1000
    return usage_time_ms, int(usage_time_ms // latency_ms)


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
) -> Rt3Runs:
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
        usage_time, runs_i = level_runs(ideal_bucket(BatteryParams(energy_j=energy)), power, latency_ms[i])
        per_level.append(runs_i)
        powers.append(power)
        usage.append(usage_time)
        energies.append(energy)
    return Rt3Runs(sum(per_level), per_level, powers, usage, energies)


SPEC = ModelSpec(
    name=NAME,
    factory=ideal_bucket,
    summary="RT3's ideal energy bucket (energy / power, no losses, no static power): the paper's accounting",
    sized_by=("energy_j", "cell"),
)
