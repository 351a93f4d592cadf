"""``testbed sweep``: a grid of experiments on Ray, every cell one run store.

Form relied on by scripts and docs::

    testbed sweep EXP.toml --vary KEY=V1,V2,… [--vary …] [--seeds N] --out DIR [--address ADDR]
                  [--retries N] [--cpus N] [--json]

The sweep itself is :func:`testbed.distributed.sweep.run_sweep`; the grid :mod:`testbed.distributed.grid`.
Without ``--address`` Ray starts embedded (``--cpus`` workers, default the machine's cores); ``--address auto``
or ``ray://HOST:PORT`` joins a cluster. Every cell is validated before anything is written (exit 2 naming the
cell and field); a rerun skips finished cells; the command exits 1 when a cell still failed after its retries.
Ray is imported inside the command only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devices.errors import TestbedError
from testbed.cli.common import JsonOpt, console, err_console, print_json


def sweep(
    experiment: Annotated[Path, typer.Argument(help="Experiment TOML file (the base of every cell).")],
    out: Annotated[Path, typer.Option("--out", help="Sweep directory: sweep.json and one run store per cell.")],
    vary: Annotated[
        list[str] | None,
        typer.Option("--vary", help="KEY=V1,V2,… with KEY a dotted path into the TOML (repeatable)."),
    ] = None,
    seeds: Annotated[int | None, typer.Option("--seeds", help="Repeat every cell with N seeds (seed, seed+1, …).")] = (
        None
    ),
    address: Annotated[
        str | None, typer.Option("--address", help="Ray cluster: auto or ray://HOST:PORT (default: embedded Ray).")
    ] = None,
    retries: Annotated[int, typer.Option("--retries", help="Retries of a failed cell before it is reported.")] = 2,
    cpus: Annotated[int | None, typer.Option("--cpus", help="Embedded Ray: worker CPUs (default: all cores).")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Run the grid of EXP.toml × --vary values (× --seeds) as Ray tasks; finished cells are skipped on a rerun."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
    from rich.table import Table

    from testbed.distributed.cluster import check_address
    from testbed.distributed.grid import build_grid
    from testbed.distributed.sweep import CellOutcome, run_sweep, summary_rows

    check_address(address)
    grid = build_grid(experiment, list(vary or []), seeds)
    with Progress(
        TextColumn("sweep"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TextColumn("{task.fields[info]}"),
        console=err_console, disable=json_out,
    ) as bar:  # fmt: skip
        job: list[TaskID] = []
        failed = [0]

        def on_start(total: int, done: int) -> None:
            job.append(bar.add_task("sweep", total=total, info=f"{done} already done"))

        def on_done(o: CellOutcome) -> None:
            failed[0] += o.status == "failed"
            bar.update(job[0], advance=1, info=f"{o.name} {o.status}" + (f" ({failed[0]} failed)" if failed[0] else ""))

        outcome = run_sweep(grid, out, address=address, retries=retries, num_cpus=cpus, on_start=on_start,
                            on_done=on_done)  # fmt: skip
    if json_out:
        print_json(outcome.to_dict())
    else:
        header, rows = summary_rows(outcome, grid)
        table = Table(title=f"sweep of {grid.experiment.name}: battery life per cell (h)")
        for col in header:
            table.add_column(col, justify="left" if col in ("status",) else "right")
        for row in rows:
            table.add_row(*row)
        console.print(table)
        where = outcome.cluster.describe() if outcome.cluster is not None else "nothing to run"
        console.print(f"{len(grid.cells)} cells in {outcome.wall_s:.1f} s on {where}; run stores under {out}",
                      highlight=False)  # fmt: skip
    if outcome.failed:
        first = outcome.failed[0]
        raise TestbedError(f"{len(outcome.failed)} of {len(grid.cells)} cells failed; {first.name}: {first.error}")
