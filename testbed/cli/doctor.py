"""``testbed doctor``: bring-up checks on a board before any experiment (the checks live in :mod:`devices.doctor`).

::

    testbed doctor [--sysfs-root DIR] [--board NAME] [--meter URI] [--meter-seconds S] [--agent-port N]
                   [--no-round-trip] [--state-dir DIR] [--json]

Exit 0 when nothing FAILed (WARN rows are advice), 1 when a check FAILed, 2 for a bad argument.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from devices.errors import BadInputError, TestbedError
from testbed.cli.common import BoardOpt, JsonOpt, StateDirOpt, SysfsRootOpt, console, plural, print_json

_DEFAULT_ROOT = Path("/")
_STYLE = {"PASS": "green", "WARN": "yellow", "FAIL": "red"}


def doctor_cmd(
    sysfs_root: SysfsRootOpt = _DEFAULT_ROOT,
    board: BoardOpt = None,
    meter: Annotated[
        str | None, typer.Option("--meter", help="Power meter URI to try, e.g. um25c:///dev/rfcomm0.")
    ] = None,
    meter_seconds: Annotated[float, typer.Option("--meter-seconds", help="How long to sample the meter (s).")] = 3.0,
    agent_port: Annotated[
        int, typer.Option("--agent-port", min=0, max=65535, help="Agent TCP port to check (0 skips the check).")
    ] = 8765,
    round_trip: Annotated[
        bool,
        typer.Option("--round-trip/--no-round-trip", help="Set and read back every frequency (restored afterwards)."),
    ] = True,
    state_dir: StateDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Check a board before an experiment: cpufreq, write access, set/read-back, thermal, meter, clock, port."""
    from devices.doctor import DoctorOptions, run_doctor

    if not meter_seconds > 0:
        raise BadInputError(f"--meter-seconds must be positive, got {meter_seconds:g}")
    report = run_doctor(
        DoctorOptions(
            sysfs_root=sysfs_root,
            board=board,
            meter_uri=meter,
            meter_seconds=meter_seconds,
            agent_port=agent_port,
            state_dir=state_dir,
            round_trip=round_trip,
        )
    )
    if json_out:
        print_json(report.to_dict())
    else:
        for c in report.checks:
            console.print(
                f"[{_STYLE[c.status]}]{c.status}[/{_STYLE[c.status]}]  {c.name:<12} {escape(c.detail)}",
                highlight=False,
                markup=True,
                soft_wrap=True,
            )
            if c.fix:
                console.print(f"      {'':<12} fix: {c.fix}", highlight=False, markup=False, soft_wrap=True)
        n = report.counts()
        console.print(f"{n['PASS']} passed, {plural(n['WARN'], 'warning')}, {n['FAIL']} failed", highlight=False)
    if not report.ok:
        failed = ", ".join(dict.fromkeys(c.name for c in report.checks if c.status == "FAIL"))
        raise TestbedError(f"doctor: {failed} failed; see the fix lines above")
