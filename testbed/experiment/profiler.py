"""Profiling through a device agent (ProTran-style): every pattern set × frequency level, repeated until
the confidence interval is tight.

For each level and pattern set: a short pilot estimates the latency; each repetition is then one meter
window of enough back-to-back inferences to last ``window_s`` (so the meter sees several samples),
after ``warmup`` inferences. Repetitions continue until the 95 % confidence half-widths (Student t) of
the mean energy per inference and of the mean latency are both within ``rel_ci`` of their means, or
``max_reps`` is reached (at least ``min_reps``). Latency percentiles come from all repetitions'
latencies pooled. Idle power at a level comes from one more window at a low duty cycle
(``idle_duty``): ``P_idle = (E_window − n·e_active) / (T_window − busy_s)``. A row is flagged
``throttled`` when any of its windows saw throttling or a frequency change (the agent's
``throttled_during`` / ``frequency_changed_during``).

Sparsity and accuracy per pattern set come from the artifact's manifest (``.rt3`` or a directory with
``manifest.json``); where the manifest lacks them they are 0 and the table's metadata says so.

Failure modes: :class:`~devices.errors.BadInputError` for a missing artifact or unknown level/pattern
set; agent errors propagate (:class:`~testbed.agent.client.AgentUnavailable` etc.).
"""

from __future__ import annotations

import json
import math
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


@dataclass(frozen=True)
class ProfileOptions:
    window_s: float = 1.0
    warmup: int = 3
    min_reps: int = 3
    max_reps: int = 10
    rel_ci: float = 0.05
    idle_duty: float = 0.1
    levels: tuple[str, ...] | None = None
    pattern_sets: tuple[str, ...] | None = None


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


def measure_cell(
    client: AgentAPI, model_id: str, level: str, pattern_set: str, opts: ProfileOptions
) -> tuple[dict[str, float], int, bool]:
    """Measure one (level, pattern set) to the confidence target; returns stats, repetitions, throttled."""
    pilot = client.measure(model_id, inferences=5, warmup=opts.warmup, level=level, pattern_set=pattern_set)
    lat_ms = max(pilot["latency"]["mean_ms"], 1e-3)
    n = max(10, min(100_000, math.ceil(opts.window_s * 1000.0 / lat_ms)))
    energies: list[float] = []
    means_ms: list[float] = []
    powers: list[float] = []
    peaks: list[float] = []
    latencies: list[float] = []
    throttled = False
    temp_c = 0.0
    reps = 0
    while reps < opts.max_reps:
        m = client.measure(model_id, inferences=n, warmup=opts.warmup, level=level, pattern_set=pattern_set)
        reps += 1
        throttled |= _throttled(m)
        temp_c = max(temp_c, _temp_c(m))
        e = require_energy(m.get("energy"), "profile energy")
        per_inference_j = m.get("energy_per_inference_j")
        if per_inference_j is None:  # not reached: a window with energy has a per-inference share
            raise BadInputError("the agent has no power meter: cannot profile energy")
        energies.append(float(per_inference_j))
        means_ms.append(float(m["latency"]["mean_ms"]))
        powers.append(float(e["mean_power_w"]))
        peaks.append(float(e["peak_power_w"]))
        latencies.extend(float(x) for x in m["latencies_ms"])
        if reps >= opts.min_reps and max(rel_half_width(energies), rel_half_width(means_ms)) <= opts.rel_ci:
            break
    ordered = sorted(latencies)
    stats = {
        "latency_p50_ms": percentile(ordered, 50),
        "latency_p90_ms": percentile(ordered, 90),
        "latency_p99_ms": percentile(ordered, 99),
        "latency_mean_ms": statistics.fmean(latencies),
        "energy_per_inference_j": statistics.fmean(energies),
        "mean_power_w": statistics.fmean(powers),
        "peak_power_w": max(peaks),
        "energy_rel_ci": rel_half_width(energies),
        "temp_c_max": temp_c,
    }
    return stats, reps, throttled


def measure_idle(
    client: AgentAPI, model_id: str, level: str, pattern_set: str, active: dict[str, float], opts: ProfileOptions
) -> tuple[float, bool]:
    """Idle power at ``level`` from a low-duty window (see the module text); returns (W, throttled)."""
    lat_ms = active["latency_mean_ms"]
    period_ms = lat_ms / opts.idle_duty
    n = max(5, math.ceil(opts.window_s * 1000.0 / period_ms))
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


def profile_through_agent(
    client: AgentAPI,
    model_id: str,
    pattern_sets: list[str],
    meta: dict[str, dict[str, float]],
    opts: ProfileOptions,
    progress: Callable[[str, str], None] | None = None,
) -> ProfileTable:
    """Profile every (pattern set, level) of a loaded model; returns the table (rows in measured order)."""
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
    sets = list(opts.pattern_sets) if opts.pattern_sets is not None else pattern_sets
    unknown = sorted(set(sets) - set(pattern_sets))
    if unknown:
        raise BadInputError(f"unknown pattern set(s) {', '.join(unknown)}; the artifact has {', '.join(pattern_sets)}")
    rows: list[ProfileRow] = []
    for level, freq in levels:
        cells: dict[str, tuple[dict[str, float], int, bool]] = {}
        for ps in sets:
            if progress is not None:
                progress(level, ps)
            cells[ps] = measure_cell(client, model_id, level, ps, opts)
        idle_w, idle_thr = measure_idle(client, model_id, level, sets[0], cells[sets[0]][0], opts)
        for ps in sets:
            stats, reps, thr = cells[ps]
            md = meta.get(ps, {})
            rows.append(
                ProfileRow(
                    pattern_set=ps, level=level, freq_khz=freq, sparsity=md.get("sparsity", 0.0),
                    accuracy=md.get("accuracy", 0.0), latency_p50_ms=stats["latency_p50_ms"],
                    latency_p90_ms=stats["latency_p90_ms"], latency_p99_ms=stats["latency_p99_ms"],
                    energy_per_inference_j=stats["energy_per_inference_j"], mean_power_w=stats["mean_power_w"],
                    peak_power_w=stats["peak_power_w"], idle_power_w=idle_w, throttled=int(thr or idle_thr),
                    repetitions=reps, temp_c_max=stats["temp_c_max"],
                )
            )  # fmt: skip
    table_meta = {
        "board": str(info.get("profile") or info.get("board") or "unknown"),
        "source": "measured through the device agent" + (" (emulated board)" if info.get("emulated") else ""),
        "meter": str((info.get("meter") or {}).get("uri", "unknown")),
        "rel_ci": f"{opts.rel_ci:g}",
        "max_reps": str(opts.max_reps),
    }
    if any("accuracy" not in meta.get(ps, {}) for ps in sets):
        table_meta["accuracy"] = "unknown for some pattern sets (0 written)"
    return build_table(rows, table_meta)
