"""The agent's state and operations, independent of HTTP (the FastAPI app is a thin layer on top).

:class:`AgentService` owns the board (through a :class:`~devices.guard.BoardGuard` held for the agent's
lifetime, so every change is saved first and restored on shutdown, crash or lease expiry), the meter's
sampler, the lease, and the loaded models. Board-changing operations are serialised by one lock.

On an emulated board, latency follows the profile: each inference is stretched by
``f_max / f_hardware`` of ``policy0`` (compute-bound scaling), and the modelled meter sees the
inference as CPU activity.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from pathlib import Path
from typing import Any

from devices import __version__
from devices.agent import AGENT_API_VERSION
from devices.agent.activity import ActivityTracker
from devices.agent.leases import Lease, LeaseManager
from devices.agent.runner import LoadedModel, load_artifact
from devices.board import Board
from devices.errors import BadInputError, TestbedError
from devices.guard import BoardGuard
from devices.meters.empty import EmptyMeter
from devices.meters.sampler import Sampler
from devices.stats import percentile

log = logging.getLogger("devices.agent")

MAX_MODELS = 8


class AgentService:
    """Everything the agent does, callable from HTTP handlers or tests."""

    def __init__(
        self,
        board: Board,
        meter_uri: str | None = None,
        state_dir: Path | None = None,
        emulated: bool = False,
        threads: int | None = None,
    ) -> None:
        self.board = board
        self.emulated = emulated
        self.threads = threads
        self.meter_uri = meter_uri
        self.guard = BoardGuard(board.sysfs, state_dir=state_dir, owner="testbed agent", install_signal_handlers=False)
        self.leases = LeaseManager(on_expire=self._on_lease_expired)
        self.models: dict[str, LoadedModel] = {}
        self._ids = itertools.count(1)
        self._board_lock = threading.RLock()
        cpus = sorted(c for p in board.profile.policies for c in p.cpus) if emulated else []
        self.activity = ActivityTracker(cpus) if emulated else None
        self.sampler = Sampler(EmptyMeter())  # the null meter ("no meter") unless start() opens meter_uri
        self._reaper: threading.Thread | None = None
        self._stop = threading.Event()
        self.started_unix_s = time.time()
        self.started = False

    # ---- lifecycle ----------------------------------------------------------------------------
    def start(self) -> AgentService:
        """Take the board (recovering a crashed run's state first) and start the meter's sampler."""
        self.guard.__enter__()
        if self.guard.recovered:
            log.warning("restored %s left changed by a previous run", ", ".join(self.guard.recovered))
        if self.meter_uri:
            try:
                self.sampler = self._open_sampler(self.meter_uri)
            except BaseException:
                self.guard.__exit__(None, None, None)
                raise
        self._reaper = threading.Thread(target=self._reap, name="lease-reaper", daemon=True)
        self._reaper.start()
        self.started = True
        return self

    def _open_sampler(self, uri: str) -> Sampler:
        from devices.meters.registry import open_meter

        options: dict[str, Any] = {}
        if uri.startswith("model://") and self.activity is not None:
            options["activity"] = self.activity.read
        meter = open_meter(uri, sysfs_root=self.board.sysfs.root, **options)
        return Sampler(meter).start()

    def stop(self) -> list[str]:
        """Stop sampling and restore the board; returns what was restored."""
        if not self.started:
            return []
        self.started = False
        self._stop.set()
        self.sampler.stop()
        with self._board_lock:
            restored: list[str] = []
            try:
                restored = self.guard.restore()
            finally:
                self.guard.__exit__(None, None, None)
        return restored

    def _reap(self) -> None:
        while not self._stop.wait(0.25):
            try:
                self.leases.expire()
            except TestbedError as exc:  # restore failed: keep the state file, keep going
                log.error("lease expiry: %s", exc)

    def _on_lease_expired(self, lease: Lease) -> None:
        log.warning("lease of %r expired; restoring the board", lease.holder)
        self.restore()

    # ---- info ---------------------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        lease = self.leases.current()
        data = self.board.info()
        data.update(
            {
                "agent_version": __version__,
                "api_version": AGENT_API_VERSION,
                "profile": self.board.profile.name,
                "levels": [lv.model_dump() for lv in self.board.profile.levels],
                "meter": self.sampler.meter.info(),
                "lease": lease.public(time.monotonic()) if lease else None,
                "models": [m.describe() for m in self.models.values()],
                "uptime_s": round(time.time() - self.started_unix_s, 3),
            }
        )
        return data

    # ---- board changes ------------------------------------------------------------------------
    def set_frequency(self, level: str | None, policy: str | None, freq_khz: int | None) -> list[dict[str, Any]]:
        with self._board_lock:
            targets = self.board.level_frequencies(level) if level is not None else {str(policy): int(freq_khz or 0)}
            policies = {name: self.board.policy(name) for name in targets}
            for name, f in targets.items():
                policies[name].validate_frequency(f)
            return [self.guard.set_cpu_frequency(policies[n], f).to_dict() for n, f in targets.items()]

    def restore(self) -> list[str]:
        with self._board_lock:
            return self.guard.restore()

    # ---- models -------------------------------------------------------------------------------
    def load_model(self, path: str, sha256: str | None = None) -> LoadedModel:
        if len(self.models) >= MAX_MODELS:
            raise BadInputError(f"at most {MAX_MODELS} models may be loaded; unload one first")
        model_id = f"m{next(self._ids)}"
        model = load_artifact(path, model_id, sha256, threads=self.threads)
        self.models[model_id] = model
        return model

    def model(self, model_id: str) -> LoadedModel:
        try:
            return self.models[model_id]
        except KeyError:
            raise UnknownModel(f"no model {model_id!r}; loaded: {sorted(self.models) or 'none'}") from None

    def unload_model(self, model_id: str) -> None:
        self.model(model_id)
        del self.models[model_id]

    def switch(self, model_id: str, pattern_set: str) -> float:
        return self.model(model_id).switch(pattern_set)

    # ---- measurement --------------------------------------------------------------------------
    def slowdown(self) -> float | None:
        """Emulated latency factor ``f_max / f_hw`` of policy0, or None on real hardware."""
        if not self.emulated:
            return None
        pol = self.board.profile.policies[0]
        khz = self.board.sysfs.read_int_optional(f"sys/devices/system/cpu/cpufreq/{pol.name}/cpuinfo_cur_freq")
        if not khz:
            return 1.0
        return pol.max_khz / khz

    def measure(
        self,
        model_id: str,
        inferences: int,
        warmup: int = 5,
        period_ms: float | None = None,
        deadline_ms: float | None = None,
        pattern_set: str | None = None,
        level: str | None = None,
        subtract_idle: bool = False,
    ) -> dict[str, Any]:
        """Run ``inferences`` timed inferences (after ``warmup``) in one meter window."""
        model = self.model(model_id)
        with self._board_lock:
            if level is not None:
                self.set_frequency(level, None, None)
            if pattern_set is not None:
                model.switch(pattern_set)
            before = self.board.snapshot()
            factor = self.slowdown()
            for _ in range(warmup):
                self._one(model, factor)
            key = f"measure-{time.monotonic_ns()}"
            self.sampler.begin_window(key)
            latencies: list[float] = []
            misses = 0
            t0 = time.perf_counter()
            try:
                for i in range(inferences):
                    release = t0 + i * period_ms / 1000.0 if period_ms else time.perf_counter()
                    wait = release - time.perf_counter()
                    if wait > 0:
                        time.sleep(wait)
                    lat = self._one(model, factor)
                    latencies.append(lat)
                    response_ms = (time.perf_counter() - release) * 1000.0
                    if deadline_ms is not None and response_ms > deadline_ms:
                        misses += 1
            except BaseException:
                self.sampler.cancel_window(key)
                raise
            wall_s = time.perf_counter() - t0
            window = self.sampler.end_window(key, subtract_idle=subtract_idle)
            assert window is not None  # None only when cancelled
            after = self.board.snapshot()
        ordered = sorted(latencies)
        stats = {
            "count": len(latencies),
            "mean_ms": sum(latencies) / len(latencies),
            "p50_ms": percentile(ordered, 50),
            "p90_ms": percentile(ordered, 90),
            "p99_ms": percentile(ordered, 99),
            "max_ms": ordered[-1],
            "min_ms": ordered[0],
            "deadline_ms": deadline_ms,
            "deadline_misses": misses,
        }
        e_j = window.net_energy_j or window.energy_j  # None without a meter (EmptyMeter)
        throttled = any((snap.get("throttle") or {}).get("throttled_now", False) for snap in (before, after))
        freq_changed = before["frequencies"] != after["frequencies"]
        return {
            "model_id": model_id,
            "pattern_set": model.pattern_sets[model.active].name,
            "latency": stats,
            "latencies_ms": [round(x, 4) for x in latencies],
            "energy": window.to_dict(),
            "energy_per_inference_j": (e_j / len(latencies)) if e_j is not None else None,
            "wall_s": wall_s,
            "emulated_slowdown": factor,
            "before": before,
            "after": after,
            "throttled_during": throttled,
            "frequency_changed_during": freq_changed,
        }

    def _one(self, model: LoadedModel, factor: float | None) -> float:
        """One inference; on an emulated board stretched to the emulated frequency. Returns ms."""
        if self.activity is not None:
            self.activity.begin()
        try:
            t0 = time.perf_counter()
            lat = model.infer()
            if factor is not None and factor > 1.0:
                left = t0 + lat * factor / 1000.0 - time.perf_counter()
                if left > 0:
                    time.sleep(left)
                lat = (time.perf_counter() - t0) * 1000.0
            return lat
        finally:
            if self.activity is not None:
                self.activity.end()

    def power_samples(self, since_ns: int | None, limit: int) -> dict[str, Any]:
        samples = [s for s in self.sampler.samples() if since_ns is None or s.t_ns > since_ns][:limit]
        return {
            "meter": self.sampler.meter.uri,
            "now_ns": time.monotonic_ns(),
            "samples": [s.to_dict() for s in samples],
        }


class UnknownModel(BadInputError):
    """No model with that id (HTTP 404)."""
