"""DVFS policies: which frequency level the board runs at, given time and battery state.

- :class:`SocPolicy` — SoC thresholds (RT3's 50/30/20 split: above 50 % the top level, above 20 % the
  middle, else the lowest);
- :class:`TracePolicy` — a replayed DVFS trace (``t_s,domain,freq_khz``, zero-order hold), each
  frequency mapped to the nearest profiled level, optionally looped;
- :class:`GovernorPolicy` — an ondemand-style governor model: every ``sample_ms`` the utilisation of
  the last window decides: above ``up_threshold`` jump to the top level, below ``down_threshold``
  step down one level.

``level(t_s, soc)`` is called before each inference; ``note_busy(busy_s)`` tells the governor how
long the CPU was busy. ``state()``/``restore()`` make policies resumable.
"""

from __future__ import annotations

import bisect
from typing import Any

from devices.errors import BadInputError
from testbed.experiment.config import PolicyCfg
from traces.profile import ProfileTable


class Policy:
    """Base: a fixed level."""

    name = "fixed"

    def __init__(self, level: str) -> None:
        self.fixed = level

    def level(self, t_s: float, soc: float) -> str:
        return self.fixed

    def note_busy(self, busy_s: float) -> None:
        return None

    def levels_used(self) -> list[str]:
        return [self.fixed]

    def state(self) -> dict[str, Any]:
        return {}

    def restore(self, state: dict[str, Any]) -> None:
        return None


class SocPolicy(Policy):
    """``levels[k]`` while SoC > ``thresholds[k]``; the last level below the last threshold."""

    name = "soc"

    def __init__(self, thresholds: list[float], levels: list[str]) -> None:
        if len(levels) != len(thresholds) + 1:
            raise BadInputError(f"{len(thresholds)} SoC thresholds need {len(thresholds) + 1} levels")
        self.thresholds = thresholds
        self.levels = levels

    def level(self, t_s: float, soc: float) -> str:
        for th, lv in zip(self.thresholds, self.levels, strict=False):
            if soc > th:
                return lv
        return self.levels[-1]

    def levels_used(self) -> list[str]:
        return list(self.levels)


class TracePolicy(Policy):
    """Replays ``(t_s, level)`` changes; after ``duration_s`` it loops (or holds the last level)."""

    name = "trace"

    def __init__(self, times_s: list[float], levels: list[str], duration_s: float, loop: bool) -> None:
        if not times_s:
            raise BadInputError("the DVFS trace has no events for the chosen domain")
        self.times_s = times_s
        self.levels = levels
        self.duration_s = duration_s
        self.loop = loop and duration_s > 0

    def level(self, t_s: float, soc: float) -> str:
        if self.loop:
            t_s = t_s % self.duration_s
        k = bisect.bisect_right(self.times_s, t_s) - 1
        return self.levels[max(k, 0)]

    def levels_used(self) -> list[str]:
        return sorted(set(self.levels), key=self.levels.index)


class GovernorPolicy(Policy):
    """Ondemand-like: utilisation per ``sample_s`` window decides the next level."""

    name = "governor"

    def __init__(self, levels: list[str], up: float, down: float, sample_s: float) -> None:
        self.levels = levels  # fastest first
        self.up, self.down, self.sample_s = up, down, sample_s
        self.index = 0
        self.next_eval_s = sample_s
        self.busy_s = 0.0

    def note_busy(self, busy_s: float) -> None:
        self.busy_s += busy_s

    def level(self, t_s: float, soc: float) -> str:
        if t_s >= self.next_eval_s:
            windows = int((t_s - self.next_eval_s) // self.sample_s) + 1
            util = min(1.0, self.busy_s / (windows * self.sample_s))
            if util > self.up:
                self.index = 0
            elif util < self.down:
                self.index = min(self.index + 1, len(self.levels) - 1)
            self.busy_s = 0.0
            self.next_eval_s += windows * self.sample_s
        return self.levels[self.index]

    def levels_used(self) -> list[str]:
        return list(self.levels)

    def state(self) -> dict[str, Any]:
        return {"index": self.index, "next_eval_s": self.next_eval_s, "busy_s": self.busy_s}

    def restore(self, state: dict[str, Any]) -> None:
        self.index = int(state["index"])
        self.next_eval_s = float(state["next_eval_s"])
        self.busy_s = float(state["busy_s"])


def _default_soc_levels(table: ProfileTable, n: int) -> list[str]:
    """``n`` levels spread from the fastest to the slowest profiled level."""
    lv = table.levels
    if n >= len(lv):
        return lv[:n] if n == len(lv) else lv + [lv[-1]] * (n - len(lv))
    return [lv[round(k * (len(lv) - 1) / (n - 1))] for k in range(n)]


def make_policy(cfg: PolicyCfg, table: ProfileTable) -> Policy:
    """Build the configured policy against a profile's levels (a trace policy reads ``cfg.trace``, a path
    resolved when the experiment was loaded); :class:`BadInputError` for unknown levels."""
    if cfg.kind == "soc":
        levels = cfg.levels or _default_soc_levels(table, len(cfg.thresholds) + 1)
        for lv in levels:
            if lv not in table.levels:
                raise BadInputError(f"policy.levels: {lv!r} is not a profiled level ({', '.join(table.levels)})")
        return SocPolicy(list(cfg.thresholds), levels)
    if cfg.kind == "governor":
        return GovernorPolicy(list(table.levels), cfg.up_threshold, cfg.down_threshold, cfg.sample_ms / 1000.0)
    from traces.dvfs import read_dvfs

    trace_path = cfg.trace
    assert trace_path is not None
    trace = read_dvfs(trace_path)
    domain = cfg.domain or (trace.domain_names()[0] if trace.events else "")
    events = [e for e in trace.events if e.domain == domain]
    if not events:
        raise BadInputError(f"{trace_path}: no events for domain {domain!r}")
    freqs = {lv: table.freq_khz(lv) for lv in table.levels}

    def nearest(f: int) -> str:
        return min(freqs, key=lambda lv: (abs(freqs[lv] - f), -freqs[lv]))

    duration = trace.duration_s if trace.duration_s is not None else events[-1].t_s
    return TracePolicy([e.t_s for e in events], [nearest(e.freq_khz) for e in events], float(duration), cfg.loop)
