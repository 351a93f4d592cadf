"""`testbed meter …`: read power meters, list them, calibrate a profile's power model, run fake meters.

Commands::

    testbed meter read URI [--seconds S] [--csv FILE] [--json] [--sysfs-root DIR]
                           [--idle-seconds S] [--activity-csv FILE]
    testbed meter list [--json] [--sysfs-root DIR]
    testbed meter calibrate --samples FILE --activity FILE --profile NAME --out NEW.toml [--json]
    testbed meter fake KIND [--link PATH] [--shape square] [--low-w W] [--high-w W] [--period-s S]
                            [--rate-hz HZ] [--root DIR]

URIs: ``um24c:///dev/rfcomm0``, ``um25c://…``, ``um34c://…``, ``ina219+serial:///dev/ttyACM0?baud=115200``,
``ina226+serial://…``, ``ina3221://[?rail=NAME]``, ``rapl://[?domain=NAME]``, ``pmic://``,
``model://PROFILE``, ``replay://FILE.csv``, ``wave://square?…`` (synthetic). Serial targets may be
any pyserial URL (``socket://host:port``, ``loop://``) or a pty. Exit codes: 0 ok, 2 bad input
(unknown scheme, no such port, permission), 1 runtime failure (no samples arrived).
"""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Annotated, Any

import typer

from devices.errors import BadInputError, HardwareError
from testbed.cli.common import JsonOpt, SysfsRootOpt, console, print_json, warn

app = typer.Typer(
    help="Measure power: read a meter for a while, list meters, calibrate the modelled meter, run fake meters.",
    no_args_is_help=True,
)

SysfsRootDefault = Path("/")


@app.command("read")
def read_cmd(
    uri: Annotated[str, typer.Argument(help="Meter URI, e.g. um25c:///dev/rfcomm0 or rapl:// (see `meter list`).")],
    seconds: Annotated[float, typer.Option("--seconds", "-s", help="How long to sample (s).")] = 5.0,
    csv: Annotated[Path | None, typer.Option("--csv", help="Write every sample to this CSV file.")] = None,
    json_out: JsonOpt = False,
    sysfs_root: SysfsRootOpt = SysfsRootDefault,
    idle_seconds: Annotated[
        float, typer.Option("--idle-seconds", help="First measure the idle baseline for this long and subtract it.")
    ] = 0.0,
    activity_csv: Annotated[
        Path | None,
        typer.Option("--activity-csv", help="Also record CPU frequency/utilisation (input to `meter calibrate`)."),
    ] = None,
) -> None:
    """Sample a meter for SECONDS and print energy, mean/peak power and duration."""
    from devices.meters import Sampler, open_meter

    if not seconds > 0:
        raise BadInputError(f"--seconds must be positive, got {seconds:g}")
    if idle_seconds < 0:
        raise BadInputError(f"--idle-seconds must not be negative, got {idle_seconds:g}")
    for out in (csv, activity_csv):
        if out is not None and not out.parent.is_dir():
            raise BadInputError(f"{out}: directory {out.parent} does not exist")
    meter = open_meter(uri, sysfs_root=sysfs_root)
    if not meter.measures_energy:
        raise BadInputError(f"{uri}: the null meter measures nothing; give a real meter URI (see `meter list`)")
    sampler = Sampler(meter)
    recorder = None
    idle = None
    try:
        sampler.start()
        first_wait = max(3.0, 3 * meter.timeout_s)
        if not sampler.wait_for_samples(1, first_wait):
            last = sampler.events[-1].message if sampler.events else "no answer"
            raise HardwareError(f"{uri}: no sample within {first_wait:g} s: {last}")
        if idle_seconds > 0:
            idle = sampler.measure_idle(idle_seconds)
        if activity_csv is not None:
            from devices.meters.activity import ActivityRecorder
            from devices.sysfs import Sysfs

            recorder = ActivityRecorder(activity_csv, Sysfs(sysfs_root)).start()
        sampler.begin_window("read")
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not sampler.exhausted:
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))
        result = sampler.end_window("read")
    finally:
        if recorder is not None:
            recorder.stop()
        sampler.stop()
    assert result is not None
    if csv is not None:
        sampler.persist(csv)
    summary: dict[str, Any] = {
        "uri": uri,
        "samples": result.samples,
        "duration_s": round(result.duration_s, 6),
        "energy_j": _round(result.energy_j),
        "mean_power_w": _round(result.mean_power_w),
        "peak_power_w": None if result.peak_power_w is None else round(result.peak_power_w, 6),
        "energy_method": result.energy_method,
        "coverage": round(result.coverage, 6),
        "complete": result.complete,
        "gap_s": round(result.gap_s, 6),
    }
    if result.mean_voltage_v is not None:
        summary["mean_voltage_v"] = round(result.mean_voltage_v, 6)
    if result.mean_current_a is not None:
        summary["mean_current_a"] = round(result.mean_current_a, 6)
    if idle is not None and result.net_energy_j is not None:
        summary["idle_power_w"] = _round(idle.mean_power_w)
        summary["net_energy_j"] = round(result.net_energy_j, 6)
    summary["notes"] = list(meter.notes)
    summary["events"] = [e.to_dict() for e in sampler.events]
    if csv is not None:
        summary["csv"] = str(csv)
    if activity_csv is not None:
        summary["activity_csv"] = str(activity_csv)
    if json_out:
        print_json(summary)
        return
    _print_summary(summary)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


def _print_summary(s: dict[str, Any]) -> None:
    from rich.table import Table

    table = Table(show_header=False, box=None)
    labels = {
        "samples": ("samples", ""),
        "duration_s": ("duration", "s"),
        "energy_j": ("energy", "J"),
        "mean_power_w": ("mean power", "W"),
        "peak_power_w": ("peak power", "W"),
        "mean_voltage_v": ("mean voltage", "V"),
        "mean_current_a": ("mean current", "A"),
        "idle_power_w": ("idle baseline", "W"),
        "net_energy_j": ("energy above idle", "J"),
        "coverage": ("coverage", ""),
        "energy_method": ("energy from", ""),
    }
    for key, (label, unit) in labels.items():
        if key in s and s[key] is not None:
            v = s[key]
            text = f"{v:.4f} {unit}".strip() if isinstance(v, float) else str(v)
            table.add_row(label, text)
    console.print(table)
    for note in s["notes"]:
        console.print(f"note: {note}", highlight=False)
    if not s["complete"]:
        warn(f"measurement incomplete: {s['gap_s']:.3f} s without samples or a fault during the run")
    for e in s["events"][:10]:
        console.print(f"event: {e['kind']}: {e['message']}", highlight=False)


@app.command("list")
def list_cmd(json_out: JsonOpt = False, sysfs_root: SysfsRootOpt = SysfsRootDefault) -> None:
    """Meters detected on this machine (or emulated tree), and every URI scheme the testbed knows."""
    from devices.meters.detect import detect_meters
    from devices.meters.registry import SCHEMES

    found = detect_meters(sysfs_root)
    schemes = [
        {"scheme": s.scheme, "summary": s.summary, "example": s.example} for s in (e.value for e in SCHEMES.entries())
    ]
    if json_out:
        print_json({"detected": found, "schemes": schemes})
        return
    if found:
        console.print("[bold]detected[/bold]")
        for f in found:
            console.print(f"  {f['uri']:<40} {f['why']}", highlight=False)
    else:
        console.print("no meter detected (model://PROFILE always works)")
    console.print("[bold]schemes[/bold]")
    for s in schemes:
        console.print(f"  {s['scheme']:<14} {s['summary']}", highlight=False)
        console.print(f"  {'':<14} e.g. {s['example']}", highlight=False)


@app.command("calibrate")
def calibrate_cmd(
    samples: Annotated[Path, typer.Option("--samples", help="Sample CSV from a real meter (`meter read --csv`).")],
    activity: Annotated[Path, typer.Option("--activity", help="Activity CSV from the same run (`--activity-csv`).")],
    profile: Annotated[str, typer.Option("--profile", help="Board profile name or TOML path to start from.")],
    out: Annotated[Path, typer.Option("--out", help="Where to write the calibrated profile TOML.")],
    min_r2: Annotated[
        float, typer.Option("--min-r2", min=0.0, max=1.0, help="Refuse fits whose R² is below this.")
    ] = 0.5,
    json_out: JsonOpt = False,
) -> None:
    """Fit the profile's power-model coefficients to a measured run and write the new profile."""
    from devices.board_profile import dump_profile_toml, load_profile
    from devices.meters.calibrate import calibrate_files, check_fit

    if not out.parent.is_dir():
        raise BadInputError(f"{out}: directory {out.parent} does not exist")
    prof = load_profile(profile)
    new_profile, report = calibrate_files(prof, samples, activity)
    weak = check_fit(report, min_r2)  # a refused fit writes nothing
    out.write_text(
        f"# Calibrated by `testbed meter calibrate` from {samples.name}; RMSE {report.rmse_after_w:.3f} W\n"
        + dump_profile_toml(new_profile),
        encoding="utf-8",
    )
    data = report.to_dict() | {"out": str(out), "warning": weak}
    if weak:
        warn(weak)
    if json_out:
        print_json(data)
        return
    console.print(
        f"fitted {len(report.fitted)} coefficients on {report.intervals} intervals: RMSE "
        f"{report.rmse_before_w:.3f} W -> {report.rmse_after_w:.3f} W, MAPE {report.mape_before_pct:.1f} % -> "
        f"{report.mape_after_pct:.1f} %, R² {report.r2_after:.3f}",
        highlight=False,
    )
    if report.kept:
        warn(f"{len(report.kept)} coefficients kept (frequency steps the run never visited)")
    console.print(f"wrote {out}", highlight=False)


FAKE_KINDS = ("um24c", "um25c", "um34c", "ina219", "ina226", "ina3221-jp4", "ina3221-jp5", "rapl", "pmic")


@app.command("fake")
def fake_cmd(
    kind: Annotated[str, typer.Argument(help=f"One of: {', '.join(FAKE_KINDS)}.")],
    link: Annotated[Path | None, typer.Option("--link", help="Symlink to the fake serial port (um*/ina2xx).")] = None,
    root: Annotated[
        Path | None, typer.Option("--root", help="Directory for a fake sysfs tree (ina3221/rapl/pmic).")
    ] = None,
    shape: Annotated[str, typer.Option("--shape", help="Power waveform: const, square, ramp, sine.")] = "square",
    low_w: Annotated[float, typer.Option("--low-w", help="Low power (W).")] = 2.0,
    high_w: Annotated[float, typer.Option("--high-w", help="High power (W).")] = 6.0,
    period_s: Annotated[float, typer.Option("--period-s", help="Waveform period (s).")] = 2.0,
    rate_hz: Annotated[float, typer.Option("--rate-hz", help="Lines per second (ina2xx).")] = 100.0,
    build_only: Annotated[
        bool, typer.Option("--build-only", help="rapl: build the tree and exit (its counters then stay at 0).")
    ] = False,
) -> None:
    """Emulate a meter: a serial meter on a pty, or a sysfs tree under --root (rapl: counters move until Ctrl-C)."""
    from devices.fake.meters.waveform import SHAPES, Waveform

    if kind not in FAKE_KINDS:
        raise BadInputError(f"unknown fake meter {kind!r}; choose one of {', '.join(FAKE_KINDS)}")
    if shape not in SHAPES:
        raise BadInputError(f"unknown --shape {shape!r}; choose one of {', '.join(SHAPES)}")
    if period_s <= 0 or rate_hz <= 0:
        raise BadInputError("--period-s and --rate-hz must be positive")
    wf = Waveform(shape, low_w, high_w, period_s)
    if kind.startswith("um") or kind in ("ina219", "ina226"):
        _serve_serial_fake(kind, link, wf, rate_hz)
        return
    if root is None:
        raise BadInputError(f"fake {kind} needs --root DIR for its sysfs tree")
    root.mkdir(parents=True, exist_ok=True)
    from devices.fake.meters import sysfs_trees

    if kind == "ina3221-jp4":
        sysfs_trees.build_ina3221_jp4(root)
        uri = "ina3221://"
    elif kind == "ina3221-jp5":
        sysfs_trees.build_ina3221_jp5(root)
        uri = "ina3221://"
    elif kind == "rapl":
        sysfs_trees.build_rapl(root)
        uri = "rapl://"
        if not build_only:
            typer.echo(f"fake rapl counters under {root} follow the --shape waveform; in another shell:")
            typer.echo(f"  testbed meter read {uri} --sysfs-root {root}")
            typer.echo("Ctrl-C stops it.")
            _run_until_interrupted(sysfs_trees.RaplCounterDriver(root, wf.power_w).start())
            return
    else:
        from devices.fake.meters.pmic import install_fake_pmic

        install_fake_pmic(root)
        uri = "pmic://"
    typer.echo(f"built a fake {kind} tree; read it with: testbed meter read {uri} --sysfs-root {root}")


def _serve_serial_fake(kind: str, link: Path | None, wf: Any, rate_hz: float) -> None:
    if kind.startswith("um"):
        from devices.fake.meters.um_device import FakeUMDevice

        dev: Any = FakeUMDevice(kind, wf, link=link).start()
        uri = f"{kind}://{dev.port}"
    else:
        from devices.fake.meters.ina_stream import FakeInaStream

        dev = FakeInaStream(wf, rate_hz=rate_hz, chip=kind, link=link).start()
        uri = f"{kind}+serial://{dev.port}"
    typer.echo(f"fake {kind} on {dev.port}; in another shell: testbed meter read {uri}")
    typer.echo("Ctrl-C stops it.")
    _run_until_interrupted(dev)


def _run_until_interrupted(dev: Any) -> None:
    """Sleep until Ctrl-C or SIGTERM, then ``dev.stop()`` (cleans up links and threads)."""

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)  # clean up on `kill` too
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        dev.stop()
