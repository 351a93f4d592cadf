"""``testbed report RUN [RUN …] --out DIR [--format pdf,png,svg]``: the paper's figures and tables, and their index.

``--profile`` takes a CSV path or a bundled name, resolved by the one rule of :mod:`testbed.paths`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from testbed.cli.common import JsonOpt, console, print_json


def report(
    runs: Annotated[list[Path], typer.Argument(help="Run directories (or run.sqlite files) from `testbed run`.")],
    out: Annotated[Path, typer.Option("--out", help="Output directory for figures/, tables/ and report.md.")],
    formats: Annotated[str, typer.Option("--format", help="Figure formats: pdf, png, svg (comma-separated).")] = (
        "pdf,png"
    ),
    profile: Annotated[
        str | None, typer.Option("--profile", help="Profile table (CSV or bundled name); default: the run's.")
    ] = None,
    search_log: Annotated[
        Path | None,
        typer.Option(
            "--search-log", help="A `testbed search` output directory (or CSV/JSON lines) for the reward plot."
        ),
    ] = None,
    baseline: Annotated[str, typer.Option("--baseline", help="Strategy the ratios are taken against.")] = "dense-max",
    json_out: JsonOpt = False,
) -> None:
    """Turn runs (simulated or hardware-in-the-loop) into paper figures (PDF/PNG/SVG) and tables (MD/TeX/CSV)."""
    from analysis.report import build_report
    from analysis.style import parse_formats
    from testbed.paths import profile_table_path

    table = profile_table_path(profile) if profile is not None else None
    rep = build_report(runs, out, parse_formats(formats), table, search_log, baseline)
    if json_out:
        print_json(rep.to_dict())
        return
    console.print(f"wrote {len(rep.figures)} figures and {len(rep.tables)} tables to {out}", highlight=False)
    table_md = next(p for p in rep.tables["battery_life"] if p.suffix == ".md")
    console.print(table_md.read_text(encoding="utf-8"), highlight=False, markup=False)
    for name, why in rep.skipped.items():
        console.print(f"skipped {name}: {why}", highlight=False)
    console.print(f"index: {out / 'report.md'} (machine-readable: {out / 'report.json'})", highlight=False)
