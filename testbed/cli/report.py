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
    fmts = parse_formats(formats)
    if baseline != "dense-max":
        _check_baseline(runs, baseline)  # a strategy none of the runs has: one line, nothing written
    headline, warning, rule = _answer(runs, table, baseline)
    rep = build_report(runs, out, fmts, table, search_log, baseline, headline=headline, warning=warning, notes=[rule])
    if json_out:
        print_json(rep.to_dict())
        return
    console.print(f"wrote {len(rep.figures)} figures and {len(rep.tables)} tables to {out}", highlight=False)
    table_md = next(p for p in rep.tables["battery_life"] if p.suffix == ".md")
    console.print(table_md.read_text(encoding="utf-8"), highlight=False, markup=False)
    for name, why in rep.skipped.items():
        console.print(f"skipped {name}: {why}", highlight=False)
    console.print(f"index: {out / 'report.md'} (machine-readable: {out / 'report.json'})", highlight=False)
    if headline:
        console.print(headline, highlight=False)


def _answer(runs: list[Path], table: Path | None, baseline: str) -> tuple[str | None, str | None, str]:
    """The runs' headline (:mod:`testbed.experiment.headline`), the report's first-line warning for a modelled
    or flagged profile, and the oracle's accuracy rule; no headline when a run is not an experiment run."""
    from analysis.sweep import expand
    from devices.errors import BadInputError
    from testbed.experiment.config import ExperimentConfig
    from testbed.experiment.headline import headline, warning_line
    from testbed.experiment.quality import assess
    from testbed.experiment.strategy import oracle_rule
    from testbed.runstore.reader import RunReader
    from testbed.runstore.results import StrategyResult
    from traces.profile import load_profile_table

    per_run = []
    cfg: ExperimentConfig | None = None
    for path in expand(runs)[0]:  # a sweep directory stands for its finished cells
        with RunReader.open(path) as reader:
            res = {s: r for s, r in reader.results().items() if isinstance(r, StrategyResult)}
            if cfg is None:
                cfg = ExperimentConfig.model_validate(reader.config)
                table = table or reader.profile_table_path()
            per_run.append((str((reader.config.get("battery") or {}).get("model") or "?"), res))
    try:
        quality = assess(load_profile_table(table)) if table is not None else None
    except BadInputError:
        quality = None
    rule = oracle_rule(cfg.strategy) if cfg is not None else ""
    if not any(per_run_results for _, per_run_results in per_run):
        return None, warning_line(quality), rule
    return headline(per_run, quality, baseline), warning_line(quality), rule


def _check_baseline(runs: list[Path], baseline: str) -> None:
    """:class:`BadInputError` unless ``baseline`` is a strategy that one of the runs finished."""
    from analysis.sweep import expand
    from devices.errors import BadInputError
    from testbed.runstore.reader import RunReader

    known: set[str] = set()
    for path in expand(runs)[0]:
        with RunReader.open(path) as reader:
            known.update(reader.finished_units())
    if baseline not in known:
        raise BadInputError(f"--baseline {baseline!r}: no run has that strategy; they have {', '.join(sorted(known))}")
