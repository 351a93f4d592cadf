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
    marks = [m for m in MARKS if m <= budget] + ([budget] if budget > MARKS[-1] else [])
    marks = marks or [budget]
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


def diagnosis_table(result: dict[str, Any]) -> str:
    """Why the ranking is what it is (the comparison's ``diagnosis``): the optimum, each algorithm's gap to it
    split by frequency level, when it first met every deadline, and the space's feasibility and variance."""
    diag = result["diagnosis"]
    opt = diag["optimum"]
    names = diag["level_names"]
    budget = int(result["budget"])
    lines = [
        f"Exact optimum of the space {opt['reward']:+.4f} (per-level shares "
        + " / ".join(f"{n} {v:.3f}" for n, v in zip(names, opt["level_values"], strict=True))
        + f"; latency {' / '.join(f'{x:.1f}' for x in opt['latency_ms'])} ms; found in {opt['wall_s']:.1f} s from "
        "per-level Pareto fronts).",
        "",
        f"| algorithm | best @{budget} | gap to optimum | gap at "
        + " | gap at ".join(names)
        + " | first feasible (median eval) | seeds with no accuracy at the fastest level |",
        "|---" * (5 + len(names)) + "|",
    ]
    for algo in _algos(result):
        g = result["summary"][algo].get("gap_to_optimum")
        if g is None:
            continue
        arr = curves(result, algo)
        col = arr[:, budget - 1]
        sd = float(np.std(col, ddof=1)) if len(col) > 1 else 0.0
        first = "never" if g["first_feasible_median"] is None else f"{g['first_feasible_median']:g}"
        lines.append(
            f"| {algo} | {float(np.mean(col)):+.3f} ± {sd:.3f} | {g['gap_mean']:.3f} | "
            + " | ".join(f"{x:.3f}" for x in g["gap_by_level"])
            + f" | {first} | {g['seeds_in_sparse_corner']}/{g['seeds']} |"
        )
    var = diag["variance"]
    lines += [
        "",
        f"Uniform random candidates meeting every deadline: {100 * diag['random_feasible_share']:.2f} % "
        "(each level alone: "
        + ", ".join(f"{n} {100 * v:.1f} %" for n, v in zip(names, diag["random_level_feasible_share"], strict=True))
        + f"; {var['samples']} samples). First-order share of the reward variance per level: "
        + ", ".join(f"{n} {v:.3f}" for n, v in zip(names, var["per_level"], strict=True))
        + f"; interactions {var['interactions']:.3f}. The structured baseline spends its first "
        f"{diag['structured_seed_evaluations']} evaluations on the level triples.",
    ]
    return "\n".join(lines) + "\n"


def write_diagnosis_figure(result: dict[str, Any], path: Path) -> Path:
    """Four panels: per-seed best-so-far curves against the exact optimum; the fastest level's landscape (its
    share of the reward along its Pareto front against latency, each run's best level marked), whole and
    zoomed on the last 20 % before its deadline; the mean gap to the optimum split by level, per algorithm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    diag = result["diagnosis"]
    opt = diag["optimum"]
    names = diag["level_names"]
    algos = [a for a in _algos(result) if "gap_to_optimum" in result["summary"][a]]
    fig, axes = plt.subplots(1, 4, figsize=(19.0, 4.4), dpi=110)
    ax = axes[0]
    colors: dict[str, Any] = {}
    for algo in algos:
        arr = curves(result, algo)
        x = np.arange(1, arr.shape[1] + 1)
        (line,) = ax.plot(x, arr[0], lw=0.9, label=algo)
        colors[algo] = line.get_color()
        for row in arr[1:]:
            ax.plot(x, row, lw=0.9, color=colors[algo])
    ax.axhline(opt["reward"], color="k", ls="--", lw=1, label=f"exact optimum {opt['reward']:+.3f}")
    ax.axvline(diag["structured_seed_evaluations"], color="grey", ls=":", lw=1)
    ax.set_ylim(max(-1.2, ax.get_ylim()[0]), opt["reward"] + 0.1)
    ax.set_xlabel("distinct evaluations (dotted: end of the structured triples)")
    ax.set_ylabel("best reward so far (one line per seed)")
    ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    lat = np.asarray(diag["fronts_latency_ms"][0])
    val = np.asarray(diag["fronts_value"][0])
    deadline = diag["deadlines_ms"][0]
    for ax, zoom in ((axes[1], False), (axes[2], True)):
        ax.plot(lat, val, color="k", lw=1, label=f"{names[0]}: Pareto front")
        ax.axvline(deadline, color="r", ls="--", lw=1, label=f"deadline {deadline:g} ms")
        for algo in algos:
            pts = [(r["best_latency_ms"][0], r["best_level_values"][0]) for r in result["runs"] if r["algo"] == algo]
            ax.scatter([p[0] for p in pts], [p[1] for p in pts], s=18, color=colors[algo], label=f"{algo} best")
        if zoom:
            near = val[(lat >= 0.8 * deadline) & (lat <= deadline)]
            ax.set_xlim(0.8 * deadline, 1.02 * deadline)
            if near.size:
                ax.set_ylim(float(near.min()) - 0.05, float(near.max()) + 0.05)
            ax.set_xlabel(f"latency at {names[0]} (ms), the last 20 % before the deadline")
        else:
            ax.set_xscale("log")
            ax.set_xlabel(f"latency at {names[0]} (ms, log)")
            ax.legend(fontsize=7, loc="upper center")
        ax.set_ylabel(f"{names[0]}'s share of the reward")
        ax.grid(alpha=0.3)
    ax = axes[3]
    bottom = np.zeros(len(algos))
    for k, n in enumerate(names):
        h = np.array([max(0.0, result["summary"][a]["gap_to_optimum"]["gap_by_level"][k]) for a in algos])
        ax.bar(algos, h, bottom=bottom, label=f"gap at {n}")
        bottom += h
    ax.set_ylabel("mean gap to the optimum at the budget, by level")
    ax.tick_params(axis="x", labelrotation=30, labelsize=8)
    ax.legend(fontsize=7)
    ax.grid(alpha=0.3, axis="y")
    deadlines = "/".join(f"{d:g}" for d in result["deadlines_ms"])
    fig.suptitle(
        f"why the ranking: layer-sparsity search, deadlines {deadlines} ms, budget {result['budget']}", fontsize=10
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
