"""``testbed examples …``: the bundled example experiments (every key commented).

::

    testbed examples list [--json]
    testbed examples show NAME
    testbed examples copy NAME [--out DIR] [--force]
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from testbed.cli.common import JsonOpt, console, print_json

app = typer.Typer(help="Bundled example experiments: list, show and copy them.", no_args_is_help=True)

NameArg = Annotated[str, typer.Argument(help="Example name (see `testbed examples list`).")]


@app.command("list")
def list_cmd(json_out: JsonOpt = False) -> None:
    """List the bundled example experiments with their mode and summary."""
    from testbed.examples import list_examples

    found = list_examples()
    if json_out:
        print_json([
            {"name": e.name, "mode": e.mode, "summary": e.summary, "path": str(e.path),
             "files": [str(c) for c in e.companions]}
            for e in found
        ])  # fmt: skip
        return
    width = max(len(e.name) for e in found)
    console.print(f"{'name':<{width}}  mode  summary", highlight=False)
    for e in found:
        console.print(f"{e.name:<{width}}  {e.mode:<4}  {e.summary}", highlight=False, soft_wrap=True)
    console.print("copy one with: testbed examples copy NAME --out DIR", highlight=False)


@app.command("show")
def show_cmd(name: NameArg) -> None:
    """Print an example experiment file."""
    from testbed.examples import get_example

    typer.echo(get_example(name).path.read_text(encoding="utf-8"), nl=False)


@app.command("copy")
def copy_cmd(
    name: NameArg,
    out: Annotated[Path, typer.Option("--out", help="Directory to copy it into (created).")] = Path("."),
    force: Annotated[bool, typer.Option("--force", help="Overwrite existing files.")] = False,
) -> None:
    """Copy an example (and the trace files it names) into DIR to edit and run."""
    from testbed.examples import copy_example

    files = copy_example(name, out, force=force)
    for f in files:
        console.print(f"wrote {f}", highlight=False)
    console.print(f"run it with: testbed run {files[0]}", highlight=False)
