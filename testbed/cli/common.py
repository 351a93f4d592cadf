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


def usage_error_line(exc: Exception) -> str | None:
    """One line for a usage error (bad option value, unknown option, missing argument) instead of a usage block.

    ``None`` when the error carries no message. The line names the command and the problem, e.g.
    ``testbed board emulate: Invalid value for '--hw-cap-khz': … (see `testbed board emulate --help`)``.
    """
    fmt = getattr(exc, "format_message", None)
    message = str(fmt() if callable(fmt) else exc)
    message = " ".join(message.split())
    if not message:
        return None  # nothing to say (a group called without a command prints its help instead)
    ctx = getattr(exc, "ctx", None)
    path = getattr(ctx, "command_path", None)
    if not path:
        return message
    return f"{path}: {message} (see `{path} --help`)"


def tidy_help(command: Any) -> None:
    """Drop the ``<bool>`` type label of on/off flags (``--json``, ``--help``) in every command's help.

    Applied once to the whole click command tree by the entry point, so every command module gets it.
    """
    context_class = getattr(command, "context_class", None)
    help_option = command.get_help_option(context_class(command)) if context_class is not None else None
    if help_option is not None:
        help_option.metavar = ""
    for param in getattr(command, "params", []):
        if getattr(param, "is_flag", False) and getattr(param, "metavar", None) is None:
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        tidy_help(sub)


class StepProgress:
    """``[n/N] what (elapsed m:ss, ETA m:ss)`` lines for long work made of N similar steps.

    :meth:`step` is called as each step *starts*; the ETA is the mean time of the finished steps times the
    steps left. Steps beyond ``total`` (re-measurements) are shown as ``[+k]``. Prints nothing when ``quiet``.
    """

    def __init__(self, total: int, quiet: bool = False, clock: Any = None) -> None:
        import time

        self.total = max(total, 0)
        self.quiet = quiet
        self._clock = clock or time.monotonic
        self._start = self._clock()
        self.done = 0

    @staticmethod
    def _fmt(seconds: float) -> str:
        s = round(seconds)
        return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}" if s >= 3600 else f"{s // 60}:{s % 60:02d}"

    def line(self, what: str) -> str:
        """The line for the step that starts now (and count it)."""
        elapsed = self._clock() - self._start
        n = self.done + 1
        self.done = n
        if n > self.total:
            return f"[+{n - self.total}] {what} (elapsed {self._fmt(elapsed)})"
        eta = f", ETA {self._fmt(elapsed / (n - 1) * (self.total - n + 1))}" if n > 1 else ""
        return f"[{n}/{self.total}] {what} (elapsed {self._fmt(elapsed)}{eta})"

    def step(self, what: str) -> None:
        text = self.line(what)
        if not self.quiet:
            err_console.print(text, highlight=False)


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``"1 row"``, ``"2 rows"`` (``nouns`` for irregular plurals)."""
    return f"{n} {noun if n == 1 else (nouns or noun + 's')}"
