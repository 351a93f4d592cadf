"""The typed agent API: what every caller of a device agent may rely on.

:class:`AgentAPI` (blocking) and :class:`AsyncAgentAPI` (asyncio) are the protocols that
:class:`~testbed.agent.client.AgentClient` and :class:`~testbed.agent.client.AsyncAgentClient`
implement; type call sites with them, never with ``Any`` or a concrete client, so a fake, a pooled
or a remote (Ray) agent can stand in. Both are ``runtime_checkable`` (``isinstance`` checks that the
methods exist, not their signatures; mypy checks the signatures).

Responses are :class:`~typing.TypedDict` views of the agent's JSON (plain dicts at run time, so
``resp["latency"]["mean_ms"]`` works as before). Units are in the key names: ``*_ms``, ``*_s``,
``*_j``, ``*_w``, ``freq_khz``, ``t_ns`` (the agent's ``time.monotonic_ns()``).

Failure modes, for every method of both protocols: :class:`~testbed.agent.client.AgentRequestError`
(a :class:`~devices.errors.BadInputError`) when the agent refuses the request (4xx: bad input,
unknown model, lease held by someone else or missing); :class:`~testbed.agent.client.AgentUnavailable`
(a :class:`~devices.errors.HardwareError`) when it cannot be reached or fails (5xx).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol, TypedDict, runtime_checkable

from typing_extensions import Unpack


class LevelInfo(TypedDict):
    """One frequency level of the board profile: its name and the frequency per cpufreq policy."""

    name: str
    freq_khz: dict[str, int]


class PatternSetInfo(TypedDict):
    name: str
    sha256: str


class ModelInfo(TypedDict):
    """A loaded model (``POST /v1/models``, ``PUT /v1/models/upload``, and in ``info()["models"]``)."""

    model_id: str
    source: str
    pattern_sets: list[PatternSetInfo]
    active: str
    inputs: list[dict[str, Any]]
    load_s: float


class AgentInfo(TypedDict, total=False):
    """``GET /v1/info``: the board (``devices.board.Board.info``), the profile, the meter, lease and models."""

    sysfs_root: str
    emulated: bool
    board: str | None
    policies: list[dict[str, Any]]
    devfreq: list[dict[str, Any]]
    thermal_zones: list[dict[str, Any]]
    throttle: dict[str, Any] | None
    nvpmodel: Any
    agent_version: str
    api_version: str
    profile: str
    levels: list[LevelInfo]
    meter: dict[str, Any] | None  # the meter's info(): uri, scheme, poll_period_s, …; None without a meter
    lease: dict[str, Any] | None
    models: list[ModelInfo]
    uptime_s: float


class LeaseInfo(TypedDict):
    """``POST /v1/lease`` and ``/v1/lease/renew``."""

    lease_id: str
    holder: str
    ttl_s: float
    expires_in_s: float


class Released(TypedDict):
    """``DELETE /v1/lease``: who held it and what the agent restored."""

    released: str
    restored: list[str]


class FrequencyResults(TypedDict):
    """``POST /v1/frequency``: one read-back per policy set (requested and actual ``freq_khz``, …)."""

    results: list[dict[str, Any]]


class Unloaded(TypedDict):
    unloaded: str


class SwitchResult(TypedDict):
    model_id: str
    pattern_set: str
    switch_ms: float


class LatencyStats(TypedDict):
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float
    deadline_ms: float | None
    deadline_misses: int


class Measurement(TypedDict):
    """``POST /v1/measure``: one meter window of timed inferences.

    ``energy`` is the meter window (``energy_j``, ``net_energy_j``, ``mean_power_w``, ``peak_power_w``,
    ``duration_s``, ``samples`` …) or None when the agent has no meter; ``before``/``after`` are board
    snapshots (``frequencies``, ``thermal_c``, ``throttle``).
    """

    model_id: str
    pattern_set: str
    latency: LatencyStats
    latencies_ms: list[float]
    energy: dict[str, Any] | None
    energy_per_inference_j: float | None
    wall_s: float
    emulated_slowdown: float | None
    before: dict[str, Any]
    after: dict[str, Any]
    throttled_during: bool
    frequency_changed_during: bool


class PowerSamples(TypedDict):
    """``GET /v1/power/samples``: the meter's URI, the agent's clock now, and samples (``t_ns``, ``power_w``…)."""

    meter: str
    now_ns: int
    samples: list[dict[str, Any]]


class Restored(TypedDict):
    restored: list[str]


class MeasureOptions(TypedDict, total=False):
    """Options of one measurement window (``measure``); an option left out or None takes the agent's default."""

    inferences: int | None
    warmup: int | None
    period_ms: float | None
    deadline_ms: float | None
    pattern_set: str | None
    level: str | None
    subtract_idle: bool | None


@runtime_checkable
class AgentAPI(Protocol):
    """One device agent, blocking calls. ``lease_id`` is the lease this handle holds (None when none)."""

    url: str
    lease_id: str | None

    def close(self) -> None: ...
    def info(self) -> AgentInfo: ...
    def acquire(self, holder: str, ttl_s: float = 60.0) -> LeaseInfo: ...
    def renew(self, ttl_s: float | None = None) -> LeaseInfo: ...
    def release(self) -> Released: ...
    def lease(self, holder: str, ttl_s: float = 30.0) -> AbstractContextManager[AgentAPI]:
        """Hold the lease for a ``with`` block (renewed in the background); released, board restored, after."""
        ...

    def set_frequency(
        self, level: str | None = None, policy: str | None = None, freq_khz: int | None = None
    ) -> FrequencyResults: ...
    def load_model(self, path: str, sha256: str | None = None) -> ModelInfo:
        """Load an artifact from a path on the board's file system."""
        ...

    def upload_model(self, path: Path) -> ModelInfo:
        """Upload a single-file artifact (``.onnx``/``.rt3``) from this machine and load it."""
        ...

    def unload_model(self, model_id: str) -> Unloaded: ...
    def switch(self, model_id: str, pattern_set: str) -> SwitchResult: ...
    def measure(self, model_id: str, **options: Unpack[MeasureOptions]) -> Measurement:
        """One measurement window; an option left None takes the agent's default (50 inferences, 5 warm-up)."""
        ...

    def power_samples(self, since_ns: int | None = None, limit: int = 10_000) -> PowerSamples: ...
    def restore(self) -> Restored: ...


@runtime_checkable
class AsyncAgentAPI(Protocol):
    """The same agent API for asyncio code (one coroutine per call); see :class:`AgentAPI`."""

    url: str
    lease_id: str | None

    async def aclose(self) -> None: ...
    async def info(self) -> AgentInfo: ...
    async def acquire(self, holder: str, ttl_s: float = 60.0) -> LeaseInfo: ...
    async def renew(self, ttl_s: float | None = None) -> LeaseInfo: ...
    async def release(self) -> Released: ...
    async def set_frequency(
        self, level: str | None = None, policy: str | None = None, freq_khz: int | None = None
    ) -> FrequencyResults: ...
    async def load_model(self, path: str, sha256: str | None = None) -> ModelInfo: ...
    async def upload_model(self, path: Path) -> ModelInfo: ...
    async def unload_model(self, model_id: str) -> Unloaded: ...
    async def switch(self, model_id: str, pattern_set: str) -> SwitchResult: ...
    async def measure(self, model_id: str, **options: Unpack[MeasureOptions]) -> Measurement: ...
    async def power_samples(self, since_ns: int | None = None, limit: int = 10_000) -> PowerSamples: ...
    async def restore(self) -> Restored: ...
