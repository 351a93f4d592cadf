"""The paper figures. Each function takes loaded data and returns a matplotlib :class:`Figure`.

Units are on every axis; strategies keep their colours (:mod:`analysis.style`). Functions raise
:class:`~devices.errors.BadInputError` when the data they need is missing from the run.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from analysis.runs import RunData
from analysis.style import figure, ordered_strategies, strategy_color, strategy_linestyle
from devices.errors import BadInputError
from testbed.runstore.reader import StrategyResult
from traces.profile import ProfileTable


def soc_voltage(run: RunData) -> Figure:
    """State of charge (and terminal voltage, when the battery model has one) against time, per strategy."""
    bs = run.table("battery_state")
    if bs.empty:
        raise BadInputError(f"{run.path}: no battery_state rows to plot")
    has_v = bs["voltage_v"].notna().any()
    fig, axes = figure("double" if has_v else "single", 2.3, 1, 2 if has_v else 1)
    ax_soc = axes[0] if has_v else axes
    div, unit = time_unit(float(bs["t_s"].max()))
    for s in ordered_strategies(bs["strategy"].unique()):
        d = bs[bs["strategy"] == s]
        t_h = d["t_s"].to_numpy() / div
        style = {"color": strategy_color(s), "linestyle": strategy_linestyle(s), "label": s}
        ax_soc.plot(t_h, d["soc"].to_numpy() * 100.0, **style)
        if has_v:
            axes[1].plot(t_h, d["voltage_v"].to_numpy(), **style)
    ax_soc.set_xlabel(f"time ({unit})")
    ax_soc.set_ylabel("state of charge (%)")
    ax_soc.set_ylim(0, 100)
    ax_soc.legend(loc="lower left")
    if has_v:
        axes[1].set_xlabel(f"time ({unit})")
        axes[1].set_ylabel("terminal voltage (V)")
    fig.suptitle(f"{run.name}: discharge ({run.battery_model} battery, {run.mode})", fontsize=8)
    return fig


def time_unit(max_s: float) -> tuple[float, str]:
    """(divisor, unit) so that a duration of up to ``max_s`` seconds reads naturally: min below 2 h, else h."""
    return (60.0, "min") if max_s < 7200.0 else (3600.0, "h")


def _life_h(r: StrategyResult) -> float:
    return r.life_h


def _inferences(r: StrategyResult) -> float:
    return float(r.inferences)


def battery_life(runs: Sequence[RunData], baseline: str = "dense-max") -> Figure:
    """Battery life per strategy in hours and in inferences, annotated with the ratio to ``baseline``."""
    fig, (ax_h, ax_n) = figure("double", 2.4, 1, 2)
    strategies = ordered_strategies(s for r in runs for s in r.results)
    div, unit = time_unit(max(r.life_s for run in runs for r in run.results.values()))
    width = 0.8 / max(1, len(runs))
    hatches = ["", "//", "..", "xx"]
    x = np.arange(len(strategies))
    for i, run in enumerate(runs):
        base = run.results.get(baseline)
        for ax, key, scale in ((ax_h, _life_h, 3600.0 / div), (ax_n, _inferences, 1e-3)):
            got = {s: key(r) for s, r in run.results.items()}
            vals = [got.get(s, np.nan) * scale for s in strategies]
            bars = ax.bar(
                x + (i - (len(runs) - 1) / 2) * width,
                vals,
                width,
                color=[strategy_color(s) for s in strategies],
                hatch=hatches[i % len(hatches)],
                edgecolor="white",
                linewidth=0.5,
                label=f"{run.battery_model} ({run.name})",
            )
            base_value = key(base) if base is not None else 0.0
            if base_value:
                for bar, s in zip(bars, strategies, strict=True):
                    if s in got:
                        ax.annotate(
                            f"{got[s] / base_value:.2f}×",
                            (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                            ha="center",
                            va="bottom",
                            fontsize=6,
                        )
    for ax, label in ((ax_h, f"battery life ({unit})"), (ax_n, "inferences completed (×1000)")):
        ax.set_xticks(x, strategies, rotation=20, ha="right")
        ax.set_ylabel(label)
    if len(runs) > 1:
        from matplotlib.patches import Patch

        # the legend tells runs apart by hatch; colours stand for strategies
        proxies = [
            Patch(
                facecolor="#999999",
                edgecolor="white",
                hatch=hatches[i % len(hatches)],
                label=f"{r.battery_model} ({r.name})",
            )
            for i, r in enumerate(runs)
        ]
        fig.legend(handles=proxies, loc="outside upper center", ncols=len(runs))
    else:
        fig.suptitle(f"battery life ({runs[0].battery_model} battery); labels: ratio to {baseline}", fontsize=8)
    return fig


def latency_vs_frequency(profile: ProfileTable, deadline_ms: float | None = None) -> Figure:
    """p50 latency (bars: p90 and p99) against frequency, one line per pattern set, deadline dashed."""
    fig, ax = figure("single", 2.4)
    for i, ps in enumerate(profile.pattern_sets):
        rows = sorted((profile.get(ps, lv) for lv in profile.levels), key=lambda r: r.freq_khz)
        f_mhz = np.array([r.freq_khz / 1000.0 for r in rows])
        p50 = np.array([r.latency_p50_ms for r in rows])
        p99 = np.array([r.latency_p99_ms for r in rows])
        sp = rows[0].sparsity
        ax.errorbar(
            f_mhz, p50, yerr=[np.zeros_like(p50), p99 - p50], marker="os^Dv<>"[i % 7], capsize=2,
            label=f"{ps} ({sp:.0%} sparse)",
        )  # fmt: skip
    if deadline_ms is not None:
        ax.axhline(deadline_ms, color="black", linestyle="--", linewidth=0.8, label=f"deadline {deadline_ms:g} ms")
    ax.set_xlabel("CPU frequency (MHz)")
    ax.set_ylabel("latency p50, bar to p99 (ms)")
    ax.legend(fontsize=6, ncols=2)
    return fig


def power_trace(run: RunData, strategy: str = "rt3", zoom_s: float | None = None) -> Figure:
    """Power over the whole discharge with level changes and switches marked, plus a zoom on the first
    switch showing individual inference windows (``zoom_s`` wide; default: about 16 request periods)."""
    ps = run.table("power_samples", strategy)
    if ps.empty:
        raise BadInputError(f"{run.path}: strategy {strategy!r} has no power samples")
    levels = run.table("level_changes", strategy)
    switches = run.table("switches", strategy)
    fig, (ax, az) = figure("double", 2.6, 1, 2, gridspec_kw={"width_ratios": [2, 1]})
    end_s = float(ps["t_s"].iloc[-1] + ps["duration_s"].iloc[-1]) if "duration_s" in ps else float(ps["t_s"].max())
    div, unit = time_unit(end_s)
    ax.step(ps["t_s"] / div, ps["power_w"], where="post", color=strategy_color(strategy), label="mean power")
    if len(levels):  # the CPU frequency on a second axis, held from each change
        af = ax.twinx()
        t_f = [*(levels["t_s"].to_numpy(dtype=float) / div), end_s / div]
        f_mhz = [*(levels["freq_khz"].to_numpy(dtype=float) / 1000.0)]
        af.step(t_f, [*f_mhz, f_mhz[-1]], where="post", color="grey", linestyle="--", linewidth=0.8)
        af.set_ylabel("CPU frequency (MHz, dashed)")
        af.set_ylim(0, max(f_mhz) * 1.25)
        af.grid(False)
    for t in levels["t_s"].iloc[1:] if len(levels) > 1 else []:
        ax.axvline(t / div, color="grey", linestyle=":", linewidth=0.8)
    for t in switches["t_s"]:
        ax.axvline(t / div, color="black", linestyle="-", linewidth=0.6, alpha=0.6)
    inf_all = run.table("inferences", strategy)
    bounds = [0.0, *switches["t_s"].to_numpy(dtype=float), end_s]
    top_w = float(ps["power_w"].max())
    for a, b in itertools.pairwise(bounds):  # label each segment with the pattern set in force
        during = inf_all[(inf_all["t_s"] >= a) & (inf_all["t_s"] < b)]
        if len(during):
            ax.annotate(str(during["pattern_set"].iloc[0]), ((a + b) / 2 / div, top_w * 1.02), ha="center",
                        fontsize=6)  # fmt: skip
    ax.set_ylim(0, top_w * 1.12)
    ax.set_xlabel(f"time ({unit})")
    ax.set_ylabel("power (W)")
    ax.set_title(f"{strategy}: power and frequency; dotted = frequency change, solid = pattern-set switch", fontsize=7)
    centre = float(switches["t_s"].iloc[0]) if len(switches) else float(ps["t_s"].iloc[len(ps) // 2])
    inf = run.table("inferences", strategy)
    first_switch_s = float(switches["duration_ms"].iloc[0]) / 1000.0 if len(switches) else 0.0
    if zoom_s is None:  # the switch plus about eight request periods on either side
        gaps = np.diff(inf["t_s"].to_numpy(dtype=float)[:1000])
        zoom_s = float(16 * np.median(gaps)) if len(gaps) else 1.0
    lo, hi = centre - zoom_s / 2, centre + first_switch_s + zoom_s / 2
    win = inf[(inf["t_s"] >= lo) & (inf["t_s"] <= hi)]
    t_rel = win["t_s"].to_numpy(dtype=float) - centre
    dur_s = win["latency_ms"].to_numpy(dtype=float) / 1000.0
    p_w = np.divide(win["energy_j"].to_numpy(dtype=float), dur_s, out=np.zeros_like(dur_s), where=dur_s > 0)
    color = strategy_color(strategy)
    for t0, d, p in zip(t_rel, dur_s, p_w, strict=True):
        az.fill_between([t0, t0 + d], 0, p, alpha=0.35, color=color, linewidth=0)
        az.hlines(p, t0, t0 + d, color=color, linewidth=1.0)
    sw_t = switches["t_s"].to_numpy(dtype=float) - centre
    sw_d = switches["duration_ms"].to_numpy(dtype=float) / 1000.0
    for t0, d, a, b in zip(sw_t, sw_d, switches["from_set"], switches["to_set"], strict=True):
        if lo - centre <= t0 <= hi - centre:
            az.axvspan(t0, t0 + d, color="black", alpha=0.2)
            az.annotate(f"switch {a}→{b}", (t0, 0), fontsize=6, rotation=90, va="bottom", ha="right")
    az.set_xlabel(f"time around t = {centre:.0f} s (s)")
    az.set_ylabel("mean power while serving a request (W)")  # queued requests stretch the response
    az.set_title("each request from release to response", fontsize=7)
    return fig


def accuracy_vs_sparsity(profile: ProfileTable) -> Figure:
    """Accuracy of each pattern set against its sparsity."""
    fig, ax = figure("single", 2.2)
    sp = [profile.get(p, profile.levels[0]).sparsity * 100 for p in profile.pattern_sets]
    acc = [profile.accuracy(p) * 100 for p in profile.pattern_sets]
    ax.plot(sp, acc, marker="o", color="#0072B2")
    for name, x, y in zip(profile.pattern_sets, sp, acc, strict=True):
        ax.annotate(name, (x, y), textcoords="offset points", xytext=(3, 3), fontsize=6)
    ax.set_xlabel("sparsity of the pattern set (%)")
    ax.set_ylabel("accuracy (%)")
    return fig


def search_reward(log: pd.DataFrame) -> Figure:
    """Best reward so far against evaluations; one line per algorithm (mean over seeds, band = min..max).

    ``log`` has columns ``algo``, ``seed``, ``evaluation`` (1-based) and ``reward``.
    """
    need = {"algo", "seed", "evaluation", "reward"}
    if log.empty or not need <= set(log.columns):
        raise BadInputError(f"search log needs columns {sorted(need)}")
    fig, ax = figure("single", 2.3)
    for i, (algo, d) in enumerate(log.groupby("algo", sort=True)):
        curves = []
        for _, s in d.groupby("seed"):
            s = s.sort_values("evaluation")
            curves.append(s.set_index("evaluation")["reward"].cummax())
        table = pd.concat(curves, axis=1).sort_index().ffill()
        x = table.index.to_numpy()
        color = ["#D55E00", "#0072B2", "#009E73", "#CC79A7"][i % 4]
        n = table.shape[1]
        ax.plot(x, table.mean(axis=1), color=color, label=f"{algo} ({n} seed{'s' if n > 1 else ''})")
        ax.fill_between(x, table.min(axis=1), table.max(axis=1), color=color, alpha=0.2, linewidth=0)
    ax.set_xlabel("evaluations")
    ax.set_ylabel("best reward so far")
    ax.legend()
    return fig


def profile_heatmap(profile: ProfileTable) -> Figure:
    """Energy per inference (mJ) for every pattern set × frequency level."""
    grid = np.array([[profile.get(p, lv).energy_per_inference_j * 1e3 for lv in profile.levels]
                     for p in profile.pattern_sets])  # fmt: skip
    fig, ax = figure("single", 0.45 * len(profile.pattern_sets) + 1.0)
    im = ax.imshow(grid, cmap="viridis", aspect="auto")
    ax.grid(False)
    ax.set_xticks(range(len(profile.levels)), [f"{profile.freq_khz(lv) / 1000:.0f}" for lv in profile.levels])
    ax.set_yticks(range(len(profile.pattern_sets)), profile.pattern_sets)
    ax.set_xlabel("CPU frequency (MHz)")
    ax.set_ylabel("pattern set")
    mid = (grid.max() + grid.min()) / 2
    for (i, j), v in np.ndenumerate(grid):
        ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6, color="white" if v < mid else "black")
    fig.colorbar(im, ax=ax, label="energy per inference (mJ)")
    return fig


def life_vs_accuracy(runs: Sequence[RunData], baseline: str = "dense-max") -> Figure:
    """Battery life (relative to ``baseline`` in the same run) against time-weighted accuracy, per strategy;
    one marker shape per run (battery model)."""
    fig, ax = figure("single", 2.5)
    markers = "os^Dv"
    for i, run in enumerate(runs):
        base = run.results.get(baseline)
        for s in ordered_strategies(run.results):
            r = run.results[s]
            if base is None or not base.life_s > 0 or math.isnan(r.accuracy_time_weighted):
                continue
            x, y = 100.0 * r.accuracy_time_weighted, r.life_s / base.life_s
            ax.scatter([x], [y], color=strategy_color(s), marker=markers[i % len(markers)], s=22, zorder=3,
                       label=f"{s} ({run.battery_model})" if len(runs) > 1 else s)  # fmt: skip
            ax.annotate(s, (x, y), textcoords="offset points", xytext=(4, 2), fontsize=6)
    ax.axhline(1.0, color="black", linewidth=0.6)
    ax.set_xlabel("accuracy, time-weighted (%)")
    ax.set_ylabel(f"battery life relative to {baseline} (×)")
    ax.legend(fontsize=5, ncols=2)
    return fig
