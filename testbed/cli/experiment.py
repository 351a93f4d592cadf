"""Experiment and run-store commands: ``run``, ``runs list``, ``export``, ``verify`` (and ``profile``).

Registered on the top-level app by :func:`register`. Heavy imports (numpy-heavy simulation, pandas)
happen inside the commands.
"""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Annotated

import typer

from devices.errors import BadInputError, TestbedError
from testbed.cli.common import JsonOpt, console, print_json

runs_app = typer.Typer(help="Run stores: list the runs below a directory.", no_args_is_help=True)


def run_cmd(
    experiment: Annotated[Path, typer.Argument(help="Experiment TOML file.")],
    out: Annotated[Path | None, typer.Option("--out", help="Run directory (default runs/<name>-<time>).")] = None,
    resume: Annotated[Path | None, typer.Option("--resume", help="Continue the run in this directory.")] = None,
    live: Annotated[bool, typer.Option("--live", help="Show the live view of `testbed watch` while it runs.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Run an experiment (sim or hil) for every strategy it names; resumable with --resume."""
    from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn

    from testbed.experiment.config import load_experiment
    from testbed.experiment.runner import run_experiment

    cfg = load_experiment(experiment)
    if out is not None and resume is not None:
        raise BadInputError("give either --out or --resume, not both")
    if out is None and resume is None:
        out = Path("runs") / f"{cfg.name}-{time.strftime('%Y%m%dT%H%M%S')}"
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.percentage:>5.1f}% of the battery"),
        TimeElapsedColumn(),
        console=console,
        disable=json_out or live,
        transient=False,
    ) as bar:
        tasks: dict[str, TaskID] = {}

        def on_start(strategy: str) -> None:
            tasks[strategy] = bar.add_task(f"{strategy:>14}", total=1.0)

        last = [0.0]

        def progress(strategy: str, frac: float) -> None:
            now = time.monotonic()
            if now - last[0] > 0.1:
                last[0] = now
                bar.update(tasks[strategy], completed=frac)

        from testbed.cli.watch import live_view

        watched = resume if resume is not None else out
        with live_view(watched) if live and watched is not None and not json_out else contextlib.nullcontext():
            results = run_experiment(cfg, out, resume, progress, on_start)
        for t in tasks.values():
            bar.update(t, completed=1.0)
    run_dir = resume if resume is not None else out
    from testbed.experiment.runner import answer

    said = answer(cfg, results)
    if json_out:
        print_json({"run": str(run_dir), "results": {s: r.to_dict() for s, r in results.items()}, **said})
        return
    from rich.table import Table

    table = Table(title=f"{cfg.name}: battery life ({cfg.battery.model})")
    for col in ("strategy", "life h", "inferences", "misses", "accuracy", "switches", "end"):
        table.add_column(col, justify="right" if col not in ("strategy", "end") else "left")
    for s, r in results.items():
        table.add_row(
            s, f"{r.life_h:.3f}", str(r.inferences), str(r.deadline_misses),
            f"{r.accuracy_time_weighted:.4f}", str(r.switches), r.end_reason,
        )  # fmt: skip
    console.print(table)
    console.print(said["oracle_rule"], highlight=False)
    console.print(f"run store: {run_dir}")
    console.print(f"[bold]{said['headline']}[/bold]", highlight=False)


@runs_app.command("list")
def runs_list(
    directory: Annotated[Path, typer.Argument(help="Directory to search (default runs/).")] = Path("runs"),
    json_out: JsonOpt = False,
) -> None:
    """List the runs below DIRECTORY: UUID, time, fidelity, strategies finished."""
    from testbed.runstore.export import list_runs

    runs = list_runs(directory)
    if json_out:
        print_json(runs)
        return
    if not runs:
        console.print(f"no runs below {directory}")
        return
    rows = [("run", "created (UTC)", "fidelity", "name", "state", "uuid")]
    for r in runs:
        state = "complete" if r["complete"] else f"incomplete ({len(r['finished'])}/{len(r['strategies'])})"
        rows.append((str(r["run"]), str(r["created"]), str(r["fidelity"]), str(r["name"]), state, str(r["uuid"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        console.print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip(), highlight=False,
                      soft_wrap=True)  # fmt: skip


def export_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory or run.sqlite.")],
    out: Annotated[Path, typer.Option("--out", help="Directory for the exported tables.")],
    parquet: Annotated[bool, typer.Option("--parquet", help="Write Parquet files.")] = False,
    csv: Annotated[bool, typer.Option("--csv", help="Write CSV files.")] = False,
) -> None:
    """Export every table of a run to Parquet or CSV (one file per table)."""
    from testbed.runstore.export import export_run

    if parquet == csv:
        raise BadInputError("give exactly one of --parquet and --csv")
    files = export_run(run, out, "parquet" if parquet else "csv")
    console.print(f"wrote {len(files)} files to {out}")


def verify_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory or run.sqlite.")],
    json_out: JsonOpt = False,
) -> None:
    """Check a run: complete manifest, monotonic time, energy balance, throttled windows flagged."""
    from testbed.runstore.verify import verify_run

    checks = verify_run(run)
    if json_out:
        print_json([c.to_dict() for c in checks])
    else:
        for c in checks:
            mark = "[green]PASS[/green]" if c.passed else "[red]FAIL[/red]"
            console.print(f"{mark} {c.name}: {c.detail}", highlight=False)
    failed = [c.name for c in checks if not c.passed]
    if failed:
        raise TestbedError(f"{run}: {len(failed)} check(s) failed: {', '.join(failed)}")


def register(app: typer.Typer) -> None:
    """Add ``run``, ``runs``, ``export``, ``verify`` and ``profile`` to the top-level app."""
    app.command("run")(run_cmd)
    app.add_typer(runs_app, name="runs")
    app.command("export")(export_cmd)
    app.command("verify")(verify_cmd)
    try:
        from testbed.cli.profile import profile_cmd
    except ImportError:  # pragma: no cover - profile module not installed
        return
    app.command("profile")(profile_cmd)
