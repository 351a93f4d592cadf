"""Sweeps in reports: ``testbed report DIR`` on a ``testbed sweep`` directory draws each varied key on the x-axis.

A sweep directory holds ``sweep.json`` (written by the sweep; read here as a format, version 1: ``keys`` — the
varied dotted keys in order, ``seed`` last when seeds were swept — and ``cells`` — per cell its ``dir`` and
its ``values`` per key) and one run store per cell. :func:`expand` turns report arguments that are sweep
directories into their finished cells' run directories; :func:`sweep_figure` plots, for one varied key, every
strategy's battery life (h) against the key's values: the mean over the cells that share a value (the other
keys and the seeds), the band from their minimum to their maximum. Numeric values get a numeric axis, others
are placed in the order the sweep lists them.

Failure modes: :class:`~devices.errors.BadInputError` for an unreadable ``sweep.json`` or one of another
version, or a sweep without a finished cell.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.figure import Figure

from analysis.style import figure, ordered_strategies, strategy_color, strategy_linestyle
from devices.errors import BadInputError
from testbed.runstore.reader import RunReader, StrategyResult

SWEEP_FILE = "sweep.json"
SWEEP_VERSION = 1


@dataclass(frozen=True)
class SweepCell:
    """One finished cell: its run directory, its values per key, its battery life (h) per strategy."""

    run_dir: Path
    values: dict[str, Any]
    life_h: dict[str, float]


@dataclass(frozen=True)
class Sweep:
    """A sweep directory read for a report: the varied keys and the finished cells."""

    path: Path
    keys: list[str]
    cells: list[SweepCell]


def is_sweep(path: str | Path) -> bool:
    """Whether ``path`` is a sweep directory (it holds ``sweep.json``)."""
    return (Path(path) / SWEEP_FILE).is_file()


def load_sweep(path: str | Path) -> Sweep:
    """Read ``sweep.json`` and every finished cell's results (through the run store reader)."""
    d = Path(path)
    f = d / SWEEP_FILE
    try:
        index = json.loads(f.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise BadInputError(f"{f}: not a sweep index: {exc}") from None
    if index.get("sweep_version") != SWEEP_VERSION:
        raise BadInputError(f"{f}: sweep_version {index.get('sweep_version')!r}, this report reads {SWEEP_VERSION}")
    cells: list[SweepCell] = []
    for c in index.get("cells", []):
        run_dir = d / str(c["dir"])
        if not (run_dir / "run.sqlite").is_file():
            continue
        with RunReader.open(run_dir) as reader:
            if not reader.manifest.get("finished_wall"):
                continue
            lives = {s: r.life_h for s, r in reader.results().items() if isinstance(r, StrategyResult)}
        cells.append(SweepCell(run_dir, dict(c["values"]), lives))
    if not cells:
        raise BadInputError(f"{d}: the sweep has no finished cell yet")
    return Sweep(d, [str(k) for k in index.get("keys", [])], cells)


def expand(paths: Sequence[str | Path]) -> tuple[list[Path], list[Sweep]]:
    """The report's run directories with every sweep directory replaced by its finished cells, and the sweeps."""
    runs: list[Path] = []
    sweeps: list[Sweep] = []
    for p in paths:
        if is_sweep(p):
            sw = load_sweep(p)
            sweeps.append(sw)
            runs.extend(c.run_dir for c in sw.cells)
        else:
            runs.append(Path(p))
    return runs, sweeps


def _numeric(values: list[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def sweep_figure(sweep: Sweep, key: str) -> Figure:
    """Battery life (h) per strategy against the values of ``key`` (mean over the other keys, min–max band)."""
    if key not in sweep.keys:
        raise BadInputError(f"{sweep.path}: {key} is not a varied key (varied: {', '.join(sweep.keys)})")
    order: list[Any] = []
    for c in sweep.cells:
        if c.values[key] not in order:
            order.append(c.values[key])
    numeric = _numeric(order)
    xs_sorted = sorted(order) if numeric else order
    pos = {v: (float(v) if numeric else float(i)) for i, v in enumerate(xs_sorted)}
    strategies = ordered_strategies(s for c in sweep.cells for s in c.life_h)
    fig, ax = figure("single", 2.4)
    for s in strategies:
        xs, mean, lo, hi = [], [], [], []
        for v in xs_sorted:
            lives = [c.life_h[s] for c in sweep.cells if c.values[key] == v and s in c.life_h]
            if not lives:
                continue
            xs.append(pos[v])
            mean.append(float(np.mean(lives)))
            lo.append(min(lives))
            hi.append(max(lives))
        ax.plot(xs, mean, marker="o", color=strategy_color(s), linestyle=strategy_linestyle(s), label=s)
        if any(h > low for h, low in zip(hi, lo, strict=True)):
            ax.fill_between(xs, lo, hi, color=strategy_color(s), alpha=0.15, linewidth=0)
    if not numeric:
        ax.set_xticks([pos[v] for v in xs_sorted], [str(v) for v in xs_sorted])
    ax.set_xlabel(key)
    ax.set_ylabel("battery life (h)")
    ax.legend(loc="best")
    others = [k for k in sweep.keys if k != key]
    note = f"mean over {', '.join(others)} (band: min–max)" if others else "one cell per value"
    fig.suptitle(f"sweep {sweep.path.name}: {len(sweep.cells)} cells; {note}", fontsize=7)
    return fig
