"""The agent's state and operations, independent of HTTP (the FastAPI app is a thin layer on top).

:class:`AgentService` owns the board (through a :class:`~devices.guard.BoardGuard` held for the agent's
lifetime, so every change is saved first and restored on shutdown, crash or lease expiry), the meter's
sampler, the lease, and the loaded models. Board-changing operations are serialised by one lock.

Safety: models load only from the agent's models directory (:mod:`devices.agent.models_dir`) and belong to
the lease that loaded them — they are unloaded when it ends; model ids are random. A measurement window is
bounded by :attr:`AgentService.max_window_s` (stated in ``/v1/info``) and aborted within about one inference
by lease expiry, shutdown or that limit (:mod:`devices.agent.window`); the board is then restored and the
result says ``aborted``. Static board facts are read once at start and the changing ones at most once per
:data:`INFO_TTL_S`, so readers never make the agent spawn board tools per request.

On an emulated board, latency follows the profile: each inference is stretched by
``f_max / f_hardware`` of ``policy0`` (compute-bound scaling), and the modelled meter sees the
inference as CPU activity.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from pathlib import Path
from typing import Any

from devices import __version__
from devices.agent import AGENT_API_VERSION
from devices.agent.activity import ActivityTracker
from devices.agent.leases import Lease, LeaseManager
from devices.agent.manifests import ArtifactLimits
from devices.agent.models_dir import ModelsDir
from devices.agent.runner import LoadedModel, load_artifact
from devices.agent.window import WindowControl
from devices.board import Board
from devices.errors import BadInputError, TestbedError
from devices.fake.emulation import BoardSpeed, HostSpikeFilter, board_speed
from devices.guard import BoardGuard, default_state_dir
from devices.meters.empty import EmptyMeter
from devices.meters.sampler import Sampler
from devices.stats import percentile

log = logging.getLogger("devices.agent")

MAX_MODELS = 8
#: Longest measurement window (s) unless the agent is started with another limit.
DEFAULT_MAX_WINDOW_S = 600.0
#: How long the changing board facts in ``/v1/info`` (frequencies, temperatures, throttling) are reused (s).
INFO_TTL_S = 1.0


class AgentService:
    """Everything the agent does, callable from HTTP handlers or tests."""

    def __init__(
        self,
        board: Board,
        meter_uri: str | None = None,
        state_dir: Path | None = None,
        emulated: bool = False,
        threads: int | None = None,
        models_dir: Path | None = None,
        max_window_s: float = DEFAULT_MAX_WINDOW_S,
        limits: ArtifactLimits | None = None,
    ) -> None:
        self.board = board
        self.emulated = emulated
        self.threads = threads
        self.spikes = HostSpikeFilter()  # emulated boards only: host stalls clipped (devices/fake/emulation.py)
        self.meter_uri = meter_uri
        self.guard = BoardGuard(board.sysfs, state_dir=state_dir, owner="testbed agent", install_signal_handlers=False)
        self.leases = LeaseManager(on_expire=self._on_lease_expired)
        self.models: dict[str, LoadedModel] = {}
        self._model_lease: dict[str, str | None] = {}  # model id -> the lease id that loaded it
        default_models = (state_dir or default_state_dir()) / "models"
        self.models_dir = ModelsDir(models_dir if models_dir is not None else default_models)
        self.max_window_s = max_window_s
        self.limits = limits or ArtifactLimits()
        self.window = WindowControl()
        self._static_info: dict[str, Any] | None = None
        self._dynamic_info: tuple[float, dict[str, Any]] | None = None
        self._info_lock = threading.Lock()
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
        self.models_dir.prepare()  # uploads a crashed agent left are removed
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
        self._static_facts()
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
        self.window.abort("the agent is shutting down")
        with self._board_lock:  # the running window (if any) stops within about one inference
            self.sampler.stop()
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
        self.window.abort("the lease expired", lease.lease_id)
        self._end_of_lease(lease)

    def _end_of_lease(self, lease: Lease) -> list[str]:
        """The lease is over (released or expired): unload its models and restore the board."""
        for mid in [m for m, lid in self._model_lease.items() if lid == lease.lease_id]:
            self.models.pop(mid, None)
            self._model_lease.pop(mid, None)
        return self.restore()

    def release_lease(self, lease_id: str | None) -> tuple[Lease, list[str]]:
        """Give the lease back: its window stops, its models are unloaded, the board is restored."""
        lease = self.leases.check(lease_id)
        self.window.abort("the lease was released", lease.lease_id)
        lease = self.leases.release(lease_id)
        return lease, self._end_of_lease(lease)

    def lease_taken_over(self, old_id: str, new_id: str) -> None:
        """A holder resumed its own lease under a new id: its models follow it."""
        for mid, lid in self._model_lease.items():
            if lid == old_id:
                self._model_lease[mid] = new_id

    # ---- info ---------------------------------------------------------------------------------
    def _static_facts(self) -> dict[str, Any]:
        """What does not change while the agent runs (read once: profile, policies' tables, nvpmodel)."""
        if self._static_info is None:
            b = self.board
            self._static_info = {
                "sysfs_root": str(b.sysfs.root),
                "emulated": b.sysfs.is_emulated,
                "board": b.profile_name(),
                "nvpmodel": b.info().get("nvpmodel"),
                "agent_version": __version__,
                "api_version": AGENT_API_VERSION,
                "profile": b.profile.name,
                "levels": [lv.model_dump() for lv in b.profile.levels],
                "max_window_s": self.max_window_s,
                "models_dir": str(self.models_dir.root),
                "limits": {
                    "max_window_s": self.max_window_s,
                    "max_models": MAX_MODELS,
                    "max_member_bytes": self.limits.max_member_bytes,
                    "max_total_bytes": self.limits.max_total_bytes,
                },
            }
        return self._static_info

    def _changing_facts(self) -> dict[str, Any]:
        """Frequencies, thermal zones and throttling, reused for :data:`INFO_TTL_S` (one tool call per second)."""
        with self._info_lock:
            now = time.monotonic()
            if self._dynamic_info is None or now - self._dynamic_info[0] >= INFO_TTL_S:
                full = self.board.info()
                self._dynamic_info = (now, {k: full[k] for k in ("policies", "devfreq", "thermal_zones", "throttle")})
            return dict(self._dynamic_info[1])

    def info(self) -> dict[str, Any]:
        lease = self.leases.current()
        data = {**self._static_facts(), **self._changing_facts()}
        data.update(
            {
                "meter": self.sampler.meter.info(),
                "lease": lease.public(time.monotonic()) if lease else None,
                "models": [{k: v for k, v in m.describe().items() if k != "model_id"} for m in self.models.values()],
                "uptime_s": round(time.time() - self.started_unix_s, 3),
                "window_running": self.window.running is not None,
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
            out = [self.guard.set_cpu_frequency(policies[n], f).to_dict() for n, f in targets.items()]
            self._dynamic_info = None  # frequencies changed: the next info reads them again
            return out

    def restore(self) -> list[str]:
        with self._board_lock:
            self._dynamic_info = None
            return self.guard.restore()

    # ---- models -------------------------------------------------------------------------------
    def load_model(self, path: str, sha256: str | None = None, lease_id: str | None = None) -> LoadedModel:
        """Load the artifact at ``path`` inside the models directory (``ModelPathRefused`` for any other path,
        whether it exists or not); it belongs to ``lease_id`` and is unloaded when that lease ends."""
        return self._load(self.models_dir.resolve(path), sha256, lease_id)

    def load_upload(self, path: Path, lease_id: str | None = None) -> LoadedModel:
        """Load an upload the app streamed into the models directory's upload area, then delete it."""
        try:
            return self._load(path, None, lease_id)
        finally:
            path.unlink(missing_ok=True)  # sessions hold the graphs in memory

    def _load(self, path: Path, sha256: str | None, lease_id: str | None) -> LoadedModel:
        if len(self.models) >= MAX_MODELS:
            raise BadInputError(f"at most {MAX_MODELS} models may be loaded; unload one first")
        model_id = f"m-{secrets.token_urlsafe(12)}"
        model = load_artifact(path, model_id, sha256, threads=self.threads, limits=self.limits)
        self.models[model_id] = model
        self._model_lease[model_id] = lease_id
        return model

    def model(self, model_id: str) -> LoadedModel:
        try:
            return self.models[model_id]
        except KeyError:
            raise UnknownModel(f"no model {model_id[:80]!r} is loaded") from None

    def unload_model(self, model_id: str) -> None:
        self.model(model_id)
        del self.models[model_id]
        self._model_lease.pop(model_id, None)

    def switch(self, model_id: str, pattern_set: str) -> float:
        return self.model(model_id).switch(pattern_set)

    # ---- measurement --------------------------------------------------------------------------
    _board_speed: BoardSpeed | None = None

    def board_speed(self) -> BoardSpeed:
        """The emulation scaling of this board on this host (measured once; devices/fake/emulation.py)."""
        if self._board_speed is None:
            self._board_speed = board_speed(self.board.profile)
        return self._board_speed

    def slowdown(self) -> float | None:
        """Emulated frequency factor ``f_max / f_hw`` of policy0, or None on real hardware."""
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
        lease_id: str | None = None,
    ) -> dict[str, Any]:
        """Run ``inferences`` timed inferences (after ``warmup``) in one meter window.

        A window whose planned length (``(warmup + inferences) × period_ms``) exceeds :attr:`max_window_s` is
        refused; one that runs past it, or whose lease expires or is released, or that the agent's shutdown
        interrupts, stops within about one inference and returns what it measured with ``aborted`` and
        ``abort_reason`` set. ``disturbed`` says other agent requests were served during the window."""
        if period_ms is not None and (warmup + inferences) * period_ms / 1000.0 > self.max_window_s:
            raise BadInputError(
                f"window of {(warmup + inferences) * period_ms / 1000.0:g} s (warmup + inferences × period_ms) is "
                f"longer than this agent's limit of {self.max_window_s:g} s (see max_window_s in /v1/info)"
            )
        model = self.model(model_id)
        with self._board_lock:
            win = self.window.begin(f"measure-{time.monotonic_ns()}", lease_id)
            if not self.started and self._stop.is_set():
                self.window.abort("the agent is shutting down")
            try:
                return self._measure_window(
                    model, win.key, inferences, warmup, period_ms, deadline_ms, pattern_set, level, subtract_idle
                )
            finally:
                self.window.end()

    def _measure_window(
        self,
        model: LoadedModel,
        key: str,
        inferences: int,
        warmup: int,
        period_ms: float | None,
        deadline_ms: float | None,
        pattern_set: str | None,
        level: str | None,
        subtract_idle: bool,
    ) -> dict[str, Any]:
        win = self.window
        if level is not None:
            self.set_frequency(level, None, None)
        if pattern_set is not None:
            model.switch(pattern_set)
        before = self.board.snapshot()
        factor = self.slowdown()
        limit_at = time.perf_counter() + self.max_window_s
        for _ in range(warmup):
            if win.aborted:
                break
            self._one(model, factor)
        rejected0, clipped0 = self.sampler.rejected_readings(), self.spikes.clipped
        self.sampler.begin_window(key)
        latencies: list[float] = []
        misses = 0
        t0 = time.perf_counter()
        try:
            for i in range(inferences):
                if win.aborted:
                    break
                if time.perf_counter() >= limit_at:
                    win.abort(f"the window reached this agent's limit of {self.max_window_s:g} s")
                    break
                release = t0 + i * period_ms / 1000.0 if period_ms else time.perf_counter()
                if win.wait(release - time.perf_counter()):
                    break
                lat = self._one(model, factor)
                latencies.append(lat)
                response_ms = (time.perf_counter() - release) * 1000.0
                if deadline_ms is not None and response_ms > deadline_ms:
                    misses += 1
        except BaseException:
            self.sampler.cancel_window(key)
            raise
        wall_s = time.perf_counter() - t0
        window = self.sampler.end_window(key, subtract_idle=subtract_idle, wait_s=0.0 if win.aborted else None)
        assert window is not None  # None only when cancelled
        rejected = self.sampler.rejected_readings() - rejected0
        after = self.board.snapshot()
        state = win.running
        ordered = sorted(latencies)
        n = len(latencies)
        stats = {
            "count": n,
            "mean_ms": sum(latencies) / n if n else 0.0,
            "p50_ms": percentile(ordered, 50) if n else 0.0,
            "p90_ms": percentile(ordered, 90) if n else 0.0,
            "p99_ms": percentile(ordered, 99) if n else 0.0,
            "max_ms": ordered[-1] if n else 0.0,
            "min_ms": ordered[0] if n else 0.0,
            "deadline_ms": deadline_ms,
            "deadline_misses": misses,
        }
        e_j = window.net_energy_j or window.energy_j  # None without a meter (EmptyMeter)
        throttled = any((snap.get("throttle") or {}).get("throttled_now", False) for snap in (before, after))
        freq_changed = before["frequencies"] != after["frequencies"]
        return {
            "model_id": model.model_id,
            "pattern_set": model.pattern_sets[model.active].name,
            "latency": stats,
            "latencies_ms": [round(x, 4) for x in latencies],
            "energy": window.to_dict(),
            "energy_per_inference_j": (e_j / n) if e_j is not None and n else None,
            "wall_s": wall_s,
            "emulated_slowdown": factor,
            "emulated_spikes_clipped": self.spikes.clipped - clipped0 if factor is not None else None,
            "before": before,
            "after": after,
            "throttled_during": throttled,
            "frequency_changed_during": freq_changed,
            "aborted": state is not None and state.abort_reason is not None,
            "abort_reason": state.abort_reason if state is not None else None,
            "disturbed": state is not None and state.concurrent_requests > 0,
            "concurrent_requests": state.concurrent_requests if state is not None else 0,
            "readers_refused": state.readers_refused if state is not None else 0,
            "rejected_readings": rejected,
        }

    def _one(self, model: LoadedModel, factor: float | None) -> float:
        """One inference (returns ms). On an emulated board (``factor`` = f_max / f, not None) the latency is
        the CPU time of the thread that ran it (the process's CPU time when onnxruntime has several threads),
        scaled to the board (:meth:`BoardSpeed.latency_ms`: board speed against this host, ``factor`` on the
        compute-bound share), so a busy host does not bend it, with host stalls clipped
        (:class:`~devices.fake.emulation.HostSpikeFilter`); the call then lasts that long in wall time."""
        if self.activity is not None:
            self.activity.begin()
        try:
            if factor is None:
                return model.infer()
            cpu_clock = time.thread_time_ns if self.threads == 1 else time.process_time_ns
            t0, c0 = time.perf_counter(), cpu_clock()
            model.infer()
            cpu_ms = self.spikes((model.model_id, model.active), (cpu_clock() - c0) / 1e6)
            lat = self.board_speed().latency_ms(cpu_ms, factor)
            left = t0 + lat / 1000.0 - time.perf_counter()
            if left > 0:
                time.sleep(left)
            return lat
        finally:
            if self.activity is not None:
                self.activity.end()

    def power_samples(self, since_ns: int | None, limit: int) -> dict[str, Any]:
        samples = self.sampler.buffer.since(since_ns, limit)
        return {
            "meter": self.sampler.meter.uri,
            "now_ns": time.monotonic_ns(),
            "samples": [s.to_dict() for s in samples],
        }


class UnknownModel(BadInputError):
    """No model with that id (HTTP 404)."""
