"""The battery-model protocol, its parameters (one validator) and the checkpoint-state readers.

A :class:`BatteryModel` is stepped by the caller: ``step(power_w, dt_s)`` draws ``power_w`` watts at
the load for ``dt_s`` seconds and returns the seconds it sustained (``dt_s``, or less when the battery
ended inside the slice). The event-driven simulator, the hil runner, the whole-run simulation of a
power trace (:mod:`testbed.battery.simulate`) and the search reward all drive the same objects; they
are built by name through :mod:`testbed.battery.registry` from one :class:`BatteryParams`.

End-of-life reasons: ``"empty"`` (no charge or energy left), ``"cutoff"`` (terminal voltage below the
cell's cut-off) and ``"power_limit"`` (the cell cannot deliver the power: no real current solves
``P = I·(e − I·R0)``). ``end_reason`` is ``None`` while the battery lives.

Failure modes: :class:`BadInputError` with one line naming the ``battery.<field>`` that is wrong.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

from devices.errors import BadInputError
from testbed.battery.cell import Cell

END_REASONS = ("cutoff", "power_limit", "empty")
#: Safety bound on the steps of one whole-run simulation (a ~30-year 1 Hz run).
MAX_STEPS = 1_000_000_000

#: What a model records at every step start when built with ``record=True``: ``t_s, voltage_v, current_a, soc``.
Trajectory = dict[str, list[float]]
Drive = Literal["power", "current"]


class BatteryModel(Protocol):
    """A battery stepped by load power over time slices (SI units throughout).

    ``load_energy_j`` is the energy delivered to the load (before static power and converter loss);
    ``delivered_energy_j`` the energy drawn from the battery itself (at its terminals for the ECM);
    ``ohmic_loss_j`` the heat in its internal resistances (0 for models without any).
    """

    @property
    def name(self) -> str: ...
    @property
    def soc(self) -> float: ...
    @property
    def ended(self) -> bool: ...
    @property
    def end_reason(self) -> str | None: ...
    @property
    def load_energy_j(self) -> float: ...
    @property
    def delivered_energy_j(self) -> float: ...
    @property
    def ohmic_loss_j(self) -> float: ...
    @property
    def trajectory(self) -> Trajectory | None: ...

    def step(self, power_w: float, dt_s: float) -> float:
        """Draw ``power_w`` (W at the load; A for an ECM built with ``drive="current"``) for ``dt_s`` s;
        the seconds sustained. 0 once ended or for ``dt_s ≤ 0``."""
        ...

    def voltage_v(self) -> float | None:
        """Terminal voltage after the last step (V); None for models without a voltage."""
        ...

    def current_a(self) -> float | None:
        """Current of the last step (A); None for models without one."""
        ...

    def end_voltage_v(self) -> float | None:
        """Terminal voltage at the end of life (V); None while alive, at a power limit, or without a voltage."""
        ...

    def life_at_power_s(self, power_w: float) -> float:
        """Seconds this battery would sustain a constant ``power_w`` from its current state (``math.inf``
        when nothing is drawn); the battery itself is not changed."""
        ...

    def state(self) -> dict[str, object]:
        """JSON-ready checkpoint of the state (see :meth:`restore`)."""
        ...

    def restore(self, state: Mapping[str, object]) -> None:
        """Continue from :meth:`state` of a model built with the same parameters."""
        ...


@dataclass(frozen=True)
class BatteryParams:
    """Everything a model in the registry may be built from; each model reads the fields it needs.

    ``energy_j`` sizes an energy bucket (J); ``cell`` an ECM (or a bucket by its open-circuit energy).
    ``efficiency`` (0, 1] and ``static_power_w`` (≥ 0 W) turn load power into battery power as
    ``(P + static) / efficiency``. ``max_step_s`` is the ECM's longest integration step, ``drive`` what
    its ``step`` values mean, ``record`` whether it keeps a :data:`Trajectory`.
    """

    energy_j: float | None = None
    cell: Cell | None = None
    soc0: float = 1.0
    efficiency: float = 1.0
    static_power_w: float = 0.0
    max_step_s: float = 1.0
    drive: Drive = "power"
    record: bool = False

    def __post_init__(self) -> None:
        if self.energy_j is not None and not (math.isfinite(self.energy_j) and self.energy_j > 0):
            raise BadInputError(f"battery.energy_j must be a positive number of joules, got {self.energy_j}")
        if not 0.0 < self.soc0 <= 1.0:
            raise BadInputError(f"battery.soc0 (initial SoC) must be in (0, 1], got {self.soc0}")
        if not 0.0 < self.efficiency <= 1.0:
            raise BadInputError(f"battery.efficiency (converter efficiency) must be in (0, 1], got {self.efficiency}")
        if not (math.isfinite(self.static_power_w) and self.static_power_w >= 0.0):
            raise BadInputError(
                f"battery.static_power_w (static power) must be a number ≥ 0 W, got {self.static_power_w}"
            )
        if not (math.isfinite(self.max_step_s) and self.max_step_s > 0):
            raise BadInputError(f"battery.max_step_s must be a positive number of seconds, got {self.max_step_s}")
        if self.drive not in ("power", "current"):
            raise BadInputError(f"battery.drive (drive mode) must be power or current, got {self.drive!r}")


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: its name, how to build it, what sizes it, whether it has a terminal voltage."""

    name: str
    factory: Callable[[BatteryParams], BatteryModel]
    summary: str
    #: :class:`BatteryParams` fields of which at least one must be given (``energy_j``, ``cell``).
    sized_by: tuple[str, ...]
    #: True when the model has a terminal voltage (and can record a discharge trajectory).
    voltage: bool = False


def state_number(value: object, key: str) -> float:
    """``value`` of checkpoint field ``key`` as a float; :class:`BadInputError` for a non-number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadInputError(f"battery checkpoint: {key} must be a number, got {value!r}")
    return float(value)


def state_float(state: Mapping[str, object], key: str, default: float | None = None) -> float:
    """``state[key]`` as a float (``default`` when absent); :class:`BadInputError` for a non-number."""
    return state_number(state.get(key, default), key)


def state_end(state: Mapping[str, object]) -> tuple[bool, str | None]:
    """``(ended, end_reason)`` of a checkpoint; a live battery stores its reason as ``""``."""
    ended = state.get("ended")
    reason = state.get("end_reason")
    if not isinstance(ended, bool) or not isinstance(reason, str):
        raise BadInputError(f"battery checkpoint: bad ended/end_reason {ended!r}/{reason!r}")
    return ended, (reason or None) if ended else None
