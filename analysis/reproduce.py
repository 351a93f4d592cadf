"""Figures and tables of ``testbed reproduce``: the waterfall from RT3's accounting to a board, and the
sensitivity of the rt3/dense-max ratio to the request period and idle power.

The waterfall is drawn from the step runs themselves (read through :class:`RunReader`: each ratio is
recomputed from the run's stored results, and ``report.json`` names every run with its content digest);
the sensitivity map from the grid CSV ``testbed reproduce sensitivity`` writes (hashed as an input file).

Failure modes: :class:`BadInputError` for a step run without both strategies or a grid CSV without the
columns ``period_ms``, ``idle_scale`` and ``ratio``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from analysis import tables
from analysis.provenance import InputFile, RunRef, Source
from analysis.runs import load_run
from analysis.style import figure, save, strategy_color
from devices.errors import BadInputError


@dataclass(frozen=True)
class WaterfallStep:
    """One step as read back from its run: the change, rt3/dense-max ratio, and the run it came from."""

    change: str
    ratio: float
    life_ratio: float
    run: RunRef


def read_steps(changes: Sequence[str], run_dirs: Sequence[Path]) -> list[WaterfallStep]:
    """Each step's ratio (rt3 inferences / dense-max inferences) recomputed from its run store."""
    out = []
    for change, d in zip(changes, run_dirs, strict=True):
        run = load_run(d)
        try:
            a, b = run.results.get("rt3"), run.results.get("dense-max")
            if a is None or b is None or not b.inferences:
                raise BadInputError(f"{d}: a reproduce step needs finished rt3 and dense-max results")
            out.append(WaterfallStep(change, a.inferences / b.inferences, a.life_s / b.life_s, RunRef.of(run.reader)))
        finally:
            run.close()
    return out


def waterfall(steps: Sequence[WaterfallStep], paper_ratio: float | None = None) -> Figure:
    """One bar per step (ratio rt3 / dense-max), from RT3's accounting at the top to the board at the bottom."""
    fig, ax = figure("double", 0.32 * len(steps) + 1.0)
    y = np.arange(len(steps))[::-1]
    ratios = [s.ratio for s in steps]
    colors = [strategy_color("rt3") if k else "#999999" for k in range(len(steps))]
    ax.barh(y, ratios, color=colors, height=0.6)
    for yy, r in zip(y, ratios, strict=True):
        ax.annotate(f"{r:.2f}×", (r, yy), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
    ax.set_yticks(y, [f"{k}. {s.change}" for k, s in enumerate(steps)], fontsize=6)
    ax.axvline(1.0, color="black", linewidth=0.8)
    if paper_ratio is not None:
        ax.axvline(
            paper_ratio, color="grey", linestyle="--", linewidth=0.8, label=f"paper accounting {paper_ratio:.2f}×"
        )
        ax.legend(loc="lower right", fontsize=6)
    ax.set_xlabel("rt3 / dense-max: inferences completed on one battery (×)")
    ax.set_xlim(0, max(ratios) * 1.15)
    ax.set_title("From RT3's accounting to a board, one assumption at a time (each step adds to the ones above)",
                 fontsize=7)  # fmt: skip
    return fig


def sensitivity(grid: pd.DataFrame, baseline_period_ms: float | None = None) -> Figure:
    """The rt3/dense-max life ratio against the request period, one line per idle-power scale."""
    need = {"period_ms", "idle_scale", "ratio"}
    if not need <= set(grid.columns):
        raise BadInputError(f"sensitivity grid needs columns {sorted(need)}")
    fig, ax = figure("single", 2.4)
    scales = sorted(grid["idle_scale"].unique())
    for i, sc in enumerate(scales):
        d = grid[grid["idle_scale"] == sc].sort_values("period_ms")
        shade = 0.15 + 0.75 * i / max(1, len(scales) - 1)
        ax.plot(d["period_ms"], d["ratio"], marker="o", markersize=3, color=(shade * 0.0, shade * 0.45, shade * 0.7),
                label=f"idle power × {sc:g}")  # fmt: skip
    if baseline_period_ms is not None:
        ax.axvline(baseline_period_ms, color="grey", linestyle=":", linewidth=0.8, label="the experiment's period")
    ax.axhline(1.0, color="black", linewidth=0.6)
    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(ScalarFormatter())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("request period (ms, log scale)")
    ax.set_ylabel("battery life, rt3 / dense-max (×)")
    ax.legend(fontsize=6)
    return fig


def write_waterfall_report(
    result: dict[str, Any], out: Path, formats: Sequence[str] = ("pdf", "png")
) -> dict[str, Any]:
    """Figure ``figures/waterfall``, table ``tables/waterfall`` and ``report.json`` for a reproduce result
    (``result["steps"]`` with ``change`` and ``run``); returns the index written."""
    steps = read_steps([s["change"] for s in result["steps"]], [Path(s["run"]) for s in result["steps"]])
    source = Source(runs=tuple(s.run for s in steps))
    fig_files = save(waterfall(steps, result.get("paper_ratio")), out / "figures", "waterfall", formats)
    df = pd.DataFrame(
        [{"step": k, "change": s.change, "ratio": s.ratio, "life_ratio": s.life_ratio, "run_id": s.run.run_id}
         for k, s in enumerate(steps)]
    )  # fmt: skip
    caption = (
        f"rt3 against dense-max, from RT3's accounting (paper ratio {result.get('paper_ratio', float('nan')):.2f}x "
        "against the unpruned model) toward a board, one assumption per step."
    )
    tab_files = tables.write_table(df, out / "tables", "waterfall", caption)
    index = {
        "index_version": 1,
        "created_wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": {"waterfall": {"files": [str(p.relative_to(out)) for p in fig_files], **source.to_dict()}},
        "tables": {"waterfall": {"files": [str(p.relative_to(out)) for p in tab_files], **source.to_dict()}},
        "paper_ratio": result.get("paper_ratio"),
        "baseline": result.get("baseline"),
    }
    (out / "report.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index


def write_sensitivity_report(
    grid_csv: Path, out: Path, baseline_period_ms: float | None = None, formats: Sequence[str] = ("pdf", "png")
) -> dict[str, Any]:
    """Figure ``figures/sensitivity`` and table ``tables/sensitivity`` from a grid CSV, with ``report.json``."""
    grid = pd.read_csv(grid_csv)
    source = Source(inputs=(InputFile.of(grid_csv),))
    fig_files = save(sensitivity(grid, baseline_period_ms), out / "figures", "sensitivity", formats)
    caption = "Battery life of rt3 over dense-max against the request period and a scale on idle power."
    tab_files = tables.write_table(grid, out / "tables", "sensitivity", caption)
    index = {
        "index_version": 1,
        "created_wall": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "figures": {"sensitivity": {"files": [str(p.relative_to(out)) for p in fig_files], **source.to_dict()}},
        "tables": {"sensitivity": {"files": [str(p.relative_to(out)) for p in tab_files], **source.to_dict()}},
    }
    (out / "report.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return index
