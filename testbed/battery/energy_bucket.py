"""A plain energy bucket: ``(P + static) / efficiency`` drains a store of joules linearly.

The bucket holds ``energy_j`` joules (``battery.energy_j``), or a cell's open-circuit energy
``3600·Q·∫OCV dsoc`` from ``soc0`` to 0 when sized by a cell. It has no voltage, no internal
resistance, no cut-off and no rate effect; it ends ``"empty"``. SoC is the fraction of the energy left.
Registered as ``energy-bucket`` (the experiment file's and the CLI's ``bucket`` is an alias of it); with
``efficiency = 1`` and no static power it is RT3's ideal bucket (:mod:`testbed.battery.rt3_accounting`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from devices.errors import BadInputError
from testbed.battery.model import BatteryParams, ModelSpec, Trajectory, state_end, state_float


class EnergyBucket:
    """An ideal store of energy; ``step`` is exact for any slice length (see the module text)."""

    trajectory: Trajectory | None = None
    ohmic_loss_j = 0.0

    def __init__(self, params: BatteryParams, name: str = "energy-bucket") -> None:
        if params.record:
            raise BadInputError(f"battery.record: {name} has no terminal voltage to record (use ecm)")
        if params.energy_j is not None:
            self.capacity_j = float(params.energy_j)
            self.initial_j = params.energy_j * params.soc0
            self.soc = params.soc0
        elif params.cell is not None:
            self.capacity_j = params.cell.energy_j(1.0, 0.0)
            self.initial_j = params.cell.energy_j(params.soc0, 0.0)
            self.soc = self.initial_j / self.capacity_j
        else:
            raise BadInputError(f"battery.energy_j: {name} needs energy_j (or a cell to take its energy from)")
        self.name = name
        self.remaining_j = self.initial_j
        self.efficiency = params.efficiency
        self.static_power_w = params.static_power_w
        self.ended = False
        self.end_reason: str | None = None
        self.load_energy_j = 0.0

    @property
    def delivered_energy_j(self) -> float:
        """Energy drawn from the bucket so far (J)."""
        return self.initial_j - self.remaining_j

    def step(self, power_w: float, dt_s: float) -> float:
        if self.ended or dt_s <= 0.0:
            return 0.0
        drain_w = (power_w + self.static_power_w) / self.efficiency
        e = drain_w * dt_s
        if e >= self.remaining_j:
            frac = self.remaining_j / e if e > 0 else 1.0
            self.load_energy_j += power_w * dt_s * frac
            self.remaining_j = 0.0
            self.soc = 0.0
            self.ended, self.end_reason = True, "empty"
            return dt_s * frac
        self.remaining_j -= e
        self.soc = self.remaining_j / self.capacity_j
        self.load_energy_j += power_w * dt_s
        return dt_s

    def voltage_v(self) -> float | None:
        return None

    def current_a(self) -> float | None:
        return None

    def end_voltage_v(self) -> float | None:
        return None

    def life_at_power_s(self, power_w: float) -> float:
        """``remaining / ((P + static) / efficiency)`` seconds (RT3's ``energy / power`` when ideal)."""
        if self.ended:
            return 0.0
        drain_w = (power_w + self.static_power_w) / self.efficiency
        return self.remaining_j / drain_w if drain_w > 0 else math.inf

    def state(self) -> dict[str, object]:
        return {"remaining_j": self.remaining_j, "load_energy_j": self.load_energy_j, "ended": self.ended,
                "end_reason": self.end_reason or ""}  # fmt: skip

    def restore(self, state: Mapping[str, object]) -> None:
        self.remaining_j = state_float(state, "remaining_j")
        self.load_energy_j = state_float(state, "load_energy_j")
        self.ended, self.end_reason = state_end(state)
        self.soc = self.remaining_j / self.capacity_j


SPEC = ModelSpec(
    name="energy-bucket",
    factory=EnergyBucket,
    summary="ideal energy store drained by (P + static) / efficiency; no voltage, no losses, ends empty",
    sized_by=("energy_j", "cell"),
)
