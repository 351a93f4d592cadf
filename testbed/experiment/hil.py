"""``hil`` mode: the experiment through device agents, in real time or time-compressed.

Real time (``hil.compress = false``): for each strategy, repeatedly: the policy reads the stepped
battery's state of charge, the strategy's plan (from the configured profile table) picks the level and
pattern set, and the agent runs one measurement window of ``hil.inferences_per_level`` requests at the
request period (``measure`` with ``period_ms`` and ``deadline_ms``). The window's measured energy
drives the battery over the window's measured duration; every latency becomes an inference row, the
window a power-sample row (flagged when the agent saw throttling or a frequency change). The run ends
when the battery does, so use a small battery (``energy_j`` of tens of joules). A battery that ends inside
a window keeps the window's first inferences pro rata to the time it sustained. Request traces are
sim-only (real time needs ``requests.period_ms``). The strategies are dealt round-robin to the boards
of an :class:`~testbed.agent.pool.AgentPool`, which run concurrently (one thread and one run-store
connection each; each board runs its strategies one after another).

Time-compressed (``hil.compress = true``): each (level, pattern set) cell the strategies can use is
measured to steady state through the first agent (:mod:`testbed.experiment.profiler`: active energy,
latency percentiles, idle power), the plan is made from these measurements, and the event-driven
simulator extrapolates the whole discharge. The extrapolation error is stated two ways: the 95 %
confidence half-width of each cell's energy (which bounds the life's statistical error), and a
validation window per level at the real request period whose measured energy is compared with what
the steady-state model predicts for it.

The store, resume, manifest and summary are the run executor's (:mod:`testbed.runstore.executor`).

Failure modes: agent errors propagate; :class:`BadInputError` when the artifact lacks a pattern set
the profile names, or the configuration has no agents; :class:`HardwareError` when an agent has no meter.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from devices.errors import BadInputError, HardwareError
from devices.meters.empty import has_energy
from testbed.agent.api import AgentAPI, AgentInfo, Measurement
from testbed.agent.client import CONTROLLER_LEASE_TTL_S, read_token, run_lease_key
from testbed.agent.loading import load_on_agent
from testbed.agent.pool import AgentEndpoint, AgentPool, PooledAgent
from testbed.experiment.assemble import (
    StrategyParts,
    build_simulation,
    config_json,
    load_table,
    make_arrivals,
    strategy_parts,
)
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.policy import make_policy
from testbed.experiment.profiler import ProfileOptions, artifact_metadata, profile_through_agent
from testbed.experiment.simulate import time_weighted_accuracy
from testbed.experiment.strategy import Plan
from testbed.runstore.executor import ProgressFn, RunDescription, RunExecutor, UnitContext
from testbed.runstore.results import Extrapolation, StrategyResult
from testbed.runstore.store import RunStore
from traces.profile import ProfileTable


@dataclass(frozen=True)
class ValidationWindow:
    """One level's validation window of a compressed run: the energy (J) the steady-state model predicts for a
    window at the real request period, the energy measured, and their relative difference."""

    pattern_set: str
    predicted_j: float
    measured_j: float

    @property
    def rel_error(self) -> float:
        return abs(self.predicted_j - self.measured_j) / self.measured_j if self.measured_j else math.inf

    def to_dict(self) -> dict[str, Any]:
        return {"pattern_set": self.pattern_set, "predicted_j": self.predicted_j, "measured_j": self.measured_j,
                "rel_error": self.rel_error}  # fmt: skip


#: The validation windows of a compressed run, per level.
Validation = dict[str, ValidationWindow]


def _window_energy(m: Measurement, url: str) -> tuple[float, float]:
    """(duration_s, energy_j) of a measurement window; :class:`HardwareError` when the agent has no meter."""
    e = m["energy"]
    if e is None or not has_energy(e):  # an agent without a meter answers with EmptyMeter windows
        raise HardwareError(f"{url}: the agent has no power meter; hil mode needs measured energy")
    return float(e["duration_s"]), float(e["energy_j"])


class RealTimeRun:
    """One strategy in real time through one agent (see the module text); resumable like a Simulation."""

    def __init__(
        self, strategy: str, parts: StrategyParts, agent: AgentAPI, model_id: str, cfg: ExperimentConfig,
        table: ProfileTable, store: RunStore | None,
    ) -> None:  # fmt: skip
        self.strategy, self.plan, self.policy, self.battery = strategy, parts.plan, parts.policy, parts.battery
        self.agent, self.model_id, self.cfg, self.table, self.store = agent, model_id, cfg, table, store
        self.t = 0.0
        self.seq = 0
        self.level: str | None = None
        self.pset: str | None = None
        self.inferences = self.misses = self.switches = self.level_changes = 0
        self.time_at_level: dict[str, float] = {}
        self.time_at_set: dict[str, float] = {}
        self.throttled_windows = 0
        self.end_reason = ""

    def state(self) -> dict[str, Any]:
        keys = ("t", "seq", "level", "pset", "inferences", "misses", "switches", "level_changes",
                "time_at_level", "time_at_set", "throttled_windows")  # fmt: skip
        return {**{k: getattr(self, k) for k in keys}, "battery": self.battery.state(), "policy": self.policy.state()}

    def restore(self, s: dict[str, Any]) -> None:
        for k, v in s.items():
            if k not in ("battery", "policy"):
                setattr(self, k, v)
        self.battery.restore(s["battery"])
        self.policy.restore(s["policy"])

    def run(self, progress: Callable[[float], None] | None = None) -> StrategyResult:
        cfg, store = self.cfg, self.store
        period_ms = cfg.requests.period_ms
        if period_ms is None:
            raise BadInputError("hil mode needs requests.period_ms (request traces are sim-only)")
        n = cfg.hil.inferences_per_level
        wall0 = time.perf_counter()
        while not self.end_reason:
            lv, ps = self.plan.choice[self.policy.level(self.t, self.battery.soc)]
            if lv != self.level:
                if store is not None:
                    store.add("level_changes", (self.strategy, self.t, self.level, lv, self.table.freq_khz(lv)))
                self.level_changes += self.level is not None
                self.level = lv
            if ps != self.pset:
                if self.pset is not None:
                    self.switches += 1
                    sw = self.agent.switch(self.model_id, ps)
                    if store is not None:
                        store.add("switches", (self.strategy, self.t, self.pset, ps, float(sw["switch_ms"]), 0.0))
                self.pset = ps
            m = self.agent.measure(
                self.model_id, inferences=n, warmup=0, period_ms=period_ms,
                deadline_ms=cfg.requests.deadline_ms, level=lv, pattern_set=ps,
            )  # fmt: skip
            dur, energy = _window_energy(m, self.agent.url)
            power = energy / dur if dur > 0 else 0.0
            got = self.battery.step(power, dur)
            frac = got / dur if dur > 0 else 1.0
            throttled = int(bool(m.get("throttled_during") or m.get("frequency_changed_during")))
            self.throttled_windows += throttled
            lats = m["latencies_ms"][: max(0, math.floor(len(m["latencies_ms"]) * frac + 1e-9))]
            for k, lat in enumerate(lats):
                t_k = self.t + k * period_ms / 1000.0
                miss = int(lat > cfg.requests.deadline_ms)
                self.misses += miss
                if store is not None:
                    store.add("inferences", (self.strategy, self.seq, t_k, lv, ps, lat, energy / n, miss, throttled))
                self.seq += 1
            self.inferences += len(lats)
            if store is not None:
                store.add("power_samples", (self.strategy, self.t, got, power, throttled, throttled))
            self.t += got
            self.time_at_level[lv] = self.time_at_level.get(lv, 0.0) + got
            self.time_at_set[ps] = self.time_at_set.get(ps, 0.0) + got
            if store is not None:
                b = self.battery
                store.add(
                    "battery_state", (self.strategy, self.t, b.soc, b.voltage_v(), b.current_a(), b.load_energy_j)
                )
                store.commit((self.strategy, self.t, self.state()))
            if progress is not None:
                progress(1.0 - self.battery.soc)
            if self.battery.ended:
                self.end_reason = self.battery.end_reason or "ended"
            elif cfg.requests.max_duration_s is not None and self.t >= cfg.requests.max_duration_s:
                self.end_reason = "duration_cap"
        return StrategyResult.from_counts(
            self.strategy, life_s=self.t, inferences=self.inferences, deadline_misses=self.misses,
            accuracy_time_weighted=time_weighted_accuracy(self.table, self.time_at_set), switches=self.switches,
            level_changes=self.level_changes, load_energy_j=self.battery.load_energy_j, soc_end=self.battery.soc,
            end_reason=self.end_reason, time_at_level_s=self.time_at_level, time_at_set_s=self.time_at_set,
            wall_s=time.perf_counter() - wall0, throttled_windows=self.throttled_windows, compressed=False,
        )  # fmt: skip


def measure_cells(
    agent: AgentAPI, model_id: str, cfg: ExperimentConfig, levels: list[str], sets: list[str], names: list[str]
) -> tuple[ProfileTable, Validation]:
    """Steady state of every (level, set) through the agent, and each level's validation window."""
    opts = ProfileOptions(
        window_s=max(0.2, cfg.hil.inferences_per_level * (cfg.requests.period_ms or 100.0) / 1000.0 / 10.0),
        warmup=cfg.hil.warmup, min_reps=2, max_reps=5, rel_ci=0.05, levels=tuple(levels), pattern_sets=tuple(sets),
    )  # fmt: skip
    assert cfg.artifact.path is not None
    table = profile_through_agent(agent, model_id, names, artifact_metadata(Path(cfg.artifact.path)), opts)
    period_ms = cfg.requests.period_ms or 100.0
    validation: Validation = {}
    for lv in levels:
        ps = sets[0]
        row = table.get(ps, lv)
        m = agent.measure(model_id, inferences=cfg.hil.inferences_per_level, warmup=0, period_ms=period_ms,
                          level=lv, pattern_set=ps)  # fmt: skip
        duration_s, measured = _window_energy(m, agent.url)
        busy_s = sum(m["latencies_ms"]) / 1000.0
        n = len(m["latencies_ms"])
        predicted = n * row.energy_per_inference_j + row.idle_power_w * max(duration_s - busy_s, 0.0)
        validation[lv] = ValidationWindow(ps, predicted, measured)
    return table, validation


def describe_hil(cfg: ExperimentConfig, info: AgentInfo) -> RunDescription:
    """A hil run's manifest entries, from the first agent's description of its board."""
    pol = (info.get("policies") or [{}])[0]
    return RunDescription(
        config=config_json(cfg),
        fidelity="hardware-in-the-loop" + (" (emulated board)" if info.get("emulated") else ""),
        seed=cfg.seed,
        board=info.get("profile") or info.get("board"),
        governor=pol.get("governor"),
        meter=(info.get("meter") or {}).get("uri"),
        clock_offsets={"agents": cfg.board.agents, "note": "device time = summed agent window durations"},
        extra={"board_root": info.get("sysfs_root"), "agent_version": info.get("agent_version"),
               "compressed": cfg.hil.compress},
    )  # fmt: skip


def _load(pa: PooledAgent, cfg: ExperimentConfig) -> tuple[str, list[str]]:
    """Load the artifact on one agent: its model id and pattern-set names."""
    assert cfg.artifact.path is not None
    loaded = load_on_agent(pa.agent, Path(cfg.artifact.path), pa.local)
    return loaded["model_id"], [p["name"] for p in loaded["pattern_sets"]]


def _pool(
    cfg: ExperimentConfig, connect: Callable[[AgentEndpoint], AgentAPI] | None = None, run_dir: Path | None = None
) -> AgentPool:
    token_file = cfg.board.token_file
    token = read_token(Path(token_file) if token_file else None)
    if connect is not None:  # a board farm's connector: the farm holds the leases (testbed.distributed.farm)
        endpoints = [AgentEndpoint(u, token) for u in cfg.board.agents]
        return AgentPool(endpoints, f"testbed-run-{cfg.name}", connect=connect)
    # the run's own key: a killed controller's --resume takes its lease back; a short TTL ends it otherwise
    key = run_lease_key(token, run_dir)
    endpoints = [AgentEndpoint(u, token, resume_key=key) for u in cfg.board.agents]
    return AgentPool(endpoints, f"testbed-run-{cfg.name}", ttl_s=CONTROLLER_LEASE_TTL_S)


def run_hil(
    cfg: ExperimentConfig,
    out_dir: Path | None,
    resume_dir: Path | None,
    progress: ProgressFn | None = None,
    on_start: Callable[[str], None] | None = None,
    connect: Callable[[AgentEndpoint], AgentAPI] | None = None,
) -> dict[str, StrategyResult]:
    """Run every strategy of ``cfg`` through its agents (see the module text); results per strategy.

    ``connect`` replaces the pool's HTTP connector (a board farm passes the agents it already holds)."""
    table = load_table(cfg)
    measured: ProfileTable | None = None
    validation: Validation = {}
    run: RunExecutor | None = None
    try:
        with _pool(cfg, connect, out_dir or resume_dir) as pool:
            first = pool.first()
            info = first.agent.info()
            model_id, names = _load(first, cfg)
            missing = sorted(set(table.pattern_sets) - set(names))
            if missing:
                raise BadInputError(f"the artifact lacks pattern set(s) {', '.join(missing)} that the profile names")
            run = RunExecutor.open(config_json(cfg), lambda: describe_hil(cfg, info), out_dir, resume_dir)
            with run.phase(run.setup_phase):
                if cfg.hil.compress:
                    policy = make_policy(cfg.policy, table)
                    levels = policy.levels_used() if cfg.policy.kind != "governor" else table.levels
                    measured, validation = measure_cells(first.agent, model_id, cfg, levels, table.pattern_sets, names)
                    windows = {lv: v.to_dict() for lv, v in validation.items()}
                    run.store.set_manifest("hil_steady_state", {"table": measured.to_csv(), "validation": windows})
            if measured is None:
                _run_real_time(run, pool, {first.index: model_id}, cfg, table, progress, on_start)
        if measured is not None:  # the boards are given back: the rest is simulation
            run.run_units(cfg.strategies, _compressed_runner(cfg, measured, validation), progress, on_start)
        return run.finish(cfg.strategies, StrategyResult)
    finally:
        if run is not None:
            run.close()


def _run_real_time(
    run: RunExecutor,
    pool: AgentPool,
    model_ids: dict[int, str],
    cfg: ExperimentConfig,
    table: ProfileTable,
    progress: ProgressFn | None,
    on_start: Callable[[str], None] | None,
) -> None:
    """The pending strategies dealt to the pool's agents, one thread and one store connection per agent."""
    arrivals = make_arrivals(cfg)  # read once (a request trace), shared by every strategy

    def worker(pa: PooledAgent, strategies: list[str]) -> None:
        model_id = model_ids[pa.index] if pa.index in model_ids else _load(pa, cfg)[0]

        def real_time(ctx: UnitContext) -> StrategyResult:
            parts = strategy_parts(cfg, ctx.unit, table, arrivals)
            rt = RealTimeRun(ctx.unit, parts, pa.agent, model_id, cfg, table, ctx.store)
            if ctx.resume_from is not None:
                rt.restore(ctx.resume_from.state)
            return rt.run(ctx.progress)

        own = run.connection()
        try:
            run.run_units(strategies, real_time, progress, on_start, store=own)
        finally:
            own.close()

    deal = pool.deal(run.pending(cfg.strategies))
    with ThreadPoolExecutor(max_workers=max(1, len(deal))) as threads:
        for future in [threads.submit(worker, pa, strategies) for pa, strategies in deal]:
            future.result()


def _compressed_runner(
    cfg: ExperimentConfig, measured: ProfileTable, validation: Validation
) -> Callable[[UnitContext], StrategyResult]:
    """A strategy simulated from the measured steady state, its result carrying the extrapolation error."""
    arrivals = make_arrivals(cfg)

    def simulate(ctx: UnitContext) -> StrategyResult:
        sim = build_simulation(cfg, ctx.unit, ctx.store, measured, arrivals)
        if ctx.resume_from is not None:
            sim.restore(ctx.resume_from.state)
        result = sim.run(ctx.progress)
        return replace(result, compressed=True, extrapolation=extrapolation(measured, validation, sim.plan))

    return simulate


def extrapolation(measured: ProfileTable, validation: Validation, plan: Plan) -> Extrapolation:
    """The extrapolation error of a compressed run: validation error per level and the energy CI."""
    errs = {lv: v.rel_error for lv, v in validation.items()}
    used = {lv for lv, _ in plan.choice.values()}
    worst = max((errs[lv] for lv in used if lv in errs), default=math.nan)
    return Extrapolation(
        validation_rel_error_per_level=errs,
        life_rel_error_bound=worst,
        method="steady state per (level, set) extrapolated by the event-driven simulator; the bound is the "
        "largest relative difference between a real-period validation window's measured energy and the "
        "steady-state prediction over the levels this strategy uses",
        cells_repetitions={f"{k[0]}@{k[1]}": r.repetitions for k, r in measured.rows.items()},
    )
