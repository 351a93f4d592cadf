"""`testbed trace …`: convert traces from real sources, inspect them, record them from a device."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from devices.errors import BadInputError
from testbed.cli.common import JsonOpt, SysfsRootOpt, console, is_interactive, plural, print_json

if TYPE_CHECKING:
    from devices.record import OnSample
    from traces.record import RecordResult
    from traces.sources import ParseOptions, SourceFormat

app = typer.Typer(
    help="DVFS, battery and power traces: convert from the files users have (detected), inspect, record.",
    no_args_is_help=True,
)


DomainsOpt = Annotated[
    str | None,
    typer.Option("--domains", help="CPU → domain map, e.g. policy0=0-3,policy4=4-7 (default: one domain per CPU)."),
]
FromOpt = Annotated[
    str | None,
    typer.Option(
        "--from",
        help="Source format (default: detected from the content): ftrace, systrace, perfetto, trace-cmd, "
        "time-in-state, polled, tegrastats, power-supply, upower, batterystats, healthd, rd-usb, monsoon, otii, "
        "jls, csv, battery, dvfs-trace, battery-trace, power-trace.",
    ),
]
ColumnsOpt = Annotated[
    str | None,
    typer.Option("--columns", help="Header-less CSV: its column names, e.g. time,status,energy_full,energy_now."),
]
TimeFormatOpt = Annotated[
    str | None,
    typer.Option("--time-format", help="strftime format of date-time stamps not detected (e.g. %d/%m/%Y %H:%M:%S)."),
]
TzOpt = Annotated[str | None, typer.Option("--tz", help="Time zone of naive date-times: IANA name, UTC or +HH:MM.")]
IntervalOpt = Annotated[
    float | None,
    typer.Option(
        "--interval-s",
        help="Seconds between samples of a log without times (tegrastats) or between two "
        "time_in_state snapshots (BEFORE AFTER).",
    ),
]
ModeOpt = Annotated[str, typer.Option("--mode", help="time-in-state: split (keep residency) or dominant.")]
SignOpt = Annotated[
    str,
    typer.Option(
        "--sign",
        help="Current sign of the source. power-supply: auto|kernel|discharge_positive|status; "
        "csv: discharge_positive|charge_positive.",
    ),
]
MapOpt = Annotated[
    str | None,
    typer.Option("--map", help="csv: column map, e.g. 't_s=Time:ms,voltage_v=Voltage (V),current_a=I:mA'."),
]
KindOpt = Annotated[
    str | None, typer.Option("--kind", help="csv: battery (default) or power; tegrastats: dvfs (default) or power.")
]


def _options(
    domains: str | None,
    mode: str,
    sign: str,
    column_map: str | None,
    kind: str | None,
    columns: str | None,
    time_format: str | None,
    tz: str | None,
    interval_s: float | None,
) -> ParseOptions:
    from traces.domains import parse_domains
    from traces.sources import ParseOptions
    from traces.timefmt import parse_tz

    if tz is not None:
        try:
            parse_tz(tz)
        except ValueError as exc:
            raise BadInputError(f"--tz: {exc}") from None
    if interval_s is not None and not (0 < interval_s < 1e12):
        raise BadInputError(f"--interval-s must be a positive number of seconds, got {interval_s:g}")
    cols = tuple(c.strip() for c in columns.split(",")) if columns else None
    if cols is not None and (not all(cols) or len(set(cols)) != len(cols)):
        raise BadInputError(f"--columns {columns!r}: names must be non-empty and distinct")
    return ParseOptions(
        domains=parse_domains(domains) if domains else None,
        mode=mode,
        sign=sign,
        column_map=column_map,
        kind=kind,
        columns=cols,
        time_format=time_format,
        tz=tz,
        interval_s=interval_s,
    )


def _resolve(files: list[Path], source: str | None, domains: str | None) -> SourceFormat:
    from traces.sources import detect, get_source

    if not files:
        raise BadInputError("give at least one FILE")
    fmt = get_source(source) if source is not None else detect(files[0])
    if domains and fmt.produces != "dvfs_trace":
        raise BadInputError("--domains applies to DVFS sources (ftrace, time-in-state, polled, tegrastats, …) only")
    return fmt


@app.command("convert")
def convert(
    files: Annotated[list[Path], typer.Argument(help="The source file(s): one, or BEFORE AFTER for time-in-state.")],
    out: Annotated[Path, typer.Option("--out", help="Output CSV in the testbed's format.")],
    source: FromOpt = None,
    domains: DomainsOpt = None,
    mode: ModeOpt = "split",
    sign: SignOpt = "auto",
    column_map: MapOpt = None,
    kind: KindOpt = None,
    columns: ColumnsOpt = None,
    time_format: TimeFormatOpt = None,
    tz: TzOpt = None,
    interval_s: IntervalOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Convert FILE into a DVFS, battery or power trace CSV (the format is detected unless --from names it).

    Nothing is written unless the whole input parses and the result passes its own reader.
    """
    from traces.battery import BatteryTrace, write_battery
    from traces.dvfs import DvfsTrace, write_dvfs
    from traces.power import write_power
    from traces.sources import load

    opts = _options(domains, mode, sign, column_map, kind, columns, time_format, tz, interval_s)
    fmt = _resolve(files, source, domains)
    _, trace = load(files, fmt.name, opts)
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
    summary["source_format"] = fmt.name
    summary["out"] = str(out)
    if json_out:
        print_json(summary)
    else:
        console.print(
            f"wrote {plural(int(str(summary['rows'])), 'row')} ({summary['format']}, from {fmt.name}) to {out}",
            highlight=False,
            soft_wrap=True,
        )


@app.command("info")
def info(
    files: Annotated[
        list[Path], typer.Argument(help="A trace CSV or raw source file (BEFORE AFTER for time-in-state).")
    ],
    source: FromOpt = None,
    domains: DomainsOpt = None,
    mode: ModeOpt = "split",
    sign: SignOpt = "auto",
    column_map: MapOpt = None,
    kind: KindOpt = None,
    columns: ColumnsOpt = None,
    time_format: TimeFormatOpt = None,
    tz: TzOpt = None,
    interval_s: IntervalOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Validate FILE and print its format, duration and summary statistics (raw sources are detected)."""
    from traces.info import trace_info

    opts = _options(domains, mode, sign, column_map, kind, columns, time_format, tz, interval_s)
    fmt = _resolve(files, source, domains)
    data = trace_info(files, fmt.name, opts)
    if json_out:
        print_json(data)
        return
    for key, value in data.items():
        if isinstance(value, dict):
            console.print(f"{key}:", highlight=False, soft_wrap=True)
            for k, v in value.items():
                console.print(f"  {k}: {v}", highlight=False, soft_wrap=True)
        elif isinstance(value, list) and key == "warnings":
            for w in value:
                console.print(f"warning: {w}", highlight=False, soft_wrap=True)
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
            f"wrote {plural(result.rows, 'row')} from {plural(result.samples, 'sample')} "
            f"over {result.duration_s:.3f} s to {result.path}{note}",
            highlight=False,
            soft_wrap=True,
        )
