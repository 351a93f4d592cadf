"""trace-cmd binary ``trace.dat`` files → DVFS trace, through ``trace-cmd report``.

A ``trace.dat`` starts with the bytes ``\\x17\\x08\\x44tracing``. Its text form comes from the
``trace-cmd`` tool (``apt-get install trace-cmd``, ``dnf install trace-cmd``), whose report lines are
ftrace lines (:mod:`traces.parsers.ftrace` reads them). Without the tool the error says how to get it,
or to run ``trace-cmd report -i trace.dat > trace.txt`` where it is installed and convert the text.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from devices.errors import BadInputError, ParseError
from traces.domains import DomainMap
from traces.dvfs import DvfsTrace
from traces.parsers.ftrace import parse_ftrace_text

MAGIC = b"\x17\x08\x44tracing"
REPORT_TIMEOUT_S = 300.0


def parse_trace_dat(path: str | os.PathLike[str], domains: DomainMap | None = None) -> DvfsTrace:
    """``trace-cmd report`` of ``path`` parsed as ftrace text.

    Raises :class:`BadInputError` when ``trace-cmd`` is not installed (saying how to get it), and
    :class:`ParseError` when the file is not a trace.dat, ``trace-cmd report`` fails, or the report has
    no cpu_frequency events.
    """
    name = str(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(len(MAGIC))
    except OSError as exc:
        raise ParseError(name, None, f"cannot read: {exc.strerror or exc}") from None
    if head != MAGIC:
        raise ParseError(name, None, "not a trace-cmd trace.dat (it does not start with \\x17\\x08\\x44tracing)")
    exe = shutil.which("trace-cmd")
    if exe is None:
        raise BadInputError(
            f"{name}: reading a trace-cmd trace.dat needs the trace-cmd tool: install it (apt-get install trace-cmd) "
            "or run 'trace-cmd report -i trace.dat > trace.txt' where it is installed and convert trace.txt"
        )
    try:
        done = subprocess.run(
            [exe, "report", "-i", os.fspath(path)], capture_output=True, timeout=REPORT_TIMEOUT_S, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ParseError(name, None, f"trace-cmd report failed: {exc}") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise ParseError(name, None, f"trace-cmd report failed: {err[-1][:120] if err else done.returncode}")
    trace = parse_ftrace_text(name, done.stdout.decode("utf-8", "replace"), domains)
    trace.meta["source"] = "trace-cmd"
    return trace
