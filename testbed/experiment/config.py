"""The experiment file (TOML), validated with pydantic; errors are one line naming the file and field.

::

    name = "rpi4-5hz"
    mode = "sim"                      # sim | hil
    seed = 1
    strategies = ["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]

    [board]
    profile = "rpi4"                  # board profile (devices/profiles)
    agents = []                       # hil: agent URLs
    token_file = "token"              # hil: the agents' token

    [profile]
    table = "rpi4"                    # profile CSV path (relative to this file) or bundled name

    [artifact]
    path = "model.onnx"               # hil: the reconfigurable model the agent loads

    [requests]
    period_ms = 200.0                 # or: trace = "requests.csv" (one column t_s)
    deadline_ms = 115.0
    max_duration_s = 36000            # optional cap on device time

    [battery]
    model = "bucket"                  # bucket | ecm
    energy_j = 37800.0                # bucket
    cell = "nmc-18650"                # ecm: bundled cell name or TOML path
    soc0 = 1.0
    efficiency = 1.0                  # converter efficiency (0, 1]
    static_power_w = 0.0              # added to every draw
    record_interval_s = 10.0          # battery-state and power-sample rows

    [policy]
    kind = "soc"                      # soc | trace | governor
    thresholds = [0.5, 0.2]           # soc: SoC above 0.5 → levels[0], above 0.2 → levels[1], else levels[2]
    levels = ["f1500", "f1000", "f600"]
    # trace: trace = "dvfs.csv", domain = "policy0", loop = true
    # governor: up_threshold = 0.8, down_threshold = 0.3, sample_ms = 100

    [strategy]
    static_set = "ps62"               # static-sparse (default: densest set meeting the deadline everywhere)
    rt3_sets = { f1500 = "dense" }    # rt3 (default: densest set meeting the deadline at each level)
    switch_ms = 45.0                  # time one pattern-set switch costs, at active power
    min_accuracy = 0.9                # oracle (default: the accuracy rt3 has at the policy's level)

    [hil]
    compress = true                   # measure each level's steady state, extrapolate
    inferences_per_level = 50
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from devices.errors import BadInputError, ParseError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STRATEGIES = ("dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoardCfg(_Strict):
    profile: str = "rpi4"
    agents: list[str] = Field(default_factory=list)
    token_file: str | None = None


class ProfileCfg(_Strict):
    table: str = "rpi4"


class ArtifactCfg(_Strict):
    path: str | None = None


class RequestsCfg(_Strict):
    period_ms: float | None = Field(default=None, gt=0)
    trace: str | None = None
    deadline_ms: float = Field(gt=0)
    max_duration_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> RequestsCfg:
        if (self.period_ms is None) == (self.trace is None):
            raise ValueError("give exactly one of period_ms and trace")
        return self


class BatteryCfg(_Strict):
    model: Literal["bucket", "ecm"] = "bucket"
    energy_j: float | None = Field(default=None, gt=0)
    cell: str | None = None
    soc0: float = Field(default=1.0, gt=0, le=1)
    efficiency: float = Field(default=1.0, gt=0, le=1)
    static_power_w: float = Field(default=0.0, ge=0)
    record_interval_s: float = Field(default=10.0, gt=0)

    @model_validator(mode="after")
    def _source(self) -> BatteryCfg:
        if self.model == "bucket" and self.energy_j is None:
            raise ValueError("a bucket battery needs energy_j")
        if self.model == "ecm" and self.cell is None:
            raise ValueError("an ecm battery needs cell")
        return self


class PolicyCfg(_Strict):
    kind: Literal["soc", "trace", "governor"] = "soc"
    thresholds: list[float] = Field(default_factory=lambda: [0.5, 0.2])
    levels: list[str] | None = None
    trace: str | None = None
    domain: str | None = None
    loop: bool = True
    up_threshold: float = Field(default=0.8, gt=0, le=1)
    down_threshold: float = Field(default=0.3, ge=0, lt=1)
    sample_ms: float = Field(default=100.0, gt=0)

    @model_validator(mode="after")
    def _shape(self) -> PolicyCfg:
        if self.kind == "soc":
            if any(not 0 < t < 1 for t in self.thresholds) or self.thresholds != sorted(self.thresholds, reverse=True):
                raise ValueError("thresholds must be decreasing SoC values in (0, 1)")
            if self.levels is not None and len(self.levels) != len(self.thresholds) + 1:
                raise ValueError(f"{len(self.thresholds)} thresholds need {len(self.thresholds) + 1} levels")
        if self.kind == "trace" and self.trace is None:
            raise ValueError("a trace policy needs trace")
        if self.kind == "governor" and self.down_threshold >= self.up_threshold:
            raise ValueError("down_threshold must be below up_threshold")
        return self


class StrategyCfg(_Strict):
    static_set: str | None = None
    rt3_sets: dict[str, str] = Field(default_factory=dict)
    switch_ms: float = Field(default=45.0, ge=0)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)


class HilCfg(_Strict):
    compress: bool = True
    inferences_per_level: int = Field(default=50, ge=2)
    warmup: int = Field(default=5, ge=0)


class ExperimentConfig(_Strict):
    name: str = "experiment"
    mode: Literal["sim", "hil"] = "sim"
    seed: int = 0
    strategies: list[Literal["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]] = Field(
        default_factory=lambda: list(STRATEGIES)  # type: ignore[arg-type]
    )
    board: BoardCfg = Field(default_factory=BoardCfg)
    profile: ProfileCfg = Field(default_factory=ProfileCfg)
    artifact: ArtifactCfg = Field(default_factory=ArtifactCfg)
    requests: RequestsCfg
    battery: BatteryCfg
    policy: PolicyCfg = Field(default_factory=PolicyCfg)
    strategy: StrategyCfg = Field(default_factory=StrategyCfg)
    hil: HilCfg = Field(default_factory=HilCfg)
    base_dir: str = "."

    @model_validator(mode="after")
    def _mode(self) -> ExperimentConfig:
        if not self.strategies:
            raise ValueError("strategies is empty")
        if len(set(self.strategies)) != len(self.strategies):
            raise ValueError("strategies lists a strategy twice")
        if self.mode == "hil" and not self.board.agents:
            raise ValueError("hil mode needs board.agents")
        if self.mode == "hil" and not self.artifact.path:
            raise ValueError("hil mode needs artifact.path")
        return self

    def resolve(self, path: str | None) -> str | None:
        """A path from the file, relative to the experiment file's directory (names without / stay as given)."""
        if path is None:
            return None
        p = Path(path)
        if p.is_absolute():
            return str(p)
        candidate = Path(self.base_dir) / p
        return str(candidate) if candidate.exists() or "/" in path or p.suffix else path


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc if not isinstance(x, int)) or "(top level)"


def parse_experiment(data: dict[str, Any], path: str, base_dir: str = ".") -> ExperimentConfig:
    """Validate a decoded experiment table; :class:`ParseError` names the first bad field."""
    try:
        return ExperimentConfig.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ParseError(path, None, f"{field}: {msg}") from None


def load_experiment(path: str | Path) -> ExperimentConfig:
    """Read and validate an experiment TOML file (see the module text)."""
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: no such experiment file")
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ParseError(p, getattr(exc, "lineno", None), f"not valid TOML: {exc}") from None
    return parse_experiment(data, str(p), str(p.parent.resolve()))
