"""``testbed reproduce``: RT3's own accounting and the way from it to a board (``rt3-paper``), and where RT3
pays (``sensitivity``). Runs come from :mod:`testbed.reproduce`, figures and tables from :mod:`analysis.reproduce`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from testbed.cli.common import JsonOpt, console, print_json

app = typer.Typer(help="Reproduce RT3's accounting and decompose the answer.", no_args_is_help=True)

ExperimentOpt = Annotated[
    Path | None,
    typer.Option("--experiment", help="Experiment TOML to move toward (default: the bundled Pi 4 ECM experiment)."),
]
FormatOpt = Annotated[str, typer.Option("--format", help="Figure formats, comma-separated (pdf, png, svg).")]


@app.command("rt3-paper")
def rt3_paper(
    out: Annotated[Path, typer.Option("--out", help="Output directory (runs, figures, tables).")] = Path(
        "runs/reproduce-rt3-paper"
    ),
    experiment: ExperimentOpt = None,
    formats: FormatOpt = "pdf,png",
    json_out: JsonOpt = False,
) -> None:
    """RT3's accounting on RT3's LM, then a waterfall of runs toward the experiment's board."""
    from analysis.reproduce import write_waterfall_report
    from testbed.reproduce.rt3_paper import reproduce_rt3_paper

    out, fmts = _checked_inputs(out, experiment, formats)
    result = reproduce_rt3_paper(out, experiment, say=None if json_out else _say)
    index = write_waterfall_report(result, out, fmts)
    result["figure"] = [str(out / f) for f in index["figures"]["waterfall"]["files"]]
    result["table"] = [str(out / f) for f in index["tables"]["waterfall"]["files"]]
    if json_out:
        print_json(result)
        return
    console.print(
        f"paper accounting: rt3 runs {result['paper_ratio']:.2f}× as many inferences as {result['baseline']}",
        highlight=False,
    )
    for k, s in enumerate(result["steps"]):
        console.print(f"  {k}. {s['ratio']:5.2f}×  {s['change']}", highlight=False)
    console.print(f"figure: {result['figure'][0]}   table: {result['table'][0]}", highlight=False)


@app.command("sensitivity")
def sensitivity(
    out: Annotated[Path, typer.Option("--out", help="Output directory (grid CSV, figure, table).")] = Path(
        "runs/reproduce-sensitivity"
    ),
    experiment: ExperimentOpt = None,
    formats: FormatOpt = "pdf,png",
    json_out: JsonOpt = False,
) -> None:
    """The rt3/dense-max battery-life ratio over the request period and the idle power, from one profile."""
    from analysis.reproduce import write_sensitivity_report
    from testbed.reproduce.sensitivity import sensitivity_grid

    out, fmts = _checked_inputs(out, experiment, formats)
    grid, period_ms = sensitivity_grid(out, experiment, say=None if json_out else _say)
    index = write_sensitivity_report(grid, out, period_ms, fmts)
    files = [str(out / f) for f in index["figures"]["sensitivity"]["files"]]
    if json_out:
        print_json({"grid": str(grid), "figure": files, "experiment_period_ms": period_ms})
        return
    console.print(f"grid: {grid}   figure: {files[0]}", highlight=False)


def _checked_inputs(out: Path, experiment: Path | None, formats: str) -> tuple[Path, list[str]]:
    """The absolute output directory and the figure formats, after checking every input: bad input fails (exit 2)
    before anything is written. Absolute, because the step experiments name files relative to themselves."""
    from analysis.style import parse_formats
    from testbed.experiment.config import load_experiment

    fmts = parse_formats(formats)
    if experiment is not None:
        load_experiment(experiment)
    return out.resolve(), fmts


def _say(msg: str) -> None:
    console.print(msg, highlight=False)
