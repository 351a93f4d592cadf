"""`testbed trace …`: convert traces from real sources, inspect them, record them from a device."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devices.errors import BadInputError
from testbed.cli.common import JsonOpt, SysfsRootOpt, console, is_interactive, print_json

if TYPE_CHECKING:
    from devices.record import OnSample
    from traces.record import RecordResult

app = typer.Typer(
    help="DVFS, battery and power traces: convert from ftrace/cpufreq/power_supply logs, inspect, record.",
    no_args_is_help=True,
)


class Source(str, Enum):
    ftrace = "ftrace"
    time_in_state = "time-in-state"
    polled = "polled"
    power_supply = "power-supply"
    csv = "csv"
    battery = "battery"


DomainsOpt = Annotated[
    str | None,
    typer.Option("--domains", help="CPU → domain map, e.g. policy0=0-3,policy4=4-7 (default: one domain per CPU)."),
]


@app.command("convert")
def convert(
    file: Annotated[Path, typer.Argument(help="The source file.")],
    source: Annotated[Source, typer.Option("--from", help="What the source file is.")],
    out: Annotated[Path, typer.Option("--out", help="Output CSV in the testbed's format.")],
    domains: DomainsOpt = None,
    mode: Annotated[str, typer.Option("--mode", help="time-in-state: split (keep residency) or dominant.")] = "split",
    sign: Annotated[
        str,
        typer.Option(
            "--sign",
            help="Current sign of the source. power-supply: auto|kernel|discharge_positive|status; "
            "csv: discharge_positive|charge_positive.",
        ),
    ] = "auto",
    column_map: Annotated[
        str | None,
        typer.Option("--map", help="csv: column map, e.g. 't_s=Time:ms,voltage_v=Voltage (V),current_a=I:mA'."),
    ] = None,
    kind: Annotated[str, typer.Option("--kind", help="csv: battery or power.")] = "battery",
    json_out: JsonOpt = False,
) -> None:
    """Convert FILE into a DVFS, battery or power trace CSV (the format follows from --from).

    ftrace, time-in-state and polled give a DVFS trace; power-supply gives a battery trace; csv gives
    a battery or power trace (--kind); battery turns a battery trace into the power trace of its load.
    """
    from traces.battery import BatteryTrace, write_battery
    from traces.domains import parse_domains
    from traces.dvfs import DvfsTrace, write_dvfs
    from traces.power import PowerTrace, write_power

    if domains and source in (Source.power_supply, Source.csv, Source.battery):
        raise BadInputError("--domains applies to DVFS sources (ftrace, time-in-state, polled) only")
    dmap = parse_domains(domains) if domains else None
    trace: DvfsTrace | BatteryTrace | PowerTrace
    if source is Source.ftrace:
        from traces.parsers.ftrace import parse_ftrace

        trace = parse_ftrace(file, dmap)
    elif source is Source.time_in_state:
        from traces.parsers.time_in_state import parse_time_in_state

        trace = parse_time_in_state(file, dmap, mode=mode)
    elif source is Source.polled:
        from traces.parsers.polled import parse_polled

        trace = parse_polled(file, dmap)
    elif source is Source.battery:
        from traces.battery import read_battery
        from traces.power import power_from_battery

        trace = power_from_battery(read_battery(file))
    elif source is Source.power_supply:
        from traces.parsers.power_supply_log import parse_power_supply

        trace = parse_power_supply(file, sign=sign)
    else:
        from traces.parsers.generic_csv import parse_generic_csv

        if column_map is None:
            raise BadInputError("--from csv needs --map (e.g. --map 't_s=Time,voltage_v=V,current_a=I')")
        if kind == "battery" and sign == "auto":
            raise BadInputError(
                "--from csv --kind battery needs the source's current sign: --sign discharge_positive "
                "or --sign charge_positive (BatteryArchive, Linux and Android count charging as positive)"
            )
        trace = parse_generic_csv(file, column_map, kind=kind, sign="discharge_positive" if sign == "auto" else sign)
    if isinstance(trace, DvfsTrace):
        write_dvfs(trace, out)
        summary: dict[str, object] = {
            "format": "dvfs_trace",
            "rows": len(trace.events),
            "domains": trace.domain_names(),
            "duration_s": trace.end_s,
        }
    elif isinstance(trace, BatteryTrace):
        write_battery(trace, out)
        summary = {"format": "battery_trace", "rows": len(trace), "duration_s": float(trace.t_s[-1])}
    else:
        write_power(trace, out)
        summary = {"format": "power_trace", "rows": len(trace.t_s), "period_s": trace.period_s}
    summary["out"] = str(out)
    if json_out:
        print_json(summary)
    else:
        console.print(f"wrote {summary['rows']} rows ({summary['format']}) to {out}", highlight=False, soft_wrap=True)


@app.command("info")
def info(
    file: Annotated[Path, typer.Argument(help="A trace CSV (dvfs, battery or power).")],
    json_out: JsonOpt = False,
) -> None:
    """Validate FILE and print its format, duration and summary statistics."""
    from traces.info import trace_info

    data = trace_info(file)
    if json_out:
        print_json(data)
        return
    for key, value in data.items():
        if isinstance(value, dict):
            console.print(f"{key}:", highlight=False, soft_wrap=True)
            for k, v in value.items():
                console.print(f"  {k}: {v}", highlight=False, soft_wrap=True)
        else:
            console.print(f"{key}: {value}", highlight=False, soft_wrap=True)


def _progress_run(total: int | None, label: str, fn: Callable[[OnSample | None], RecordResult]) -> RecordResult:
    """Run ``fn(on_sample)`` with a rich progress bar when interactive and the length is known."""
    if total is None or not is_interactive():
        return fn(None)
    from rich.progress import Progress

    with Progress(console=console, transient=True) as progress:
        task = progress.add_task(label, total=total)
        return fn(lambda k, t: progress.update(task, completed=k))


PeriodOpt = Annotated[float, typer.Option("--period-s", help="Sampling period in seconds.")]
DurationOpt = Annotated[float | None, typer.Option("--duration-s", help="Stop after this many seconds.")]
SamplesOpt = Annotated[int | None, typer.Option("--samples", help="Stop after this many samples.")]


def _total(period_s: float, duration_s: float | None, samples: int | None) -> int | None:
    counts = [samples] if samples else []
    if duration_s is not None and period_s > 0:
        counts.append(int(duration_s / period_s) + 1)
    return min(counts) if counts else None


@app.command("record-dvfs")
def record_dvfs_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output DVFS trace CSV.")],
    sysfs_root: SysfsRootOpt = Path("/"),
    period_s: PeriodOpt = 0.1,
    duration_s: DurationOpt = None,
    samples: SamplesOpt = None,
    source: Annotated[
        str, typer.Option("--source", help="scaling_cur_freq (request) or cpuinfo_cur_freq (hardware, root).")
    ] = "scaling_cur_freq",
    gpu: Annotated[bool, typer.Option("--gpu", help="Also record the GPU's devfreq clock (domain 'gpu').")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Poll every cpufreq policy at --period-s and write one row per frequency change (Ctrl-C stops)."""
    from devices.record import DvfsRecorder, Schedule
    from devices.sysroot import open_sysfs
    from traces.record import record_dvfs

    schedule = Schedule(period_s, duration_s, samples)
    recorder = DvfsRecorder(open_sysfs(sysfs_root), source=source, gpu=gpu)
    result = _progress_run(
        _total(period_s, duration_s, samples),
        "recording DVFS",
        lambda cb: record_dvfs(recorder, out, schedule, on_sample=cb),
    )
    _report(result, json_out)


@app.command("record-battery")
def record_battery_cmd(
    out: Annotated[Path, typer.Option("--out", help="Output battery trace CSV.")],
    sysfs_root: SysfsRootOpt = Path("/"),
    supply: Annotated[
        str | None, typer.Option("--supply", help="power_supply name (default: the first Battery).")
    ] = None,
    period_s: PeriodOpt = 1.0,
    duration_s: DurationOpt = None,
    samples: SamplesOpt = None,
    sign: Annotated[
        str, typer.Option("--sign", help="Current sign rule: status (default), kernel or discharge_positive.")
    ] = "status",
    json_out: JsonOpt = False,
) -> None:
    """Sample /sys/class/power_supply/<supply> at --period-s into a battery trace (Ctrl-C stops)."""
    from devices.record import Schedule, SupplyRecorder
    from devices.sysroot import open_sysfs
    from traces.record import check_sign_rule, record_battery

    schedule = Schedule(period_s, duration_s, samples)
    check_sign_rule(sign)
    recorder = SupplyRecorder(open_sysfs(sysfs_root), supply)
    result = _progress_run(
        _total(period_s, duration_s, samples),
        "recording battery",
        lambda cb: record_battery(recorder, out, schedule, sign=sign, on_sample=cb),
    )
    _report(result, json_out)


def _report(result: RecordResult, json_out: bool) -> None:
    if json_out:
        print_json(result.to_dict())
    else:
        note = " (interrupted)" if result.interrupted else ""
        console.print(
            f"wrote {result.rows} rows from {result.samples} samples over {result.duration_s:.3f} s "
            f"to {result.path}{note}",
            highlight=False,
            soft_wrap=True,
        )
