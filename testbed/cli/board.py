"""``testbed board …``: inspect and set CPU/GPU frequencies, restore the saved state, emulate a board.

Forms relied on by scripts and docs::

    testbed board info [--sysfs-root DIR] [--board NAME] [--json]
    testbed board set --policy NAME --freq-khz F [--sysfs-root DIR] [--state-dir DIR] [--json]
    testbed board set --level NAME --board NAME ...          (every policy of a profile level)
    testbed board set-gpu --freq-hz F [--device NAME] ...
    testbed board restore [--sysfs-root DIR] [--to-defaults --board NAME]
    testbed board emulate PROFILE --root DIR [--hw-floor-khz F] [--hw-cap-khz F] [--throttled 0x…]
    testbed board profiles [--json]

``board set`` leaves the board at the new frequency on purpose and keeps the original state in the
state file; ``board restore`` puts the original back. A failed ``set`` changes nothing.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table  # used by `profiles`

from testbed.cli.common import BoardOpt, JsonOpt, StateDirOpt, SysfsRootOpt, console, print_json, warn

app = typer.Typer(
    help="Inspect and set CPU/GPU frequencies, restore the saved state, emulate a board.",
    no_args_is_help=True,
)

DEFAULT_ROOT = Path("/")


@app.command("info")
def info(
    sysfs_root: SysfsRootOpt = DEFAULT_ROOT,
    board: BoardOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Policies with CPUs and frequencies (kHz), governors, devfreq devices, thermal and throttle state."""
    from devices.board import Board

    b = Board.open(sysfs_root, board)
    data = b.info()
    if json_out:
        print_json(data)
        return
    title = f"board: {data['board'] or 'unknown (pass --board)'}"
    if data["emulated"]:
        title += f"  [emulated at {data['sysfs_root']}]"
    console.print(title, highlight=False)
    if not data["policies"]:
        warn(f"no cpufreq policies under {data['sysfs_root']}: the kernel exposes no CPU frequency scaling here")
    for p in data["policies"]:
        hw = f"{p['hardware_khz']} kHz ({p['hardware_source']})" if p["hardware_khz"] is not None else "unknown"
        avail = " ".join(str(f) for f in p["available_khz"]) or f"{p['hw_min_khz']}..{p['hw_max_khz']} (no table)"
        console.print(
            f"[bold]{p['name']}[/bold]  cpus {','.join(str(c) for c in p['cpus'])}  driver {p['driver']}\n"
            f"  governor {p['governor']}  limits {p['min_khz']}..{p['max_khz']} kHz  "
            f"cur {p['cur_khz']} kHz  hardware {hw}\n"
            f"  available kHz: {avail}\n"
            f"  governors: {' '.join(p['governors'])}",
            highlight=False,
        )
    for d in data["devfreq"]:
        console.print(
            f"devfreq {d['name']}: governor {d['governor']}, cur {d['cur_hz']} Hz, "
            f"limits {d['min_hz']}..{d['max_hz']} Hz, available {' '.join(str(f) for f in d['available_hz'])}",
            highlight=False,
        )
    if data["thermal_zones"]:
        temps = ", ".join(
            f"{z['type']} {z['temp_c']:.1f} °C" if z["temp_c"] is not None else f"{z['type']} n/a"
            for z in data["thermal_zones"]
        )
        console.print(f"thermal: {temps}", highlight=False)
    if data["throttle"] is not None:
        th = data["throttle"]
        console.print(f"throttle: {th['raw']} {' '.join(th['flags']) or 'none'}", highlight=False)
    if data["nvpmodel"] is not None:
        console.print(f"nvpmodel: {data['nvpmodel']['name']} (id {data['nvpmodel']['id']})", highlight=False)


@app.command("set")
def set_frequency(
    policy: Annotated[str | None, typer.Option("--policy", help="Policy name as listed, e.g. policy4.")] = None,
    freq_khz: Annotated[int | None, typer.Option("--freq-khz", help="Frequency in kHz (one of the available).")] = None,
    level: Annotated[
        str | None,
        typer.Option("--level", help="A profile level (name or index, 0 = fastest) for every policy."),
    ] = None,
    sysfs_root: SysfsRootOpt = DEFAULT_ROOT,
    state_dir: StateDirOpt = None,
    board: BoardOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Set a policy's frequency (userspace governor, or min=max pinning) and read back the real clock."""
    from devices.board import Board
    from devices.errors import BadInputError
    from devices.guard import BoardGuard

    if level is not None and (policy is not None or freq_khz is not None):
        raise BadInputError("use either --level or --policy with --freq-khz, not both")
    if level is None and (policy is None or freq_khz is None):
        raise BadInputError("--policy NAME and --freq-khz F are required (or --level NAME)")
    b = Board.open(sysfs_root, board)
    targets = b.level_frequencies(level) if level is not None else {str(policy): int(freq_khz or 0)}
    policies = {name: b.policy(name) for name in targets}  # unknown names fail before any change
    for name, f in targets.items():
        policies[name].validate_frequency(f)
    results = []
    with BoardGuard(b.sysfs, state_dir=state_dir, owner="testbed board set", hold=True) as guard:
        for name, f in targets.items():
            results.append(guard.set_cpu_frequency(policies[name], f))
    if json_out:
        print_json({"results": [r.to_dict() for r in results], "state_file": str(guard.path)})
        return
    for r in results:
        hw = f"{r.hardware_khz} kHz ({r.hardware_source})" if r.hardware_khz is not None else "unknown"
        console.print(
            f"{r.policy}: requested {r.requested_khz} kHz via {r.method}; "
            f"scaling_cur_freq {r.scaling_cur_khz} kHz; hardware {hw}",
            highlight=False,
        )
        for w in r.warnings:
            warn(w)
    console.print(f"original state saved in {guard.path}; undo with `testbed board restore`", highlight=False)


@app.command("set-gpu")
def set_gpu(
    freq_hz: Annotated[int, typer.Option("--freq-hz", help="GPU frequency in Hz (one of the available).")],
    device: Annotated[str, typer.Option("--device", help="devfreq device name, or 'gpu' to find it.")] = "gpu",
    sysfs_root: SysfsRootOpt = DEFAULT_ROOT,
    state_dir: StateDirOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Set a devfreq device's (the Jetson GPU's) frequency in Hz."""
    from devices.devfreq import get_devfreq
    from devices.guard import BoardGuard
    from devices.sysroot import open_sysfs

    sysfs = open_sysfs(sysfs_root)
    dev = get_devfreq(sysfs, device)
    dev.validate_frequency(freq_hz)
    with BoardGuard(sysfs, state_dir=state_dir, owner="testbed board set-gpu", hold=True) as guard:
        cur = guard.set_devfreq_frequency(dev.name, freq_hz)
    if json_out:
        print_json({"device": dev.name, "requested_hz": freq_hz, "cur_hz": cur, "state_file": str(guard.path)})
        return
    console.print(f"{dev.name}: requested {freq_hz} Hz; cur_freq {cur} Hz", highlight=False)
    if cur != freq_hz:
        warn(f"{dev.name}: cur_freq {cur} Hz differs from the request")


@app.command("restore")
def restore(
    sysfs_root: SysfsRootOpt = DEFAULT_ROOT,
    state_dir: StateDirOpt = None,
    to_defaults: Annotated[
        bool,
        typer.Option(
            "--to-defaults",
            help="Ignore the saved state (lost or corrupt) and put the board profile's defaults back "
            "(default governor, full frequency range); the state file is removed.",
        ),
    ] = False,
    board: BoardOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Restore governors and limits saved before the testbed changed the board (also after a crash)."""
    from devices.board import Board
    from devices.guard import BoardGuard, restore_defaults, restore_from_file, state_file_for

    b = Board.open(sysfs_root, board)
    path = state_file_for(b.sysfs, state_dir)
    if to_defaults:
        profile = b.profile  # bad --board fails before anything changes
        with BoardGuard(b.sysfs, owner="testbed board restore --to-defaults", install_signal_handlers=False,
                        recover=False) as guard:  # fmt: skip
            restored = restore_defaults(b.sysfs, profile)
            guard.forget()
        if json_out:
            print_json({"restored": restored, "state_file": str(path), "to_defaults": True})
        else:
            console.print(f"reset {', '.join(restored)} to the {profile.name} profile's defaults", highlight=False)
        return
    restored = restore_from_file(b.sysfs, path)
    if json_out:
        print_json({"restored": restored, "state_file": str(path)})
    elif restored:
        console.print(f"restored {', '.join(restored)} from {path}", highlight=False)
    else:
        console.print(f"nothing to restore (no saved state in {path})", highlight=False)


@app.command("emulate")
def emulate(
    profile: Annotated[str, typer.Argument(help="Board profile name (rpi4, rpi5, jetson-nano, …) or TOML path.")],
    root: Annotated[Path, typer.Option("--root", help="Directory for the emulated sysfs tree.")],
    force: Annotated[bool, typer.Option("--force", help="Use a non-empty directory anyway.")] = False,
    hw_floor_khz: Annotated[
        int | None, typer.Option("--hw-floor-khz", min=1, help="Lie: the hardware clock never goes below this.")
    ] = None,
    hw_cap_khz: Annotated[
        int | None, typer.Option("--hw-cap-khz", min=1, help="Lie: throttling caps the hardware clock here.")
    ] = None,
    hw_override_khz: Annotated[
        int | None, typer.Option("--hw-override-khz", min=1, help="Lie: the hardware clock is pinned here.")
    ] = None,
    throttled: Annotated[
        str | None, typer.Option("--throttled", help="Raw vcgencmd get_throttled value, e.g. 0x50005.")
    ] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="Apply the lying modes to this policy only.")] = None,
) -> None:
    """Create an emulated board (a fake kernel tree) at --root, or change the lying modes of one."""
    from devices.errors import BadInputError
    from devices.fake.kernel import FakeKernel
    from devices.fake.marker import is_fake_tree

    existing = is_fake_tree(root)
    kernel = FakeKernel.load(root) if existing else FakeKernel.create(root, profile, force=force)
    if existing and kernel.profile.name != profile and not profile.endswith(".toml"):
        raise BadInputError(f"{root}: already emulates {kernel.profile.name}, not {profile}")
    if any(v is not None for v in (hw_floor_khz, hw_cap_khz, hw_override_khz)) or existing:
        kernel.set_lying(policy, hw_floor_khz=hw_floor_khz, hw_cap_khz=hw_cap_khz, hw_override_khz=hw_override_khz)
    if throttled is not None:
        try:
            value = int(throttled, 0)
        except ValueError:
            raise BadInputError(f"--throttled: {throttled!r} is not an integer such as 0x50005") from None
        kernel.set_throttled_flags(value)
    verb = "updated" if existing else "created"
    console.print(f"{verb} an emulated {kernel.profile.name} at {root}", highlight=False)
    console.print(f"try: testbed board info --sysfs-root {root}", highlight=False)


@app.command("profiles")
def profiles(json_out: JsonOpt = False) -> None:
    """List the bundled board profiles with their frequency levels."""
    from devices.board_profile import available_profiles, load_profile

    rows: list[dict[str, Any]] = []
    for name in available_profiles():
        p = load_profile(name)
        rows.append(
            {
                "name": p.name,
                "title": p.title,
                "policies": {pol.name: pol.frequencies_khz for pol in p.policies},
                "levels": [lv.model_dump() for lv in p.levels],
                "meters": p.meters,
            }
        )
    if json_out:
        print_json(rows)
        return
    t = Table("profile", "board", "policies (frequencies kHz)", "levels")
    for r in rows:
        pols = "; ".join(f"{k}: {v[0]}..{v[-1]} ({len(v)})" for k, v in r["policies"].items())
        t.add_row(r["name"], r["title"], pols, " ".join(lv["name"] for lv in r["levels"]))
    console.print(t)
