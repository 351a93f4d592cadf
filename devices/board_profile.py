"""Board profiles: data files under ``devices/profiles/*.toml`` describing one kind of board.

A profile holds the cpufreq policies with their frequency levels (kHz) and voltages where known, the
GPU devfreq device (Hz), thermal zones, the experiment's DVFS levels, and the coefficients of the
modelled power draw in the style of Android's ``power_profile.xml``: a static (idle) board power plus,
per policy and frequency step, the power of an active cluster and of each busy core. Every number
carries a ``*_source`` string naming where it came from, or saying it is an estimate.

Failure modes: an unknown profile name or a malformed file raises
:class:`~devices.errors.BadInputError` naming the file and the field.
"""

from __future__ import annotations

import sys
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.errors import BadInputError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyProfile(_Strict):
    """One cpufreq policy (cluster) of the board."""

    name: str = Field(pattern=r"^policy\d+$")
    cpus: list[int]
    driver: str = "cpufreq-dt"
    governors: list[str]
    default_governor: str
    frequencies_khz: list[int] = Field(min_length=1)
    frequencies_source: str
    #: False for drivers such as intel_pstate that accept any value in range and list no table.
    has_frequency_table: bool = True
    hw_min_khz: int | None = None
    hw_max_khz: int | None = None
    transition_latency_ns: int = 355000
    voltages_v: list[float] | None = None
    voltages_source: str | None = None

    @model_validator(mode="after")
    def _check(self) -> PolicyProfile:
        if sorted(self.frequencies_khz) != self.frequencies_khz or len(set(self.frequencies_khz)) != len(
            self.frequencies_khz
        ):
            raise ValueError("frequencies_khz must be strictly ascending")
        if self.default_governor not in self.governors:
            raise ValueError(f"default_governor {self.default_governor!r} is not in governors")
        if self.voltages_v is not None and len(self.voltages_v) != len(self.frequencies_khz):
            raise ValueError("voltages_v must have one value per frequency")
        return self

    @property
    def min_khz(self) -> int:
        return self.hw_min_khz if self.hw_min_khz is not None else self.frequencies_khz[0]

    @property
    def max_khz(self) -> int:
        return self.hw_max_khz if self.hw_max_khz is not None else self.frequencies_khz[-1]


class DevfreqProfile(_Strict):
    """A devfreq device (the Jetson GPU); frequencies in Hz as the kernel uses them."""

    name: str
    device_path: str  # relative to the root, the directory that holds `devfreq/<name>`
    frequencies_hz: list[int] = Field(min_length=1)
    frequencies_source: str
    governors: list[str]
    default_governor: str


class ThermalZoneProfile(_Strict):
    type: str
    idle_temp_c: float = 45.0
    passive_c: float | None = None
    critical_c: float | None = None


class PolicyPowerModel(_Strict):
    """Android-style power coefficients of one policy, one value per frequency step (W)."""

    policy: str
    #: Added once when any CPU of the cluster is busy, per frequency step.
    cluster_active_w: list[float]
    #: Added per fully busy CPU (scaled by utilisation 0..1), per frequency step.
    core_active_w: list[float]


class PowerModel(_Strict):
    """Modelled board power: ``idle_w + Σ_policy [cluster_active_w·any_busy + core_active_w·Σ util]``."""

    source: str
    idle_w: float = Field(ge=0)
    #: Power at the supply input is measured; `supply_voltage_v` converts to current when needed.
    supply_voltage_v: float = 5.0
    cpu: list[PolicyPowerModel]
    #: Added when the GPU is busy (devfreq boards), per GPU frequency step (W); empty when unknown.
    gpu_active_w: list[float] = []
    calibrated_from: str | None = None


class Level(_Strict):
    """A DVFS level of an experiment: one frequency per policy, from the fastest level down."""

    name: str
    freq_khz: dict[str, int]


class Detect(_Strict):
    model_contains: list[str] = []
    compatible_contains: list[str] = []


class EmulationProfile(_Strict):
    """How an emulated board turns host CPU time into board latency (devices/agent/emulation.py).

    ``board_gflops_per_core``: double-precision GEMM-class throughput of one board core at the top
    frequency (GFLOP/s, from ``speed_source``); ``compute_share``: the part of an inference that scales
    with ``f_max / f`` (the rest, memory-bound, does not), from ``compute_share_source``.
    """

    board_gflops_per_core: float = Field(gt=0)
    speed_source: str
    compute_share: float = Field(default=0.9, ge=0, le=1)
    compute_share_source: str = "estimate"


class BoardProfile(_Strict):
    """Everything the testbed knows about one kind of board."""

    name: str
    title: str
    detect: Detect = Detect()
    policies: list[PolicyProfile] = Field(min_length=1)
    devfreq: list[DevfreqProfile] = []
    thermal_zones: list[ThermalZoneProfile] = []
    power_model: PowerModel
    levels: list[Level] = []
    #: Board tools present on the real board (emulated by the fake kernel).
    tools: list[str] = []
    #: Meter URIs that fit the board, most accurate first.
    meters: list[str] = []
    throttle_flags: str | None = None  # "vcgencmd" on Raspberry Pi
    notes: str = ""
    #: Emulation calibration (board speed against the host); None: the host's speed is the board's.
    emulation: EmulationProfile | None = None

    @model_validator(mode="after")
    def _check(self) -> BoardProfile:
        names = {p.name for p in self.policies}
        for pm in self.power_model.cpu:
            if pm.policy not in names:
                raise ValueError(f"power_model.cpu policy {pm.policy!r} is not a policy of the board")
            pol = next(p for p in self.policies if p.name == pm.policy)
            n = len(pol.frequencies_khz)
            if len(pm.cluster_active_w) != n or len(pm.core_active_w) != n:
                raise ValueError(f"power_model.cpu {pm.policy}: need {n} values per list (one per frequency)")
        for lv in self.levels:
            for pol_name, f in lv.freq_khz.items():
                if pol_name not in names:
                    raise ValueError(f"level {lv.name!r}: unknown policy {pol_name!r}")
                pol = next(p for p in self.policies if p.name == pol_name)
                if pol.has_frequency_table and f not in pol.frequencies_khz:
                    raise ValueError(f"level {lv.name!r}: {f} kHz is not a frequency of {pol_name}")
        return self

    def policy(self, name: str) -> PolicyProfile:
        for p in self.policies:
            if p.name == name:
                return p
        raise BadInputError(f"profile {self.name}: no policy {name!r}")

    def level(self, name_or_index: str | int) -> Level:
        """A level by name or by index (0 = fastest)."""
        if isinstance(name_or_index, int) or str(name_or_index).isdigit():
            i = int(name_or_index)
            if not 0 <= i < len(self.levels):
                raise BadInputError(f"profile {self.name}: level index {i} outside 0..{len(self.levels) - 1}")
            return self.levels[i]
        for lv in self.levels:
            if lv.name == name_or_index:
                return lv
        listed = ", ".join(lv.name for lv in self.levels)
        raise BadInputError(f"profile {self.name}: unknown level {name_or_index!r}; levels: {listed}")


def _profiles_dir() -> Path:
    return Path(str(resources.files("devices") / "profiles"))


def available_profiles() -> list[str]:
    """Names of the bundled profiles."""
    return sorted(p.stem for p in _profiles_dir().glob("*.toml"))


def load_profile_file(path: str | Path) -> BoardProfile:
    """Load and validate a profile TOML file."""
    p = Path(path)
    try:
        data: dict[str, Any] = tomllib.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{p}: profile file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise BadInputError(f"{p}: not valid TOML: {exc}") from None
    try:
        return BoardProfile.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(x) for x in err["loc"]) or "(top level)"
        raise BadInputError(f"{p}: field {loc}: {err['msg']}") from None


def load_profile(name_or_path: str | Path) -> BoardProfile:
    """A bundled profile by name (``rpi4``) or a profile file by path."""
    s = str(name_or_path)
    if s.endswith(".toml") or "/" in s:
        return load_profile_file(s)
    path = _profiles_dir() / f"{s}.toml"
    if not path.is_file():
        raise BadInputError(f"unknown board profile {s!r}; available: {', '.join(available_profiles())}")
    return load_profile_file(path)


def dump_profile_toml(profile: BoardProfile) -> str:
    """Serialise a profile back to TOML (used when a calibration writes coefficients back)."""
    return _to_toml(profile.model_dump(exclude_none=True))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        escaped = v.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _is_flat(v: Any) -> bool:
    return isinstance(v, dict) and not any(isinstance(x, dict) or _is_table_array(x) for x in v.values())


def _is_table_array(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    """Scalars and flat dicts (inline tables) first, then sub-tables and arrays of tables."""
    scalars: list[str] = []
    tables: list[str] = []
    for k, v in data.items():
        key = f"{prefix}.{k}" if prefix else k
        if isinstance(v, dict) and not _is_flat(v):
            tables.append(f"\n[{key}]\n" + _to_toml(v, key))
        elif _is_table_array(v):
            for item in v:
                tables.append(f"\n[[{key}]]\n" + _to_toml(item, key))
        else:
            scalars.append(f"{k} = {_toml_value(v)}")
    return "\n".join(scalars) + ("\n" if scalars else "") + "".join(tables)
