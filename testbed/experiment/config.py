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
    deadline_tail = "cell"            # a cell's tail vs the deadline: its p99 (cell) or p50 x pooled p99/p50
    max_duration_s = 36000            # optional cap on device time

    [battery]
    model = "bucket"                  # rt3-accounting | energy-bucket (alias: bucket) | ecm
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
    # search_result = "search/"       # or: exactly the sets a `testbed search` chose (matched by sparsity)
    switch_ms = 45.0                  # time one pattern-set switch costs, at active power
    min_accuracy = 0.9                # oracle (default: the accuracy rt3 has at the policy's level)

    [hil]
    compress = true                   # measure each level's steady state, extrapolate
    inferences_per_level = 50

Every file the experiment names (:data:`PATH_FIELDS`: profile table, cell, request and DVFS traces, token,
artifact) is resolved once, when the file is loaded, by the one rule of :mod:`testbed.paths`: relative to the
experiment file's directory, bundled names (``rpi4``, ``nmc-18650``) to the bundled files. The loaded config
(and so the run manifest) carries absolute paths; nothing downstream resolves a path again.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from devices.errors import BadInputError, ParseError
from testbed.battery import registry
from testbed.experiment.strategy import strategy_names
from testbed.paths import CELLS, PROFILE_TABLES, BundledKind, resolve_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class BoardCfg(_Strict):
    profile: str = "rpi4"
    agents: list[str] = Field(default_factory=list)
    token_file: str | None = None

    @field_validator("profile")
    @classmethod
    def _known_profile(cls, name: str) -> str:
        from devices.board_profile import available_profiles

        if not name.endswith(".toml") and name not in available_profiles():
            raise ValueError(f"unknown board profile {name!r}; bundled: {', '.join(available_profiles())}")
        return name


class ProfileCfg(_Strict):
    table: str = "rpi4"


class ArtifactCfg(_Strict):
    path: str | None = None


class RequestsCfg(_Strict):
    period_ms: float | None = Field(default=None, gt=0)
    trace: str | None = None
    deadline_ms: float = Field(gt=0)
    # how a cell's tail latency is compared with the deadline: its measured p99, or its median x the profile's
    # pooled p99/p50 over the policy's levels (testbed.experiment.deadline.TailModel)
    deadline_tail: Literal["cell", "pooled"] = "cell"
    max_duration_s: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _one_source(self) -> RequestsCfg:
        if (self.period_ms is None) == (self.trace is None):
            raise ValueError("give exactly one of period_ms and trace")
        return self


class BatteryCfg(_Strict):
    model: str = "bucket"  # a name of testbed.battery.registry (kept as written: manifests and resumes compare it)
    energy_j: float | None = Field(default=None, gt=0)
    cell: str | None = None
    soc0: float = Field(default=1.0, gt=0, le=1)
    efficiency: float = Field(default=1.0, gt=0, le=1)
    static_power_w: float = Field(default=0.0, ge=0)
    record_interval_s: float = Field(default=10.0, gt=0)

    @field_validator("model")
    @classmethod
    def _known_model(cls, name: str) -> str:
        if not registry.is_known(name):
            raise ValueError(f"unknown battery model {name!r}; known: {registry.known()}")
        return name

    @model_validator(mode="after")
    def _source(self) -> BatteryCfg:
        sized_by = registry.spec(self.model).sized_by
        if all(getattr(self, f) is None for f in sized_by):
            raise ValueError(f"a {self.model} battery needs {' or '.join(sized_by)}")
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
    search_result: str | None = None  # a `testbed search` output: rt3 runs exactly the sets it chose
    switch_ms: float = Field(default=45.0, ge=0)
    min_accuracy: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_rt3_source(self) -> StrategyCfg:
        if self.rt3_sets and self.search_result is not None:
            raise ValueError("give rt3_sets or search_result, not both")
        return self


class HilCfg(_Strict):
    compress: bool = True
    inferences_per_level: int = Field(default=50, ge=2)
    warmup: int = Field(default=5, ge=0)


class ExperimentConfig(_Strict):
    name: str = "experiment"
    mode: Literal["sim", "hil"] = "sim"
    seed: int = 0
    strategies: list[str] = Field(
        default_factory=lambda: list(strategy_names())  # every registered strategy (testbed.experiment.strategy)
    )
    board: BoardCfg = Field(default_factory=BoardCfg)
    profile: ProfileCfg = Field(default_factory=ProfileCfg)
    artifact: ArtifactCfg = Field(default_factory=ArtifactCfg)
    requests: RequestsCfg
    battery: BatteryCfg
    policy: PolicyCfg = Field(default_factory=PolicyCfg)
    strategy: StrategyCfg = Field(default_factory=StrategyCfg)
    hil: HilCfg = Field(default_factory=HilCfg)
    base_dir: str = "."  # the experiment file's directory; every path above is already resolved against it

    @field_validator("strategies")
    @classmethod
    def _known_strategies(cls, names: list[str]) -> list[str]:
        unknown = [s for s in names if s not in strategy_names()]
        if unknown:
            raise ValueError(f"unknown strategy {unknown[0]!r}; known: {', '.join(strategy_names())}")
        return names

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


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc if not isinstance(x, int)) or "(top level)"


#: (section, field, bundled kind) of every file an experiment names; resolved once, by :func:`parse_experiment`.
PATH_FIELDS: tuple[tuple[str, str, BundledKind | None], ...] = (
    ("board", "token_file", None),
    ("profile", "table", PROFILE_TABLES),
    ("artifact", "path", None),
    ("requests", "trace", None),
    ("battery", "cell", CELLS),
    ("policy", "trace", None),
    ("strategy", "search_result", None),
)


def parse_experiment(data: dict[str, Any], path: str, base_dir: str = ".") -> ExperimentConfig:
    """Validate a decoded experiment table and resolve every path in it (:mod:`testbed.paths`, against
    ``base_dir``) to an absolute path; :class:`ParseError` names the first bad field."""
    try:
        cfg = ExperimentConfig.model_validate({**data, "base_dir": base_dir})
    except ValidationError as exc:
        err = exc.errors()[0]
        field = _field_path(tuple(err["loc"]))
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise ParseError(path, None, f"{field}: {msg}") from None
    for section, name, bundled in PATH_FIELDS:
        part = getattr(cfg, section)
        value = getattr(part, name)
        if value is None:
            continue
        try:
            setattr(part, name, str(resolve_path(value, base_dir, bundled)))
        except BadInputError as exc:
            raise ParseError(path, None, f"{section}.{name}: {exc}") from None
    return cfg


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
