"""``testbed watch RUN``: a live terminal view of a running experiment, read from its run store.

::

    testbed watch RUN [--interval S] [--once] [--timeout S] [--json]

The writer (``testbed run`` in another terminal, or ``testbed run --live`` in this one) commits about
once a second; the view refreshes every ``--interval`` seconds and ends when every strategy has finished.
``--once`` prints a single frame (for scripts and logs). The numbers come from :mod:`testbed.watch`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.table import Table
from rich.text import Text

from devices.errors import BadInputError
from testbed.cli.common import JsonOpt, console, print_json
from testbed.watch import WatchSnapshot, snapshot, sparkline


def _fmt_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating"
    s = round(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _bar(fraction: float | None, width: int = 20) -> str:
    if fraction is None:
        return "░" * width
    full = round(max(0.0, min(1.0, fraction)) * width)
    return "█" * full + "░" * (width - full)


def render(snap: WatchSnapshot) -> Group:
    """The frame of ``testbed watch``: a header, one row per strategy, the current strategy's details."""
    state = "complete" if snap.complete else f"{len(snap.finished)}/{len(snap.strategies)} strategies finished"
    head = Text(f"{snap.name}  ({snap.mode}, {snap.fidelity})  {state}  ETA {_fmt_eta(snap.eta_s)}")
    table = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("strategy", "state", "level", "set", "SoC", "voltage", "inferences", "misses", "ETA"):
        table.add_column(col, justify="right" if col in ("SoC", "voltage", "inferences", "misses", "ETA") else "left")
    for name in snap.strategies:
        v = snap.views.get(name)
        if v is None:
            table.add_row(name, "waiting", "", "", "", "", "", "", "")
            continue
        soc = f"{v.soc:.1%}" if v.soc is not None else "-"
        volt = f"{v.voltage_v:.3f} V" if v.voltage_v is not None else "-"
        lvl = v.level or "-"
        table.add_row(
            name, "done" if v.finished else "running", lvl, v.pattern_set or "-", soc, volt,
            str(v.inferences), str(v.deadline_misses), "" if v.finished else _fmt_eta(v.eta_s),
        )  # fmt: skip
    parts: list[Text | Table] = [head, table]
    cur = snap.views.get(snap.current) if snap.current else None
    if cur is not None:
        t_h = f"{cur.t_s / 3600:.3f} h device time" if cur.t_s is not None else "no rows yet"
        parts.append(Text(f"{cur.name}: SoC {_bar(cur.soc)} {cur.soc:.1%}" if cur.soc is not None else cur.name))
        if cur.power_w:
            mean = sum(cur.power_w) / len(cur.power_w)
            parts.append(
                Text(
                    f"power {sparkline(cur.power_w, width=len(cur.power_w))} "
                    f"{min(cur.power_w):.2f}..{max(cur.power_w):.2f} W, "
                    f"mean {mean:.2f} W (last {len(cur.power_w)} samples)"
                )
            )
        rate = f"{cur.deadline_misses / cur.inferences:.2%}" if cur.inferences else "0%"
        parts.append(Text(f"{t_h}; {cur.switches} switches; deadline misses {cur.deadline_misses} ({rate})"))
    return Group(*parts)


def _wait_for_store(run: Path, timeout_s: float, stop: threading.Event | None = None) -> WatchSnapshot:
    """The first snapshot once the run store exists (a just-started writer creates it within a second)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return snapshot(run)
        except BadInputError:
            if time.monotonic() >= deadline or (stop is not None and stop.is_set()):
                raise
            time.sleep(0.2)


def watch_cmd(
    run: Annotated[Path, typer.Argument(help="Run directory (or run.sqlite) being written by `testbed run`.")],
    interval: Annotated[float, typer.Option("--interval", help="Seconds between refreshes.")] = 1.0,
    once: Annotated[bool, typer.Option("--once", help="Print one frame and exit.")] = False,
    timeout: Annotated[
        float, typer.Option("--timeout", help="Give up if the run store does not appear within S seconds.")
    ] = 30.0,
    json_out: JsonOpt = False,
) -> None:
    """Watch a running experiment: strategy, level, pattern set, SoC and voltage, power sparkline, misses, ETA."""
    if not interval > 0:
        raise BadInputError(f"--interval must be positive, got {interval:g}")
    if timeout < 0:
        raise BadInputError(f"--timeout must not be negative, got {timeout:g}")
    snap = _wait_for_store(run, timeout)
    if json_out:
        print_json(_to_dict(snap))
        return
    if once:
        console.print(render(snap), highlight=False)
        return
    from rich.live import Live

    with Live(render(snap), console=console, refresh_per_second=4, transient=False) as live:
        while not snap.complete:
            time.sleep(interval)
            snap = snapshot(run)
            live.update(render(snap))


def _to_dict(snap: WatchSnapshot) -> dict[str, object]:
    from dataclasses import asdict

    return {
        "run": snap.run,
        "name": snap.name,
        "mode": snap.mode,
        "fidelity": snap.fidelity,
        "complete": snap.complete,
        "current": snap.current,
        "eta_s": snap.eta_s,
        "strategies": {s: asdict(v) | {"progress": v.progress, "eta_s": v.eta_s} for s, v in snap.views.items()},
    }


@contextlib.contextmanager
def live_view(run: Path, interval: float = 0.5) -> Iterator[None]:
    """Show :func:`render` of ``run`` live while the body (which writes the run) executes (``run --live``)."""
    from rich.live import Live

    stop = threading.Event()

    def loop(live: Live) -> None:
        while not stop.is_set():
            with contextlib.suppress(BadInputError):
                live.update(render(snapshot(run)))
            stop.wait(interval)

    with Live(Text(f"waiting for {run} …"), console=console, refresh_per_second=4, transient=False) as live:
        worker = threading.Thread(target=loop, args=(live,), name="testbed-watch", daemon=True)
        worker.start()
        try:
            yield
        finally:
            stop.set()
            worker.join(timeout=5)
            with contextlib.suppress(BadInputError):
                live.update(render(snapshot(run)))
    console.line()
