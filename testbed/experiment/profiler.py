"""Profiling through a device agent (ProTran-style): every pattern set × frequency level, repeated until
the confidence interval is tight.

For each level and pattern set: a short pilot estimates the latency; each repetition is then one meter
window of enough back-to-back inferences to last ``window_s`` (so the meter sees several samples),
after ``warmup`` inferences. Repetitions continue until the 95 % confidence half-widths (Student t) of
the mean energy per inference and of the mean latency are both within ``rel_ci`` of their means, or
``max_reps`` is reached (at least ``min_reps``). The cells are measured in interleaved rounds: with
``interleave="levels"`` (the default) one round visits every level in turn and takes one window of each
unfinished set there, fastest level first on odd rounds and in reverse on even ones (a serpentine order, which
cancels a linear drift over each pair of rounds); with ``interleave="sets"`` each level is finished before the next,
its sets interleaved. A drift of the host (on an emulated board) or of the board's temperature then falls on
all cells alike, and the ratios the battery-life comparison rests on — between sets, and between a set at
one level and another set at another (rt3 at the lowest level against dense-max at the top) — stay put.
Measured on the demo's emulated Pi 4 level after level, the same cell's median moved by up to 20 % between
three profiles, and in all three the top level, measured first, read 10–20 % slow against the emulation's
``f_max / f`` scaling of the levels after it. Several models loaded on the agent can be profiled together into one table
(:func:`profile_models`), so sets from different artifacts are compared under the same conditions.
Latency percentiles come from all repetitions' latencies pooled. Idle power at a level comes from one
more window of the first (densest) set at a low duty cycle (``idle_duty``, at least 2 s long):
``P_idle = (E_window − n·e_active) / (T_window − busy_s)``. A row is flagged ``throttled`` when any of its
windows saw throttling or a frequency change (the agent's
``throttled_during`` / ``frequency_changed_during``).

After every level is measured, cells that break monotonicity in frequency (a faster level slower, or
drawing less power: :func:`testbed.experiment.quality.monotonicity_violations`) are measured again, up to
``remeasure_rounds`` times, their new repetitions pooled with the old. The host's 1-minute load average per
core is read around every window; the table's metadata records the highest, the worst confidence
half-width reached and whether every cell met the target, so :func:`testbed.experiment.quality.assess`
gives the table a verdict (monotone, CI met, load, throttling) that travels with it.

On an emulated board (the agent reports ``emulated_slowdown``) the latencies are the agent's CPU-time
based board latencies; the energy per inference is the window's mean power times the mean latency, so
a late wake-up on a busy host (which the modelled meter sees as busy time) does not add to it.

Sparsity and accuracy per pattern set come from the artifact's manifest (``.rt3`` or a directory with
``manifest.json``); where the manifest lacks them they are 0 and the table's metadata says so.

Failure modes: :class:`~devices.errors.BadInputError` for a missing artifact or unknown level/pattern
set; agent errors propagate (:class:`~testbed.agent.client.AgentUnavailable` etc.).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from devices.meters.empty import require_energy
from devices.stats import percentile
from testbed.agent.api import AgentAPI, Measurement
from testbed.experiment.quality import monotonicity_violations
from traces.profile import ProfileRow, ProfileTable, build_table

#: Two-sided 95 % Student t quantiles by degrees of freedom (1…30); 1.96 beyond.
_T95 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
        2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
        2.045, 2.042)  # fmt: skip


def t95(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    return _T95[df - 1] if 1 <= df <= len(_T95) else 1.96


def rel_half_width(values: list[float]) -> float:
    """95 % confidence half-width of the mean, relative to the mean (inf with fewer than two values)."""
    if len(values) < 2:
        return math.inf
    mean = statistics.fmean(values)
    if mean == 0:
        return math.inf
    return t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values)) / abs(mean)


#: How the profiler orders its windows (see the module text).
INTERLEAVE = ("levels", "sets")


@dataclass(frozen=True)
class ProfileOptions:
    window_s: float = 1.0
    warmup: int = 3
    min_reps: int = 3
    max_reps: int = 10
    rel_ci: float = 0.05
    idle_duty: float = 0.05
    levels: tuple[str, ...] | None = None
    pattern_sets: tuple[str, ...] | None = None
    remeasure_rounds: int = 2
    interleave: str = "levels"  # levels: rounds over every level's cells | sets: level by level

    def __post_init__(self) -> None:
        if self.interleave not in INTERLEAVE:
            raise BadInputError(f"interleave must be {' or '.join(INTERLEAVE)}, got {self.interleave!r}")


def host_load_per_core() -> float:
    """This host's 1-minute load average divided by its CPU count (0 where the OS has no load average)."""
    try:
        return os.getloadavg()[0] / (os.cpu_count() or 1)
    except OSError:  # pragma: no cover - platforms without getloadavg
        return 0.0


@dataclass
class Cell:
    """Every repetition measured so far for one (level, pattern set)."""

    energies: list[float]
    means_ms: list[float]
    powers: list[float]
    peaks: list[float]
    latencies: list[float]
    throttled: bool = False
    temp_c: float = 0.0
    load_max: float = 0.0

    @property
    def reps(self) -> int:
        return len(self.energies)

    def rel_ci(self) -> float:
        return max(rel_half_width(self.energies), rel_half_width(self.means_ms))

    def stats(self) -> dict[str, float]:
        ordered = sorted(self.latencies)
        return {
            "latency_p50_ms": percentile(ordered, 50),
            "latency_p90_ms": percentile(ordered, 90),
            "latency_p99_ms": percentile(ordered, 99),
            "latency_mean_ms": statistics.fmean(self.latencies),
            "energy_per_inference_j": statistics.fmean(self.energies),
            "mean_power_w": statistics.fmean(self.powers),
            "peak_power_w": max(self.peaks),
            "energy_rel_ci": rel_half_width(self.energies),
            "temp_c_max": self.temp_c,
        }


def artifact_metadata(path: Path) -> dict[str, dict[str, float]]:
    """``{pattern_set: {"sparsity": …, "accuracy": …}}`` from an artifact's manifest (missing keys omitted)."""
    manifest: dict[str, Any] | None = None
    if path.is_dir() and (path / "manifest.json").is_file():
        manifest = json.loads((path / "manifest.json").read_text())
    elif path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            if "manifest.json" in zf.namelist():
                manifest = json.loads(zf.read("manifest.json"))
    out: dict[str, dict[str, float]] = {}
    for entry in (manifest or {}).get("pattern_sets", []):
        if isinstance(entry, dict) and "name" in entry:
            out[str(entry["name"])] = {
                k: float(entry[k]) for k in ("sparsity", "accuracy") if isinstance(entry.get(k), (int, float))
            }
    return out


def _throttled(m: Measurement) -> bool:
    return bool(m.get("throttled_during")) or bool(m.get("frequency_changed_during"))


def _temp_c(m: Measurement) -> float:
    """The hottest thermal-zone reading in a measurement's before/after snapshots (0 when none)."""
    temps = [
        float(v)
        for snap in (m.get("before") or {}, m.get("after") or {})
        for v in (snap.get("thermal_c") or {}).values()
        if isinstance(v, (int, float))
    ]
    return max(temps, default=0.0)


def _window_size(client: AgentAPI, model_id: str, level: str, pattern_set: str, opts: ProfileOptions) -> int:
    """Inferences per window: enough to last ``window_s``, from a 5-inference pilot (10 … 100 000)."""
    pilot = client.measure(model_id, inferences=5, warmup=opts.warmup, level=level, pattern_set=pattern_set)
    lat_ms = max(pilot["latency"]["mean_ms"], 1e-3)
    return max(10, min(100_000, math.ceil(opts.window_s * 1000.0 / lat_ms)))


def _add_window(client: AgentAPI, model_id: str, level: str, pattern_set: str, n: int, opts: ProfileOptions,
                c: Cell) -> None:  # fmt: skip
    """Measure one window of ``n`` inferences and add it to ``c``."""
    c.load_max = max(c.load_max, host_load_per_core())
    m = client.measure(model_id, inferences=n, warmup=opts.warmup, level=level, pattern_set=pattern_set)
    c.load_max = max(c.load_max, host_load_per_core())
    c.throttled |= _throttled(m)
    c.temp_c = max(c.temp_c, _temp_c(m))
    e = require_energy(m.get("energy"), "profile energy")
    per_inference_j = m.get("energy_per_inference_j")
    if per_inference_j is None:  # not reached: a window with energy has a per-inference share
        raise BadInputError("the agent has no power meter: cannot profile energy")
    mean_ms = float(m["latency"]["mean_ms"])
    if m.get("emulated_slowdown") is not None:  # emulated: power x CPU-time latency (see the module text)
        per_inference_j = float(e["mean_power_w"]) * mean_ms / 1000.0
    c.energies.append(float(per_inference_j))
    c.means_ms.append(mean_ms)
    c.powers.append(float(e["mean_power_w"]))
    c.peaks.append(float(e["peak_power_w"]))
    c.latencies.extend(float(x) for x in m["latencies_ms"])


def measure_cells(
    client: AgentAPI,
    plan: list[tuple[str, str, str]],
    opts: ProfileOptions,
    cells: dict[tuple[str, str], Cell],
    done: Callable[[str, str], None] | None = None,
) -> None:
    """Measure every ``(level, model_id, pattern set)`` of ``plan`` to the confidence target, in interleaved
    rounds: each round takes one window of every unfinished cell, in ``plan``'s order on odd rounds and in
    reverse on even ones (group ``plan`` by level, so a round changes the frequency once per level and the
    next round starts where the last ended). A drift in the host's or board's speed then falls on every cell
    alike instead of on whichever was measured last, and the serpentine order cancels a linear drift exactly
    over each pair of rounds (a cell measured early in one round is measured late in the next). New windows
    are pooled with those already in ``cells[(level, set)]`` (a re-measure); a cell is finished after
    ``min_reps`` new windows once its CI target is met, or after ``max_reps``. ``done(level, set)`` is called
    as each finishes."""
    sizes = {(lv, ps): _window_size(client, mid, lv, ps, opts) for lv, mid, ps in plan}
    for lv, _, ps in plan:
        cells.setdefault((lv, ps), Cell([], [], [], [], []))
    active = list(plan)
    for new in range(1, opts.max_reps + 1):
        for lv, mid, ps in active if new % 2 else active[::-1]:
            _add_window(client, mid, lv, ps, sizes[(lv, ps)], opts, cells[(lv, ps)])
        finished = [
            (lv, mid, ps) for lv, mid, ps in active
            if new == opts.max_reps or (new >= opts.min_reps and cells[(lv, ps)].rel_ci() <= opts.rel_ci)
        ]  # fmt: skip
        for cell in finished:
            active.remove(cell)
            if done is not None:
                done(cell[0], cell[2])
        if not active:
            return


def measure_idle(
    client: AgentAPI, model_id: str, level: str, pattern_set: str, active: dict[str, float], opts: ProfileOptions
) -> tuple[float, bool]:
    """Idle power at ``level`` from a low-duty window (see the module text); returns (W, throttled)."""
    lat_ms = active["latency_mean_ms"]
    period_ms = lat_ms / opts.idle_duty
    idle_window_s = max(4.0 * opts.window_s, 2.0)  # long: the meter's samples at the window edges matter less
    n = max(5, math.ceil(idle_window_s * 1000.0 / period_ms))
    m = client.measure(
        model_id, inferences=n, warmup=opts.warmup, level=level, pattern_set=pattern_set, period_ms=period_ms
    )
    e = require_energy(m["energy"], "profile idle power")
    busy_s = sum(m["latencies_ms"]) / 1000.0
    idle_s = float(e["duration_s"]) - busy_s
    if idle_s <= 0:
        raise BadInputError(f"level {level}: no idle time in the idle window (inference longer than its period)")
    idle_w = (float(e["energy_j"]) - len(m["latencies_ms"]) * active["energy_per_inference_j"]) / idle_s
    return max(idle_w, 0.0), _throttled(m)


@dataclass(frozen=True)
class ProfiledModel:
    """One model loaded on the agent: its id, its pattern sets (names) and their manifest metadata."""

    model_id: str
    pattern_sets: list[str]
    meta: dict[str, dict[str, float]]


def profile_through_agent(
    client: AgentAPI,
    model_id: str,
    pattern_sets: list[str],
    meta: dict[str, dict[str, float]],
    opts: ProfileOptions,
    progress: Callable[[str, str], None] | None = None,
) -> ProfileTable:
    """Profile every (pattern set, level) of one loaded model; see :func:`profile_models`."""
    return profile_models(client, [ProfiledModel(model_id, pattern_sets, meta)], opts, progress)


def profile_models(
    client: AgentAPI,
    models: list[ProfiledModel],
    opts: ProfileOptions,
    progress: Callable[[str, str], None] | None = None,
) -> ProfileTable:
    """Profile every (pattern set, level) of the loaded ``models`` in one session (their sets measured in
    interleaved rounds at each level, so they share the host's and board's conditions); returns one table
    (rows in measured order). :class:`BadInputError` when two models have a pattern set of the same name,
    or for an unknown level or pattern set. ``progress(level, set)`` is called as each cell finishes."""
    info = client.info()
    levels = [(lv["name"], int(next(iter(lv["freq_khz"].values())))) for lv in info.get("levels", [])]
    if not levels:
        raise BadInputError("the agent reports no frequency levels")
    if opts.levels is not None:
        unknown = sorted(set(opts.levels) - {n for n, _ in levels})
        if unknown:
            raise BadInputError(
                f"unknown level(s) {', '.join(unknown)}; the agent has {', '.join(n for n, _ in levels)}"
            )
        levels = [lv for lv in levels if lv[0] in opts.levels]
    owner: dict[str, str] = {}
    meta: dict[str, dict[str, float]] = {}
    for pm in models:
        for ps in pm.pattern_sets:
            if ps in owner:
                raise BadInputError(f"pattern set {ps!r} is in two of the models profiled together; rename one")
            owner[ps] = pm.model_id
        meta.update({ps: md for ps, md in pm.meta.items() if ps in pm.pattern_sets})
    pattern_sets = list(owner)
    sets = list(opts.pattern_sets) if opts.pattern_sets is not None else pattern_sets
    unknown = sorted(set(sets) - set(pattern_sets))
    if unknown:
        raise BadInputError(f"unknown pattern set(s) {', '.join(unknown)}; the artifact has {', '.join(pattern_sets)}")
    cells: dict[tuple[str, str], Cell] = {}
    idle: dict[str, tuple[float, bool]] = {}

    def measure_levels(names: list[str]) -> None:
        groups = [names] if opts.interleave == "levels" else [[lv] for lv in names]
        for group in groups:
            measure_cells(client, [(lv, owner[ps], ps) for lv in group for ps in sets], opts, cells, progress)
            # with the densest set: tried with the fastest (a shorter window), its estimate at one level of a
            # demo profile came out 17 % high (3.23 W against 2.75 / 2.70 W at the levels around it)
            first = sets[0]
            for level in group:
                idle[level] = measure_idle(client, owner[first], level, first, cells[(level, first)].stats(), opts)

    measure_levels([level for level, _ in levels])
    freq_of = dict(levels)
    remeasured: list[str] = []
    for _ in range(opts.remeasure_rounds):
        bad = monotonicity_violations(_table(cells, idle, sets, freq_of, meta, {}))
        again = sorted({lv for _, pair, _ in bad for lv in pair.split("→")}, key=lambda lv: -freq_of[lv])
        if not again:
            break
        for level in again:
            if progress is not None:
                progress(level, "re-measuring (not monotone)")
        measure_levels(again)
        remeasured += again
    table_meta = {
        "board": str(info.get("profile") or info.get("board") or "unknown"),
        "source": "measured through the device agent" + (" (emulated board)" if info.get("emulated") else ""),
        "meter": str((info.get("meter") or {}).get("uri", "unknown")),
        "rel_ci": f"{opts.rel_ci:g}",
        "max_reps": str(opts.max_reps),
        "max_rel_ci": f"{max(c.rel_ci() for c in cells.values()):.4g}",
        "ci_met": str(all(c.rel_ci() <= opts.rel_ci for c in cells.values())).lower(),
        "host_load_max": f"{max(c.load_max for c in cells.values()):.3f}",
        "remeasured": ",".join(remeasured) or "none",
    }
    if any("accuracy" not in meta.get(ps, {}) for ps in sets):
        table_meta["accuracy"] = "unknown for some pattern sets (0 written)"
    return _table(cells, idle, sets, freq_of, meta, table_meta)


def _table(
    cells: dict[tuple[str, str], Cell],
    idle: dict[str, tuple[float, bool]],
    sets: list[str],
    freq_of: dict[str, int],
    meta: dict[str, dict[str, float]],
    table_meta: dict[str, str],
) -> ProfileTable:
    """The profile table of the cells measured so far (levels in measured order)."""
    rows: list[ProfileRow] = []
    for level in idle:
        idle_w, idle_thr = idle[level]
        for ps in sets:
            c = cells[(level, ps)]
            stats = c.stats()
            md = meta.get(ps, {})
            rows.append(
                ProfileRow(
                    pattern_set=ps, level=level, freq_khz=freq_of[level], sparsity=md.get("sparsity", 0.0),
                    accuracy=md.get("accuracy", 0.0), latency_p50_ms=stats["latency_p50_ms"],
                    latency_p90_ms=stats["latency_p90_ms"], latency_p99_ms=stats["latency_p99_ms"],
                    energy_per_inference_j=stats["energy_per_inference_j"], mean_power_w=stats["mean_power_w"],
                    peak_power_w=stats["peak_power_w"], idle_power_w=idle_w, throttled=int(c.throttled or idle_thr),
                    repetitions=c.reps, temp_c_max=stats["temp_c_max"],
                )
            )  # fmt: skip
    return build_table(rows, table_meta)
