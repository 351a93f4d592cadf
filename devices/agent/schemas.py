"""Request and response bodies of the agent's HTTP API (pydantic, validated, units in names)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LeaseRequest(_Body):
    holder: str = Field(min_length=1, max_length=128, pattern=r"^[\w .@:/+-]+$")
    ttl_s: float = Field(default=60.0, ge=1.0, le=86400.0)
    #: A secret the holder keeps (a run's own key): asking again with the same holder and key takes the
    #: lease back (a resumed controller); 16..128 characters.
    resume_key: str | None = Field(default=None, min_length=16, max_length=128)


class LeaseRenew(_Body):
    ttl_s: float | None = Field(default=None, ge=1.0, le=86400.0)


class LeaseInfo(BaseModel):
    lease_id: str
    holder: str
    ttl_s: float
    expires_in_s: float
    resumed: bool = False


class FrequencyRequest(_Body):
    """Either a profile level (name or index) or one policy and a frequency."""

    level: str | None = Field(default=None, max_length=64)
    policy: str | None = Field(default=None, pattern=r"^policy\d{1,4}$")
    freq_khz: int | None = Field(default=None, ge=1, le=100_000_000)

    @model_validator(mode="after")
    def _one_form(self) -> FrequencyRequest:
        if self.level is not None and (self.policy is not None or self.freq_khz is not None):
            raise ValueError("give either level, or policy with freq_khz")
        if self.level is None and (self.policy is None or self.freq_khz is None):
            raise ValueError("policy and freq_khz are required when no level is given")
        return self


class ModelLoadRequest(_Body):
    path: str = Field(min_length=1, max_length=4096)
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


class SwitchRequest(_Body):
    pattern_set: str = Field(min_length=1, max_length=128)


class MeasureRequest(_Body):
    model_id: str = Field(min_length=1, max_length=64)
    inferences: int = Field(default=50, ge=1, le=100_000)
    warmup: int = Field(default=5, ge=0, le=10_000)
    period_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    deadline_ms: float | None = Field(default=None, gt=0, le=3_600_000)
    pattern_set: str | None = Field(default=None, max_length=128)
    level: str | None = Field(default=None, max_length=64)
    subtract_idle: bool = False


class LatencyStats(BaseModel):
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    min_ms: float
    deadline_ms: float | None
    deadline_misses: int


class MeasureResult(BaseModel):
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
    #: The window stopped early (lease expired or released, agent shutting down, window-length limit).
    aborted: bool = False
    abort_reason: str | None = None
    #: Other agent requests were served while the window ran (their count), and readers refused (429).
    disturbed: bool = False
    concurrent_requests: int = 0
    readers_refused: int = 0
    #: Meter readings discarded as implausible during the window (corrupted frames or lines).
    rejected_readings: int = 0


class ErrorBody(BaseModel):
    error: str
    detail: str
