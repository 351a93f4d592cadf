"""The one paper style: sizes that fit one and two columns, a colour-blind-safe palette, vector output.

Widths follow the IEEE/ACM two-column layouts: a single column is 3.5 in, a double column 7.16 in.
Colours are the Okabe–Ito palette; every strategy keeps its colour and marker in every figure.
Fonts are embedded as TrueType (``pdf.fonttype = 42``) so camera-ready checks pass.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import matplotlib
from cycler import cycler

matplotlib.use("Agg")  # files only; never needs a display

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from devices.errors import BadInputError

SINGLE_COLUMN_IN = 3.5
DOUBLE_COLUMN_IN = 7.16

#: Okabe & Ito (2008), "Color Universal Design".
OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]

STRATEGY_ORDER = ["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]
_STRATEGY_COLOR = {
    "dense-max": "#000000",
    "dvfs-dense": "#0072B2",
    "static-sparse": "#E69F00",
    "rt3": "#D55E00",
    "oracle": "#009E73",
}
FORMATS = ("pdf", "png", "svg")

#: The style as matplotlib rcParams (typed Any: matplotlib types its keys as a closed Literal set).
RC: Any = {
    "font.size": 8,
    "axes.titlesize": 8,
    "axes.labelsize": 8,
    "legend.fontsize": 7,
    "xtick.labelsize": 7,
    "ytick.labelsize": 7,
    "axes.prop_cycle": cycler(color=OKABE_ITO),
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "grid.linewidth": 0.5,
    "lines.linewidth": 1.2,
    "lines.markersize": 4,
    "legend.frameon": False,
    "pdf.fonttype": 42,
    "ps.fonttype": 42,
    "svg.fonttype": "none",
    "savefig.dpi": 300,
    "savefig.bbox": "tight",
    "savefig.pad_inches": 0.02,
    "figure.dpi": 100,
}


def strategy_color(name: str) -> str:
    """The strategy's colour; a registered strategy without one gets a stable Okabe–Ito colour from its name."""
    return _STRATEGY_COLOR.get(name, OKABE_ITO[zlib.crc32(name.encode()) % len(OKABE_ITO)])


def strategy_linestyle(name: str) -> str:
    """Dashed for the oracle so that it stays visible where it coincides with rt3."""
    return "--" if name == "oracle" else "-"


def ordered_strategies(names: Iterable[str]) -> list[str]:
    """Strategies in the canonical order, unknown ones after, alphabetically."""
    names = list(dict.fromkeys(names))
    known = [s for s in STRATEGY_ORDER if s in names]
    return known + sorted(s for s in names if s not in STRATEGY_ORDER)


def figure(
    width: str = "single", height_in: float = 2.2, nrows: int = 1, ncols: int = 1, **kw: Any
) -> tuple[Figure, Any]:
    """A figure of one (3.5 in) or two (7.16 in) columns with the paper style applied."""
    if width not in ("single", "double"):
        raise ValueError("width is 'single' or 'double'")
    w = SINGLE_COLUMN_IN if width == "single" else DOUBLE_COLUMN_IN
    apply()
    fig, axes = plt.subplots(nrows, ncols, figsize=(w, height_in), layout="constrained", **kw)
    return fig, axes


def apply() -> None:
    """Make the paper style matplotlib's defaults (legends and colour bars are drawn after creation)."""
    matplotlib.rcParams.update(RC)


def parse_formats(text: str) -> list[str]:
    """``"pdf,png"`` → ``["pdf", "png"]``; :class:`BadInputError` for an unknown format."""
    out = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in out if f not in FORMATS]
    if bad or not out:
        raise BadInputError(f"--format: unknown format(s) {', '.join(bad) or '(none)'}; use {', '.join(FORMATS)}")
    return out


def save(fig: Figure, out_dir: Path, stem: str, formats: Iterable[str]) -> list[Path]:
    """Write ``fig`` as ``out_dir/stem.<fmt>`` for every format (vector PDF/SVG, 300 dpi PNG)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with plt.rc_context(RC):
        for fmt in formats:
            p = out_dir / f"{stem}.{fmt}"
            fig.savefig(p, format=fmt, metadata={"Creator": "rt3-testbed"} if fmt in ("pdf", "svg") else None)
            paths.append(p)
    plt.close(fig)
    return paths
