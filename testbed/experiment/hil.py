"""``hil`` mode: the experiment through a device agent, in real time or time-compressed.

Real time (``hil.compress = false``): for each strategy, repeatedly: the policy reads the stepped
battery's state of charge, the strategy's plan (from the configured profile table) picks the level and
pattern set, and the agent runs one measurement window of ``hil.inferences_per_level`` requests at the
request period (``measure`` with ``period_ms`` and ``deadline_ms``). The window's measured energy
drives the battery over the window's measured duration; every latency becomes an inference row, the
window a power-sample row (flagged when the agent saw throttling or a frequency change). The run ends
when the battery does, so use a small battery (``energy_j`` of tens of joules). A battery that ends inside
a window keeps the window's first inferences pro rata to the time it sustained. Request traces are
sim-only (real time needs ``requests.period_ms``).

Time-compressed (``hil.compress = true``): each (level, pattern set) cell the strategies can use is
measured to steady state through the agent (:mod:`testbed.experiment.profiler`: active energy,
latency percentiles, idle power), the plan is made from these measurements, and the event-driven
simulator extrapolates the whole discharge. The extrapolation error is stated two ways: the 95 %
confidence half-width of each cell's energy (which bounds the life's statistical error), and a
validation window per level at the real request period whose measured energy is compared with what
the steady-state model predicts for it.

Failure modes: agent errors propagate; :class:`BadInputError` when the artifact lacks a pattern set
the profile names, or the configuration has no agents.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.experiment.config import ExperimentConfig
from testbed.experiment.policy import Policy, make_policy
from testbed.experiment.profile_table import ProfileTable
from testbed.experiment.strategy import Plan, make_plan
from testbed.runstore.manifest import base_manifest
from testbed.runstore.store import RunStore


def _client(cfg: ExperimentConfig, url: str) -> Any:
    from testbed.agent.client import AgentClient, read_token

    token_file = cfg.resolve(cfg.board.token_file)
    return AgentClient(url, read_token(Path(token_file) if token_file else None))


def _load(client: Any, cfg: ExperimentConfig, url: str) -> dict[str, Any]:
    from testbed.cli.profile import load_on_agent

    path = Path(cfg.resolve(cfg.artifact.path) or "")
    return load_on_agent(client, path, url.startswith(("http://127.0.0.1", "http://localhost")))


class RealTimeRun:
    """One strategy in real time through the agent (see the module text); resumable like a Simulation."""

    def __init__(
        self, strategy: str, plan: Plan, policy: Policy, battery: Any, client: Any, model_id: str,
        cfg: ExperimentConfig, table: ProfileTable, store: RunStore | None,
    ) -> None:  # fmt: skip
        self.strategy, self.plan, self.policy, self.battery = strategy, plan, policy, battery
        self.client, self.model_id, self.cfg, self.table, self.store = client, model_id, cfg, table, store
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

    def run(self, progress: Callable[[float], None] | None = None) -> dict[str, Any]:
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
                    sw = self.client.switch(self.model_id, ps)
                    if store is not None:
                        store.add(
                            "switches", (self.strategy, self.t, self.pset, ps, float(sw.get("switch_ms", 0.0)), 0.0)
                        )
                self.pset = ps
            m = self.client.measure(
                self.model_id, inferences=n, warmup=0, period_ms=period_ms,
                deadline_ms=cfg.requests.deadline_ms, level=lv, pattern_set=ps,
            )  # fmt: skip
            e = m["energy"]
            dur, energy = float(e["duration_s"]), float(e["energy_j"])
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
                self.end_reason = self.battery.end_reason
            elif cfg.requests.max_duration_s is not None and self.t >= cfg.requests.max_duration_s:
                self.end_reason = "duration_cap"
        total = sum(self.time_at_set.values())
        acc = sum(self.table.accuracy(s) * t for s, t in self.time_at_set.items()) / total if total else math.nan
        return {
            "strategy": self.strategy, "life_s": self.t, "life_h": self.t / 3600.0, "inferences": self.inferences,
            "deadline_misses": self.misses, "miss_rate": self.misses / self.inferences if self.inferences else 0.0,
            "accuracy_time_weighted": acc, "switches": self.switches, "level_changes": self.level_changes,
            "load_energy_j": self.battery.load_energy_j, "soc_end": self.battery.soc, "end_reason": self.end_reason,
            "time_at_level_s": dict(self.time_at_level), "time_at_set_s": dict(self.time_at_set),
            "throttled_windows": self.throttled_windows, "wall_s": time.perf_counter() - wall0, "compressed": False,
        }  # fmt: skip


def measure_cells(
    client: Any, model_id: str, cfg: ExperimentConfig, levels: list[str], sets: list[str], names: list[str]
) -> tuple[ProfileTable, dict[str, dict[str, Any]]]:
    """Steady state of every (level, set) through the agent, and each level's validation window."""
    from testbed.experiment.profiler import ProfileOptions, artifact_metadata, profile_through_agent

    opts = ProfileOptions(
        window_s=max(0.2, cfg.hil.inferences_per_level * (cfg.requests.period_ms or 100.0) / 1000.0 / 10.0),
        warmup=cfg.hil.warmup, min_reps=2, max_reps=5, rel_ci=0.05, levels=tuple(levels), pattern_sets=tuple(sets),
    )  # fmt: skip
    meta = artifact_metadata(Path(cfg.resolve(cfg.artifact.path) or ""))
    table = profile_through_agent(client, model_id, names, meta, opts)
    period_ms = cfg.requests.period_ms or 100.0
    validation: dict[str, dict[str, Any]] = {}
    for lv in levels:
        ps = sets[0]
        row = table.get(ps, lv)
        m = client.measure(model_id, inferences=cfg.hil.inferences_per_level, warmup=0, period_ms=period_ms,
                           level=lv, pattern_set=ps)  # fmt: skip
        e = m["energy"]
        busy_s = sum(m["latencies_ms"]) / 1000.0
        n = len(m["latencies_ms"])
        predicted = n * row.energy_per_inference_j + row.idle_power_w * max(float(e["duration_s"]) - busy_s, 0.0)
        measured = float(e["energy_j"])
        validation[lv] = {"pattern_set": ps, "predicted_j": predicted, "measured_j": measured,
                          "rel_error": abs(predicted - measured) / measured if measured else math.inf}  # fmt: skip
    return table, validation


def run_hil(
    cfg: ExperimentConfig,
    out_dir: Path | None,
    resume_dir: Path | None,
    progress: Callable[[str, float], None] | None = None,
    on_start: Callable[[str], None] | None = None,
) -> dict[str, dict[str, Any]]:
    """Run every strategy of ``cfg`` through its agents (see the module text).

    Setup (and, when compressed, the steady-state measurements) uses the first agent. In real time the
    strategies are dealt round-robin to the agents, which run concurrently, one thread and one run-store
    connection each; each agent runs its strategies one after another.
    """
    import json
    from concurrent.futures import ThreadPoolExecutor

    from testbed.experiment.profile_table import load_profile_table
    from testbed.experiment.runner import commit_interval_s

    table = load_profile_table(cfg.resolve(cfg.profile.table) or cfg.profile.table)
    url0 = cfg.board.agents[0]
    client = _client(cfg, url0)
    with client, client.lease(f"testbed-run-{cfg.name}"):
        info = client.info()
        loaded = _load(client, cfg, url0)
        names = [p["name"] for p in loaded["pattern_sets"]]
        missing = sorted(set(table.pattern_sets) - set(names))
        if missing:
            raise BadInputError(f"the artifact lacks pattern set(s) {', '.join(missing)} that the profile names")
        store = _open_store(cfg, info, out_dir, resume_dir, commit_interval_s())
        try:
            store.begin_phase("setup")
            measured: ProfileTable | None = None
            validation: dict[str, dict[str, Any]] = {}
            if cfg.hil.compress:
                policy0 = make_policy(cfg.policy, table, cfg.resolve(cfg.policy.trace))
                levels = policy0.levels_used() if cfg.policy.kind != "governor" else table.levels
                measured, validation = measure_cells(client, loaded["model_id"], cfg, levels, table.pattern_sets, names)
                store.set_manifest("hil_steady_state", {"table": measured.to_csv(), "validation": validation})
            store.end_phase("setup")
        except BaseException:
            store.close()
            raise
    try:
        todo = [s for s in cfg.strategies if s not in store.results()]
        if measured is not None:
            for strategy in todo:
                _run_strategy(cfg, strategy, store, measured, None, None, progress, on_start, validation)
        else:
            deal: dict[str, list[str]] = {}
            for k, strategy in enumerate(todo):
                deal.setdefault(cfg.board.agents[k % len(cfg.board.agents)], []).append(strategy)

            def worker(url: str, strategies: list[str]) -> None:
                own = RunStore.open(store.path, commit_interval_s())
                try:
                    with _client(cfg, url) as c, c.lease(f"testbed-run-{cfg.name}"):
                        model_id = _load(c, cfg, url)["model_id"]
                        for strategy in strategies:
                            _run_strategy(cfg, strategy, own, table, c, model_id, progress, on_start, {})
                finally:
                    own.close()

            with ThreadPoolExecutor(max_workers=max(1, len(deal))) as pool:
                for future in [pool.submit(worker, url, strategies) for url, strategies in deal.items()]:
                    future.result()
        results = store.results()
        summary: dict[str, dict[str, Any]] = {s: results[s] for s in cfg.strategies}
        (store.path.parent / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        return summary
    finally:
        store.close()


def _open_store(
    cfg: ExperimentConfig, info: dict[str, Any], out_dir: Path | None, resume_dir: Path | None, interval_s: float
) -> RunStore:
    """A new hil run store with the agent-described manifest, or the one to resume (same config)."""
    import json

    config = json.loads(cfg.model_dump_json())
    if resume_dir is not None:
        store = RunStore.open(resume_dir, interval_s)
        if store.manifest().get("config") != config:
            store.conn.close()
            raise BadInputError(f"{resume_dir}: the run was started with a different experiment configuration")
        for name in store.mark_interrupted():
            store.add("events", (None, 0.0, "interrupted", f"phase {name} did not end; resumed"))
        return store
    if out_dir is None:
        raise BadInputError("give --out DIR for a new run or --resume DIR to continue one")
    fidelity = "hardware-in-the-loop" + (" (emulated board)" if info.get("emulated") else "")
    m = base_manifest(config, fidelity, cfg.seed)
    pol = (info.get("policies") or [{}])[0]
    m.update({
        "board": info.get("profile") or info.get("board"), "board_root": info.get("sysfs_root"),
        "governor": pol.get("governor"), "meter": (info.get("meter") or {}).get("uri"),
        "clock_offsets": {"agents": cfg.board.agents, "note": "device time = summed agent window durations"},
        "agent_version": info.get("agent_version"), "compressed": cfg.hil.compress,
    })  # fmt: skip
    return RunStore.create(out_dir, m, interval_s)


def _run_strategy(
    cfg: ExperimentConfig,
    strategy: str,
    store: RunStore,
    table: ProfileTable,
    client: Any | None,
    model_id: str | None,
    progress: Callable[[str, float], None] | None,
    on_start: Callable[[str], None] | None,
    validation: dict[str, dict[str, Any]],
) -> None:
    """One strategy: simulated from measured steady state (``client`` None) or in real time on ``client``."""
    from testbed.experiment.runner import _bind, make_arrivals, make_battery
    from testbed.experiment.simulate import Simulation

    if on_start is not None:
        on_start(strategy)
    policy = make_policy(cfg.policy, table, cfg.resolve(cfg.policy.trace))
    arrivals = make_arrivals(cfg)
    plan = make_plan(strategy, table, policy.levels_used(), cfg.requests.deadline_ms, arrivals.mean_period_s(),
                     cfg.strategy)  # fmt: skip
    store.begin_phase(f"strategy:{strategy}")
    if client is None:
        sim: Any = Simulation(
            strategy, plan, policy, make_battery(cfg), table, arrivals,
            deadline_ms=cfg.requests.deadline_ms, switch_ms=cfg.strategy.switch_ms,
            record_interval_s=cfg.battery.record_interval_s, seed=cfg.seed,
            max_duration_s=cfg.requests.max_duration_s, store=store,
        )  # fmt: skip
    else:
        assert model_id is not None
        sim = RealTimeRun(strategy, plan, policy, make_battery(cfg), client, model_id, cfg, table, store)
    ck = store.checkpoint(strategy)
    if ck is not None:
        store.discard_after(strategy, ck[0])
        sim.restore(ck[1])
    else:
        store.clear_strategy(strategy)
    result = sim.run(_bind(progress, strategy))
    if client is None:
        result["compressed"] = True
        result.update(_error_statement(table, validation, plan))
    store.set_result(strategy, result)
    store.end_phase(f"strategy:{strategy}")


def _error_statement(measured: ProfileTable, validation: dict[str, dict[str, Any]], plan: Plan) -> dict[str, Any]:
    """The extrapolation error of a compressed run: validation error per level and the energy CI."""
    errs = {lv: v["rel_error"] for lv, v in validation.items()}
    used = {lv for lv, _ in plan.choice.values()}
    worst = max((errs[lv] for lv in used if lv in errs), default=math.nan)
    return {
        "extrapolation": {
            "validation_rel_error_per_level": errs,
            "life_rel_error_bound": worst,
            "method": "steady state per (level, set) extrapolated by the event-driven simulator; the bound is the "
            "largest relative difference between a real-period validation window's measured energy and the "
            "steady-state prediction over the levels this strategy uses",
            "cells_repetitions": {f"{k[0]}@{k[1]}": r.repetitions for k, r in measured.rows.items()},
        }
    }
