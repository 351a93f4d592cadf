"""The event-driven simulator (``sim`` fidelity): every request, inference, switch, level change and
battery step, from a profile table.

For each request (periodic, or from a request trace): the board idles at the current level's idle
power until the request arrives (or until the previous inference ends: a late request queues); the
policy picks a level from time and state of charge; the strategy's plan picks (level, pattern set);
a level change is logged; a pattern-set switch costs ``switch_ms`` at the new set's active power; the
inference's latency is drawn from the profile's p50/p90/p99 (piecewise-linear inverse CDF through
those quantiles, seeded) and costs ``mean_power_w × latency``. A request misses its deadline when
queueing plus latency exceeds ``deadline_ms``. The battery is stepped for each of these segments; the
run ends when it ends (or at ``max_duration_s``), and an inference cut off by the end is not counted.

Results: battery life (s, h), inferences completed (RT3's "runs"), deadline misses, the accuracy
weighted by the time each pattern set was in force, switches, level changes, time per level and set.
Rows go to a :class:`~testbed.runstore.RunStore`; the whole state is checkpointed with each commit
so a killed run resumes exactly where its last commit left it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from testbed.battery.model import BatteryModel
from testbed.experiment.policy import Policy
from testbed.experiment.strategy import Plan
from testbed.runstore.results import StrategyResult
from testbed.runstore.store import RunStore
from traces.profile import ProfileTable

#: Requests between checks of the commit clock and the progress callback.
CHECK_EVERY = 256


@dataclass(frozen=True)
class Arrivals:
    """Request arrival times: ``period_s`` apart, or a trace of offsets repeated every ``loop_s``."""

    period_s: float | None = None
    offsets_s: tuple[float, ...] = ()
    loop_s: float = 0.0

    def at(self, k: int) -> float:
        """Arrival time of request ``k`` (from 0) in seconds."""
        if self.period_s is not None:
            return k * self.period_s
        n = len(self.offsets_s)
        return (k // n) * self.loop_s + self.offsets_s[k % n]

    def mean_period_s(self) -> float:
        if self.period_s is not None:
            return self.period_s
        return self.loop_s / len(self.offsets_s)


@dataclass(frozen=True)
class _Cost:
    q: tuple[float, float, float, float, float]  # latency (s) at u = 0, .5, .9, .99, 1
    power_w: float
    idle_w: float
    accuracy: float
    throttled: int
    freq_khz: int


def _cost(table: ProfileTable, level: str, ps: str) -> _Cost:
    r = table.get(ps, level)
    p50, p90, p99 = r.latency_p50_ms / 1e3, r.latency_p90_ms / 1e3, r.latency_p99_ms / 1e3
    q0 = max(p50 - (p90 - p50), 0.5 * p50)
    q100 = p99 + 0.1 * (p99 - p90)
    return _Cost((q0, p50, p90, p99, q100), r.mean_power_w, r.idle_power_w, r.accuracy, r.throttled, r.freq_khz)


def _latency_s(q: tuple[float, float, float, float, float], u: float) -> float:
    if u < 0.5:
        return q[0] + (q[1] - q[0]) * (u / 0.5)
    if u < 0.9:
        return q[1] + (q[2] - q[1]) * ((u - 0.5) / 0.4)
    if u < 0.99:
        return q[2] + (q[3] - q[2]) * ((u - 0.9) / 0.09)
    return q[3] + (q[4] - q[3]) * ((u - 0.99) / 0.01)


class Simulation:
    """One strategy's run from a full battery (or from a checkpoint) to its end."""

    def __init__(
        self,
        strategy: str,
        plan: Plan,
        policy: Policy,
        battery: BatteryModel,
        table: ProfileTable,
        arrivals: Arrivals,
        *,
        deadline_ms: float,
        switch_ms: float,
        record_interval_s: float,
        seed: int,
        max_duration_s: float | None = None,
        store: RunStore | None = None,
    ) -> None:
        self.strategy = strategy
        self.plan = plan
        self.policy = policy
        self.battery = battery
        self.table = table
        self.arrivals = arrivals
        self.deadline_s = deadline_ms / 1000.0
        self.switch_s = switch_ms / 1000.0
        self.record_interval_s = record_interval_s
        self.max_duration_s = max_duration_s if max_duration_s is not None else math.inf
        self.store = store
        self.rng = np.random.default_rng(seed)
        self.costs = {(lv, ps): _cost(table, lv, ps) for (ps, lv) in table.rows}
        # state
        self.k = 0
        self.t = 0.0
        self.level: str | None = None
        self.pset: str | None = None
        self.inferences = 0
        self.misses = 0
        self.switches = 0
        self.level_changes = 0
        self.time_at_level: dict[str, float] = {}
        self.time_at_set: dict[str, float] = {}
        self.seg_t0 = 0.0  # start of the current (level, set) segment; its time is added when it ends
        self.win_t0 = 0.0
        self.win_e = 0.0
        self.win_dur = 0.0
        self.win_throttled = 0
        self.end_reason = ""

    # -- checkpointing ------------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """Everything needed to continue this run exactly (JSON-serialisable)."""
        return {
            "k": self.k, "t": self.t, "level": self.level, "pset": self.pset, "inferences": self.inferences,
            "misses": self.misses, "switches": self.switches, "level_changes": self.level_changes,
            "time_at_level": self.time_at_level, "time_at_set": self.time_at_set, "seg_t0": self.seg_t0,
            "win": [self.win_t0, self.win_e,
            self.win_dur, self.win_throttled], "battery": self.battery.state(), "policy": self.policy.state(),
            "rng": self.rng.bit_generator.state,
        }  # fmt: skip

    def restore(self, s: dict[str, Any]) -> None:
        """Continue from a :meth:`state` snapshot."""
        self.k, self.t = int(s["k"]), float(s["t"])
        self.level, self.pset = s["level"], s["pset"]
        self.inferences, self.misses = int(s["inferences"]), int(s["misses"])
        self.switches, self.level_changes = int(s["switches"]), int(s["level_changes"])
        self.time_at_level = {k: float(v) for k, v in s["time_at_level"].items()}
        self.time_at_set = {k: float(v) for k, v in s["time_at_set"].items()}
        self.seg_t0 = float(s["seg_t0"])
        self.win_t0, self.win_e, self.win_dur, self.win_throttled = s["win"]
        self.battery.restore(s["battery"])
        self.policy.restore(s["policy"])
        self.rng.bit_generator.state = s["rng"]

    def _checkpoint(self) -> tuple[str, float, dict[str, Any]]:
        return self.strategy, self.t, self.state()

    # -- the loop ------------------------------------------------------------------------------------------

    def _draw(self, power_w: float, dt_s: float, throttled: int) -> bool:
        """Step the battery; account time and energy; False when the battery (or the time cap) ends it."""
        if dt_s <= 0.0:
            return True
        capped = self.t + dt_s > self.max_duration_s
        if capped:
            dt_s = max(self.max_duration_s - self.t, 0.0)
        battery = self.battery
        got = battery.step(power_w, dt_s)
        self.t += got
        self.win_e += power_w * got
        self.win_dur += got
        self.win_throttled |= throttled
        if self.win_dur >= self.record_interval_s:
            self._flush_window()
        if battery.ended:
            self.end_reason = battery.end_reason or "ended"
            return False
        if capped:
            self.end_reason = "duration_cap"
            return False
        return True

    def _end_segment(self) -> None:
        """Add the time since the segment began to the current level and pattern set."""
        if self.level is not None and self.pset is not None:
            d = self.t - self.seg_t0
            self.time_at_level[self.level] = self.time_at_level.get(self.level, 0.0) + d
            self.time_at_set[self.pset] = self.time_at_set.get(self.pset, 0.0) + d
        self.seg_t0 = self.t

    def _flush_window(self) -> None:
        if self.win_dur <= 0.0:
            return
        if self.store is not None:
            self.store.add(
                "power_samples",
                (self.strategy, self.win_t0, self.win_dur, self.win_e / self.win_dur, self.win_throttled,
                 self.win_throttled),
            )  # fmt: skip
            b = self.battery
            self.store.add("battery_state", (self.strategy, self.t, b.soc, b.voltage_v(), b.current_a(),
                                             b.load_energy_j))  # fmt: skip
        self.win_t0, self.win_e, self.win_dur, self.win_throttled = self.t, 0.0, 0.0, 0

    def run(self, progress: Callable[[float], None] | None = None) -> StrategyResult:
        """Simulate until the battery ends; returns the result (see :meth:`result`)."""
        store = self.store
        inf_rows = store.buffer("inferences") if store is not None else None
        wall0 = time.perf_counter()
        rng_random = self.rng.random
        costs = self.costs
        choice = self.plan.choice
        arrivals_at = self.arrivals.at
        deadline_s = self.deadline_s
        draw = self._draw
        policy_level = self.policy.level
        note_busy = self.policy.note_busy
        battery = self.battery
        strategy = self.strategy
        level_now = self.level
        cost = costs[(level_now, self.pset)] if level_now is not None and self.pset is not None else None
        while not self.end_reason:
            if self.k % CHECK_EVERY == 0:
                if store is not None:
                    store.maybe_commit(self._checkpoint)
                if progress is not None:
                    progress(1.0 - self.battery.soc)
            arrival = arrivals_at(self.k)
            # idle until the request arrives
            if cost is not None and arrival > self.t and not draw(cost.idle_w, arrival - self.t, cost.throttled):
                break
            start = max(arrival, self.t)
            lv, ps = choice[policy_level(start, battery.soc)]
            if lv != level_now or ps != self.pset:
                self._end_segment()
            if lv != level_now:
                new = costs[(lv, ps)]
                if store is not None:
                    store.add("level_changes", (self.strategy, self.t, level_now, lv, new.freq_khz))
                if level_now is not None:
                    self.level_changes += 1
                self.level = level_now = lv
            if ps != self.pset:
                old = self.pset
                self.pset = ps
                cost = costs[(lv, ps)]
                if old is not None:
                    self.switches += 1
                    if store is not None:
                        store.add("switches", (self.strategy, self.t, old, ps, self.switch_s * 1e3,
                                               cost.power_w * self.switch_s))  # fmt: skip
                    if not draw(cost.power_w, self.switch_s, cost.throttled):
                        break
            cost = costs[(lv, ps)]
            t_start = self.t
            lat = _latency_s(cost.q, rng_random())
            note_busy(lat)
            if not draw(cost.power_w, lat, cost.throttled):
                break
            done = self.t - arrival
            miss = done > deadline_s
            self.inferences += 1
            self.misses += miss
            if inf_rows is not None:
                inf_rows.append((strategy, self.k, t_start, lv, ps, done * 1e3, cost.power_w * lat, int(miss),
                                 cost.throttled))  # fmt: skip
            self.k += 1
        self._end_segment()
        self._flush_window()
        if store is not None:
            store.add("events", (self.strategy, self.t, "end", self.end_reason))
            store.commit(self._checkpoint())
        return self.result(time.perf_counter() - wall0)

    def result(self, wall_s: float = 0.0) -> StrategyResult:
        """Battery life, runs, misses, time-weighted accuracy and the time split by level and set;
        ``wall_s``: the seconds of wall time the run took."""
        return StrategyResult.from_counts(
            self.strategy,
            life_s=self.t,
            inferences=self.inferences,
            deadline_misses=self.misses,
            accuracy_time_weighted=time_weighted_accuracy(self.table, self.time_at_set),
            switches=self.switches,
            level_changes=self.level_changes,
            load_energy_j=self.battery.load_energy_j,
            soc_end=self.battery.soc,
            end_reason=self.end_reason,
            time_at_level_s=self.time_at_level,
            time_at_set_s=self.time_at_set,
            wall_s=wall_s,
        )


def time_weighted_accuracy(table: ProfileTable, time_at_set_s: dict[str, float]) -> float:
    """The profile's accuracy of each pattern set weighted by the seconds it was in force (NaN for no time)."""
    total = sum(time_at_set_s.values())
    if not total > 0:
        return math.nan
    return sum(table.accuracy(ps) * t for ps, t in time_at_set_s.items()) / total


def read_request_trace(path: str) -> Arrivals:
    """A request trace: CSV with a ``t_s`` column (first column), non-decreasing; it repeats.

    Raises :class:`~devices.errors.ParseError` naming the line of a bad value.
    """
    from devices.errors import ParseError

    times: list[float] = []
    with open(path, encoding="utf-8") as fh:
        lines: Iterator[tuple[int, str]] = enumerate(fh, start=1)
        header_seen = False
        for n, line in lines:
            s = line.strip()
            if not s or s.startswith("#"):
                continue
            first = s.split(",")[0].strip()
            if not header_seen:
                header_seen = True
                if first == "t_s":
                    continue
            try:
                v = float(first)
            except ValueError:
                raise ParseError(path, n, f"t_s={first!r} is not a number") from None
            if not math.isfinite(v) or v < 0 or (times and v < times[-1]):
                raise ParseError(path, n, f"t_s={first} must be finite, ≥ 0 and non-decreasing")
            times.append(v)
    if len(times) < 2:
        raise ParseError(path, None, "a request trace needs at least two requests")
    gap = (times[-1] - times[0]) / (len(times) - 1)
    if gap <= 0:
        raise ParseError(path, None, "all requests at the same time")
    return Arrivals(None, tuple(times), times[-1] + gap)
