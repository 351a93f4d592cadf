"""Helpers shared by the CLI command modules: output, JSON, and shared options.

Command modules import only light modules at top level; heavy imports (torch, pandas) go inside the
command functions so that ``testbed --help`` and the board commands stay fast on a board.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)

SysfsRootOpt = Annotated[
    Path,
    typer.Option(
        "--sysfs-root",
        help="Root of the sysfs/procfs tree (default /); point it at an emulated board from `board emulate`.",
        envvar="TESTBED_SYSFS_ROOT",
    ),
]
StateDirOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        help="Where the saved board state lives (default: the user's state directory).",
        envvar="TESTBED_STATE_DIR",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
BoardOpt = Annotated[
    str | None,
    typer.Option("--board", help="Board profile name or TOML path (default: auto-detect)."),
]


def print_json(data: Any) -> None:
    """Write ``data`` as indented JSON to stdout (numbers stay numbers)."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=False, default=_json_default) + "\n")
    sys.stdout.flush()


def _json_default(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def warn(message: str) -> None:
    err_console.print(f"[yellow]warning:[/yellow] {message}", highlight=False)


def is_interactive() -> bool:
    return sys.stderr.isatty() and os.environ.get("CI") is None
