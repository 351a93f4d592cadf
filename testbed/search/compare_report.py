"""The comparison's figure and table: best reward against distinct evaluations, mean ± sd over seeds.

Input is the object :func:`testbed.search.compare.compare_tables` returns (its ``runs`` carry each seed's
curve of best-so-far rewards). The PNG has one line per algorithm (mean) with a band of ± one standard
deviation; the Markdown table lists the mean ± sd at a few evaluation counts, the share of seeds whose best
candidate meets every deadline and the mean wall time per run. matplotlib (Agg) is imported only to draw.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

#: Columns of the table (evaluation counts), where the budget reaches them.
MARKS = (50, 120, 200, 300)


def curves(result: dict[str, Any], algo: str) -> np.ndarray:
    """Best-so-far reward per evaluation for every seed of ``algo`` ([seeds, budget]); a curve that stopped
    early (a collapsed policy) is held at its last value."""
    budget = int(result["budget"])
    rows = []
    for run in result["runs"]:
        if run["algo"] != algo:
            continue
        c = list(run["curve"])
        rows.append(c + [c[-1]] * (budget - len(c)) if c else [float("nan")] * budget)
    return np.asarray(rows, dtype=float)


def _algos(result: dict[str, Any]) -> list[str]:
    return list(result["summary"])


def markdown_table(result: dict[str, Any]) -> str:
    """The table of the README: one row per algorithm, best reward at :data:`MARKS` (mean ± sd)."""
    budget = int(result["budget"])
    marks = [m for m in MARKS if m <= budget] or [budget]
    head = "| algorithm | " + " | ".join(f"best @{m}" for m in marks) + " | seeds meeting every deadline | s per run |"
    lines = [head, "|---" * (len(marks) + 3) + "|"]
    for algo in _algos(result):
        arr = curves(result, algo)
        cells = []
        for m in marks:
            col = arr[:, m - 1]
            sd = float(np.std(col, ddof=1)) if len(col) > 1 else 0.0
            cells.append(f"{float(np.mean(col)):+.3f} ± {sd:.3f}")
        met = result["summary"][algo]["all_deadlines_met"]
        wall = result["summary"][algo]["wall_s_mean"]
        lines.append(f"| {algo} | " + " | ".join(cells) + f" | {sum(met)}/{len(met)} | {wall:.1f} |")
    return "\n".join(lines) + "\n"


def write_figure(result: dict[str, Any], path: Path, title: str | None = None) -> Path:
    """Draw best reward vs evaluations (mean ± sd band per algorithm) into ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.0, 4.2), dpi=120)
    for algo in _algos(result):
        arr = curves(result, algo)
        x = np.arange(1, arr.shape[1] + 1)
        mean = arr.mean(axis=0)
        sd = arr.std(axis=0, ddof=1) if arr.shape[0] > 1 else np.zeros_like(mean)
        (line,) = ax.plot(x, mean, label=f"{algo} ({arr.shape[0]} seeds)")
        ax.fill_between(x, mean - sd, mean + sd, color=line.get_color(), alpha=0.15, linewidth=0)
    ax.set_xlabel("distinct evaluations")
    ax.set_ylabel("best reward so far (mean ± sd over seeds)")
    mem = result.get("memory")
    extra = f", memory weight {mem['weight']:g}" if mem and mem.get("weight") else ""
    deadlines = "/".join(f"{d:g}" for d in result["deadlines_ms"])
    ax.set_title(title or f"layer-sparsity search, deadlines {deadlines} ms{extra}", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
