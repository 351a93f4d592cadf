"""The ``testbed`` command: one CLI for board control, measurement, traces, experiments and reports.

Exit codes: 0 success, 2 bad input or usage, 1 failure at run time, 130 interrupted. Errors print one
line on stderr (``error: …``); ``TESTBED_DEBUG=1`` adds the traceback for bug reports.
"""

from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path
from typing import Annotated

import typer

from devices.errors import TestbedError
from testbed import __version__
from testbed.cli import agent as agent_cmd
from testbed.cli import battery as battery_cmd
from testbed.cli import board as board_cmd
from testbed.cli import doctor as doctor_cmd
from testbed.cli import examples as examples_cmd
from testbed.cli import experiment as experiment_cmd
from testbed.cli import meter as meter_cmd
from testbed.cli import report as report_cmd
from testbed.cli import reproduce as reproduce_cmd
from testbed.cli import rt3 as rt3_cmd
from testbed.cli import search as search_cmd
from testbed.cli import sweep as sweep_cmd
from testbed.cli import trace as trace_cmd
from testbed.cli import watch as watch_cmd
from testbed.cli.common import tidy_help, usage_error_line

app = typer.Typer(
    name="testbed",
    help="RT3 testbed: how much battery life does a run-time reconfigurable Transformer buy on a real board?",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(board_cmd.app, name="board")
app.add_typer(trace_cmd.app, name="trace")
app.add_typer(battery_cmd.app, name="battery")
app.add_typer(agent_cmd.app, name="agent")
app.add_typer(meter_cmd.app, name="meter")
app.add_typer(rt3_cmd.app, name="rt3")
app.add_typer(reproduce_cmd.app, name="reproduce")
experiment_cmd.register(app)
app.command("search")(search_cmd.search)
app.command("sweep")(sweep_cmd.sweep)
app.command("report")(report_cmd.report)
app.command("doctor")(doctor_cmd.doctor_cmd)
app.command("watch")(watch_cmd.watch_cmd)
app.add_typer(examples_cmd.app, name="examples")


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"testbed {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(
    show_version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", callback=_print_version, is_eager=True),
    ] = False,
) -> None:
    """RT3 testbed: how much battery life does a run-time reconfigurable Transformer buy on a real board?"""


@app.command("version")
def version() -> None:
    """Print the testbed version."""
    typer.echo(__version__)


@app.command("demo")
def demo(
    out: Annotated[Path, typer.Option("--out", help="Output directory (resumes what is already there).")] = Path(
        "runs/demo"
    ),
    json_out: Annotated[bool, typer.Option("--json", help="Print summary.json on stdout.")] = False,
) -> None:
    """End-to-end demo on an emulated Raspberry Pi 4: train, prune, search, profile, simulate, report."""
    import json

    from testbed.demo import run_demo

    summary = run_demo(out)
    if json_out:
        sys.stdout.write(json.dumps(summary, indent=2) + "\n")
        return
    table = out / "tables" / "battery_life.md"
    typer.echo(table.read_text(encoding="utf-8"))
    typer.echo(f"deadline {summary['deadline_ms']} ms ({summary['deadline_rule']})")
    typer.echo(f"figures: {out / 'figures'}   tables: {out / 'tables'}   summary: {out / 'summary.json'}")
    typer.echo(f"report: {out / 'report.md'}   ({summary['wall_s']:.0f} s)")
    typer.echo(summary["headline"])


def run(argv: list[str] | None = None) -> None:
    """Console-script entry point with the project's error contract."""
    command = typer.main.get_command(app)
    tidy_help(command)
    try:
        command.main(args=argv, prog_name="testbed", standalone_mode=False)
    except TestbedError as exc:
        _fail(str(exc), exc.exit_code)
    except typer.Abort:
        _fail("interrupted", 130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.TyperException as exc:  # usage errors: bad option values, unknown options, missing arguments
        line = usage_error_line(exc)
        if line is None:  # a group called without a command: its help was printed
            sys.exit(int(getattr(exc, "exit_code", 2)))
        _fail(line, int(getattr(exc, "exit_code", 2)))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except BrokenPipeError:
        sys.exit(1)
    except Exception as exc:  # a bug: one line, traceback on request
        if os.environ.get("TESTBED_DEBUG"):
            traceback.print_exc()
        _fail(f"internal error: {type(exc).__name__}: {exc} (set TESTBED_DEBUG=1 for the traceback)", 1)
    sys.exit(0)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    run()
