"""The paper tables as DataFrames, and writers for Markdown, LaTeX (booktabs) and CSV.

Column names carry units. Writers are dependency-free (no tabulate/jinja2), so a board-side install
can still render tables.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.runs import RunData
from analysis.style import ordered_strategies
from traces.profile import ProfileTable


def battery_life_table(runs: Sequence[RunData], baseline: str = "dense-max") -> pd.DataFrame:
    """One row per run and strategy: life (h), inferences, the ratios to ``baseline``, misses, accuracy."""
    rows: list[dict[str, Any]] = []
    tag = baseline.replace("-", "_")
    for run in runs:
        base = run.results.get(baseline)
        for s in ordered_strategies(run.results):
            r = run.results[s]
            rows.append(
                {
                    "run": run.name,
                    "battery": run.battery_model,
                    "mode": run.mode,
                    "strategy": s,
                    "life_h": r.life_h,
                    "inferences": r.inferences,
                    f"life_vs_{tag}": _ratio(r.life_h, base.life_h if base else None),
                    f"inferences_vs_{tag}": _ratio(r.inferences, base.inferences if base else None),
                    "deadline_misses": r.deadline_misses,
                    "miss_rate_pct": 100.0 * r.miss_rate,
                    "accuracy_pct": 100.0 * r.accuracy_time_weighted,
                    "switches": r.switches,
                    "end_reason": r.end_reason,
                }
            )
    return pd.DataFrame(rows)


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def profile_summary_table(profile: ProfileTable) -> pd.DataFrame:
    """One row per pattern set × level: latency, energy per inference, power, accuracy."""
    rows = []
    for ps in profile.pattern_sets:
        for lv in profile.levels:
            r = profile.get(ps, lv)
            rows.append(
                {
                    "pattern_set": ps,
                    "sparsity_pct": 100.0 * r.sparsity,
                    "freq_mhz": r.freq_khz / 1000.0,
                    "latency_p50_ms": r.latency_p50_ms,
                    "latency_p99_ms": r.latency_p99_ms,
                    "energy_per_inference_mj": 1e3 * r.energy_per_inference_j,
                    "mean_power_w": r.mean_power_w,
                    "accuracy_pct": 100.0 * r.accuracy,
                    "throttled": bool(r.throttled),
                }
            )
    return pd.DataFrame(rows)


def _cell(v: Any, digits: int) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def to_markdown(df: pd.DataFrame, digits: int = 3) -> str:
    """A GitHub-flavoured Markdown table."""
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---:" if pd.api.types.is_numeric_dtype(df[c]) else "---" for c in df.columns) + "|"
    body = ["| " + " | ".join(_cell(v, digits) for v in row) + " |" for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


_LATEX_ESCAPES = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\~{}"}


def _tex(text: str) -> str:
    return "".join(_LATEX_ESCAPES.get(ch, ch) for ch in text)


def to_latex(df: pd.DataFrame, caption: str, label: str, digits: int = 3) -> str:
    """A booktabs ``table`` environment (needs ``\\usepackage{booktabs}``)."""
    align = "".join("r" if pd.api.types.is_numeric_dtype(df[c]) else "l" for c in df.columns)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{_tex(caption)}}}",
        rf"\label{{{label}}}",
        r"\small",
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(_tex(str(c)) for c in df.columns) + r" \\",
        r"\midrule",
        *(" & ".join(_tex(_cell(v, digits)) for v in row) + r" \\" for row in df.itertuples(index=False)),
        r"\bottomrule",
        r"\end{tabular}",
        r"\end{table}",
    ]
    return "\n".join(lines) + "\n"


#: The columns of the battery-life table's LaTeX version (one paper column; the CSV keeps every column).
LIFE_LATEX_COLUMNS = ("battery", "strategy", "life_vs_dense_max", "accuracy_pct", "deadline_misses")


def write_table(
    df: pd.DataFrame,
    out_dir: Path,
    stem: str,
    caption: str,
    digits: int = 3,
    latex_columns: Sequence[str] | None = None,
) -> list[Path]:
    """Write ``stem.md``, ``stem.tex`` and ``stem.csv``; returns the paths. ``latex_columns`` (those present)
    narrow the LaTeX table to fit one paper column; the caption then says the CSV has them all."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, tex, csv = out_dir / f"{stem}.md", out_dir / f"{stem}.tex", out_dir / f"{stem}.csv"
    md.write_text(to_markdown(df, digits), encoding="utf-8")
    narrow = [c for c in latex_columns or () if c in df.columns]
    if narrow:
        caption = f"{caption} Every column: {stem}.csv."
    tex.write_text(to_latex(df[narrow] if narrow else df, caption, f"tab:{stem}", digits), encoding="utf-8")
    df.to_csv(csv, index=False)
    return [md, tex, csv]
