"""What a running experiment looks like right now, read from its run store while another process writes it.

:func:`snapshot` reads one consistent view through :class:`~testbed.runstore.reader.RunReader` (read-only;
SQLite WAL lets it see every batch the writer has committed, at most about a second behind) and returns a
:class:`WatchSnapshot`: the strategy being run, its DVFS level and pattern set, state of charge and terminal
voltage, recent power samples, inferences and deadline misses, and an ETA. ``testbed watch`` renders it.

ETA: the strategy's progress is the fraction of its starting state of charge used so far (the battery is
what ends a run); the wall time since its ``strategy:<name>`` phase began, scaled by the remaining
fraction, gives its ETA, and strategies not started yet are assumed to take as long as the mean of the
finished and running ones. An ETA is ``None`` until the battery has moved.

Failure modes: :class:`~devices.errors.BadInputError` when the path holds no run store (yet).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from testbed.runstore.reader import RunReader

SPARK = "▁▂▃▄▅▆▇█"


@dataclass(frozen=True)
class StrategyView:
    """The live state of one strategy (units: s of device time, W, V, 0..1 SoC)."""

    name: str
    finished: bool
    t_s: float | None = None
    level: str | None = None
    freq_khz: int | None = None
    pattern_set: str | None = None
    soc: float | None = None
    soc_start: float | None = None
    voltage_v: float | None = None
    inferences: int = 0
    deadline_misses: int = 0
    switches: int = 0
    power_w: tuple[float, ...] = ()
    wall_elapsed_s: float | None = None

    @property
    def progress(self) -> float | None:
        """Fraction of the starting state of charge used (1.0 when finished)."""
        if self.finished:
            return 1.0
        if self.soc is None or not self.soc_start:
            return None
        return min(1.0, max(0.0, (self.soc_start - self.soc) / self.soc_start))

    @property
    def eta_s(self) -> float | None:
        """Wall seconds until this strategy ends, from its progress so far; ``None`` until it moved."""
        p = self.progress
        if self.finished:
            return 0.0
        if p is None or p <= 0 or self.wall_elapsed_s is None:
            return None
        return self.wall_elapsed_s * (1.0 - p) / p


@dataclass(frozen=True)
class WatchSnapshot:
    """One frame of ``testbed watch``."""

    run: str
    name: str
    mode: str
    fidelity: str
    strategies: tuple[str, ...]
    views: dict[str, StrategyView] = field(default_factory=dict)
    current: str | None = None
    complete: bool = False

    @property
    def finished(self) -> list[str]:
        return [s for s in self.strategies if s in self.views and self.views[s].finished]

    @property
    def eta_s(self) -> float | None:
        """Wall seconds until every strategy has finished (see the module text)."""
        if self.complete:
            return 0.0
        durations = []
        remaining = 0.0
        for s in self.strategies:
            v = self.views.get(s)
            if v is None or v.wall_elapsed_s is None:
                continue
            if v.finished:
                durations.append(v.wall_elapsed_s)
            else:
                eta = v.eta_s
                if eta is None:
                    return None
                remaining += eta
                durations.append(v.wall_elapsed_s + eta)
        if not durations:
            return None
        not_started = sum(1 for s in self.strategies if s not in self.views or self.views[s].wall_elapsed_s is None)
        return remaining + not_started * (sum(durations) / len(durations))


def sparkline(values: tuple[float, ...] | list[float], width: int = 40) -> str:
    """Unicode block sparkline of the last ``width`` values, scaled between their min and max."""
    vals = list(values)[-width:]
    if not vals:
        return ""
    lo, hi = min(vals), max(vals)
    span = hi - lo
    if span <= 0:
        return SPARK[len(SPARK) // 2] * len(vals)
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))] for v in vals)


def _phase_elapsed(reader: RunReader, strategy: str, now_wall_s: float) -> float | None:
    """Wall seconds the strategy's (latest) phase ran or has been running."""
    row = reader.query_one(
        "SELECT wall_start_s, wall_end_s FROM phases WHERE name = ? ORDER BY rowid DESC LIMIT 1",
        (f"strategy:{strategy}",),
    )
    if row is None:
        return None
    start, end = row
    return float((end if end is not None else now_wall_s) - start)


def strategy_view(
    reader: RunReader, strategy: str, finished: bool, power_points: int, now_wall_s: float
) -> StrategyView:
    """The live state of ``strategy`` from its rows so far."""
    last_inf = reader.query_one(
        "SELECT t_s, level, pattern_set FROM inferences WHERE strategy = ? ORDER BY rowid DESC LIMIT 1", (strategy,)
    )
    counts = reader.query_one(
        "SELECT count(*), coalesce(sum(deadline_miss), 0) FROM inferences WHERE strategy = ?", (strategy,)
    ) or (0, 0)
    first_bat = reader.query_one("SELECT soc FROM battery_state WHERE strategy = ? ORDER BY rowid LIMIT 1", (strategy,))
    last_bat = reader.query_one(
        "SELECT t_s, soc, voltage_v FROM battery_state WHERE strategy = ? ORDER BY rowid DESC LIMIT 1", (strategy,)
    )
    level = reader.query_one(
        "SELECT to_level, freq_khz FROM level_changes WHERE strategy = ? ORDER BY rowid DESC LIMIT 1", (strategy,)
    )
    switches = reader.query_one("SELECT count(*) FROM switches WHERE strategy = ?", (strategy,)) or (0,)
    power = reader.query(
        "SELECT power_w FROM power_samples WHERE strategy = ? ORDER BY rowid DESC LIMIT ?", (strategy, power_points)
    )
    t_candidates = [r[0] for r in (last_inf, last_bat) if r is not None]
    return StrategyView(
        name=strategy,
        finished=finished,
        t_s=max(t_candidates) if t_candidates else None,
        level=(level[0] if level else None) or (last_inf[1] if last_inf else None),
        freq_khz=level[1] if level else None,
        pattern_set=last_inf[2] if last_inf else None,
        soc=last_bat[1] if last_bat else None,
        soc_start=first_bat[0] if first_bat else None,
        voltage_v=last_bat[2] if last_bat else None,
        inferences=int(counts[0]),
        deadline_misses=int(counts[1]),
        switches=int(switches[0]),
        power_w=tuple(float(r[0]) for r in reversed(power)),
        wall_elapsed_s=_phase_elapsed(reader, strategy, now_wall_s),
    )


def snapshot(run: Path, power_points: int = 48, now_wall_s: float | None = None) -> WatchSnapshot:
    """Read the run at ``run`` (directory or ``run.sqlite``) once; see :class:`WatchSnapshot`."""
    now = time.time() if now_wall_s is None else now_wall_s
    with RunReader.open(run) as reader:
        cfg = reader.config
        strategies = tuple(str(s) for s in cfg.get("strategies") or ())
        finished = set(reader.finished_units())
        if not strategies:
            strategies = tuple(sorted(finished))
        views = {}
        current = None
        for s in strategies:
            started = reader.query_one("SELECT 1 FROM phases WHERE name = ? LIMIT 1", (f"strategy:{s}",))
            if started is None and s not in finished:
                continue
            views[s] = strategy_view(reader, s, s in finished, power_points, now)
            if s not in finished:
                current = s
        complete = bool(strategies) and all(s in finished for s in strategies)
        return WatchSnapshot(
            run=str(run),
            name=str(cfg.get("name") or Path(run).name),
            mode=str(cfg.get("mode") or "?"),
            fidelity=reader.fidelity,
            strategies=strategies,
            views=views,
            current=current,
            complete=complete,
        )
