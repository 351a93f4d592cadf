"""``testbed agent …``: run the device agent on a board, and talk to one from the controller.

::

    testbed agent serve [--host 127.0.0.1] [--port 8765] --token-file FILE [--board NAME|auto]
                        [--meter URI] [--sysfs-root DIR] [--emulate PROFILE] [--state-dir DIR]
    testbed agent info URL [--token-file FILE] [--json]
    testbed agent measure URL --model PATH [--upload] [--inferences N] [--warmup N] [--period-ms P]
                          [--deadline-ms D] [--level L] [--pattern-set NAME] [--json]
    testbed agent install-service [--out DIR | --apply [--root DIR]] [--user NAME] [--meter URI]
                          [--bt-mac MAC] [--board NAME] [--host H] [--port N] [--token-file FILE]

The client commands read the token from ``--token-file`` or ``$TESTBED_AGENT_TOKEN``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from devices.errors import BadInputError
from devices.meters.empty import has_energy
from testbed.agent.api import Measurement
from testbed.cli.common import JsonOpt, StateDirOpt, console, print_json, warn

app = typer.Typer(help="Run the device agent on a board, or query and measure through one.", no_args_is_help=True)

TokenFileOpt = Annotated[
    Path | None, typer.Option("--token-file", help="File holding the bearer token (created if missing when serving).")
]
UrlArg = Annotated[str, typer.Argument(help="Agent URL, e.g. http://127.0.0.1:8765")]


@app.command("serve")
def serve(
    host: Annotated[str, typer.Option("--host", help="Address to bind; anything but loopback needs --token-file.")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="TCP port (0 picks a free one).")] = 8765,
    token_file: TokenFileOpt = None,
    board: Annotated[str | None, typer.Option("--board", help="Board profile or 'auto' (default).")] = None,
    meter: Annotated[str | None, typer.Option("--meter", help="Power meter URI, e.g. um25c:///dev/rfcomm0.")] = None,
    sysfs_root: Annotated[Path, typer.Option("--sysfs-root", help="sysfs root (default /).")] = Path("/"),
    emulate: Annotated[
        str | None, typer.Option("--emulate", help="Emulate this board profile (fake kernel + modelled meter).")
    ] = None,
    state_dir: StateDirOpt = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, help="onnxruntime intra-op threads.")] = None,
    models_dir: Annotated[
        Path | None,
        typer.Option(
            "--models-dir", help="The only directory models load from; uploads land there (default: STATE_DIR/models)."
        ),
    ] = None,
    max_window_s: Annotated[
        float, typer.Option("--max-window-s", min=1.0, max=86400.0, help="Longest measurement window (s).")
    ] = 600.0,
) -> None:
    """Serve the agent until Ctrl-C/SIGTERM; the board is restored when it stops."""
    from devices.agent.serve import serve as run_agent

    _check_serve_inputs(emulate, board, meter)  # bad names fail before a token file or tree is created

    run_agent(
        host=host,
        port=port,
        token_file=token_file,
        board=board,
        meter=meter,
        sysfs_root=sysfs_root,
        emulate=emulate,
        state_dir=state_dir,
        threads=threads,
        models_dir=models_dir,
        max_window_s=max_window_s,
    )


@app.command("info")
def info(url: UrlArg, token_file: TokenFileOpt = None, json_out: JsonOpt = False) -> None:
    """Board, levels, meter, lease and loaded models of an agent."""
    from testbed.agent.client import AgentClient, read_token

    check_agent_url(url)

    with AgentClient(url, read_token(token_file)) as client:
        data = client.info()
    if json_out:
        print_json(data)
        return
    console.print(
        f"{url}: board {data['profile']} ({'emulated' if data['emulated'] else 'hardware'}), "
        f"agent {data['agent_version']}",
        highlight=False,
    )
    for p in data["policies"]:
        console.print(f"  {p['name']}: cpus {p['cpus']} {p['governor']} cur {p['cur_khz']} kHz", highlight=False)
    console.print("  levels: " + ", ".join(lv["name"] for lv in data["levels"]), highlight=False)
    meter = data.get("meter")
    console.print(f"  meter: {meter['uri'] if meter else 'none'}", highlight=False)
    lease = data.get("lease")
    console.print(f"  lease: {lease['holder'] + ' for ' + str(lease['expires_in_s']) + ' s' if lease else 'free'}")


@app.command("measure")
def measure(
    url: UrlArg,
    model: Annotated[Path, typer.Option("--model", help="ONNX file or artifact directory (a path on the board).")],
    upload: Annotated[bool, typer.Option("--upload", help="Upload the local .onnx file instead.")] = False,
    inferences: Annotated[int, typer.Option("--inferences", min=1, help="Timed inferences.")] = 50,
    warmup: Annotated[int, typer.Option("--warmup", min=0, help="Untimed warm-up inferences.")] = 5,
    period_ms: Annotated[float | None, typer.Option("--period-ms", help="Release one request every P ms.")] = None,
    deadline_ms: Annotated[float | None, typer.Option("--deadline-ms", help="Count responses later than D ms.")] = None,
    level: Annotated[str | None, typer.Option("--level", help="Profile level to run at (name or index).")] = None,
    pattern_set: Annotated[str | None, typer.Option("--pattern-set", help="Pattern set to switch to.")] = None,
    holder: Annotated[str, typer.Option("--holder", help="Lease holder name.")] = "testbed-cli",
    token_file: TokenFileOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Load a model on the agent and measure a window: latency statistics and energy."""
    from testbed.agent.client import AgentClient, read_token

    check_agent_url(url)
    if upload and not model.is_file():
        raise BadInputError(f"{model}: no such file to upload (--upload sends a local .onnx or .rt3 file)")

    with AgentClient(url, read_token(token_file)) as client, client.lease(holder):
        loaded = client.upload_model(model) if upload else client.load_model(str(model))
        result = client.measure(
            loaded["model_id"],
            inferences=inferences,
            warmup=warmup,
            period_ms=period_ms,
            deadline_ms=deadline_ms,
            level=level,
            pattern_set=pattern_set,
        )
    if json_out:
        print_json(result)
        return
    _print_measurement(result)


def check_agent_url(url: str) -> None:
    """:class:`BadInputError` unless ``url`` is an ``http://`` or ``https://`` URL with a host."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise BadInputError(f"agent URL {url!r}: expected http://HOST:PORT (e.g. http://127.0.0.1:8765)")


def _check_serve_inputs(emulate: str | None, board: str | None, meter: str | None) -> None:
    from devices.board_profile import load_profile
    from devices.meters.registry import parse_uri

    if emulate is not None:
        load_profile(emulate)
    if board is not None and board != "auto":
        load_profile(board)
    if meter is not None:
        parse_uri(meter)


@app.command("install-service")
def install_service(
    out: Annotated[
        Path, typer.Option("--out", help="Without --apply: directory to write the unit and the rule into.")
    ] = Path("testbed-service"),
    apply: Annotated[
        bool, typer.Option("--apply", help="Install them (needs root), create the group, enable the service.")
    ] = False,
    root: Annotated[Path, typer.Option("--root", help="With --apply: install below this root (default /).")] = Path(
        "/"
    ),
    user: Annotated[
        str | None, typer.Option("--user", help="User the agent runs as (default: $SUDO_USER or you).")
    ] = None,
    meter: Annotated[str | None, typer.Option("--meter", help="Power meter URI for the agent.")] = None,
    bt_mac: Annotated[
        str | None, typer.Option("--bt-mac", help="Bluetooth MAC of a UM meter to bind at boot (rfcomm).")
    ] = None,
    board: Annotated[str | None, typer.Option("--board", help="Board profile (default: auto-detect).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address the agent binds.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
    token_file: TokenFileOpt = None,
) -> None:
    """Write (or --apply: install) the systemd unit and udev rule that run the agent at boot as a normal user."""
    import getpass
    import os
    import pwd
    import shutil
    import sys

    from devices.service_install import ServiceSpec, install, write_files

    name = user or os.environ.get("SUDO_USER") or getpass.getuser()
    try:
        home = Path(pwd.getpwnam(name).pw_dir)
    except KeyError:
        if apply and root.resolve() == Path("/"):
            raise BadInputError(f"--user {name!r}: no such user on this machine") from None
        home = Path("/home") / name
    _check_serve_inputs(None, board, meter)
    exe = str(Path(sys.executable).parent / "testbed")
    if not Path(exe).exists():
        exe = shutil.which("testbed") or "testbed"
    spec = ServiceSpec(name, home, exe, host, port, token_file, meter, board, bt_mac)
    if name == "root":
        warn("the agent would run as root: pass --user NAME so that its files are not root-owned")
    if apply:
        files = install(spec, root)
        for f in files:
            console.print(f"installed {f}", highlight=False)
        if root.resolve() == Path("/"):
            console.print(f"enabled testbed-agent.service; {name} is in group testbed (log in again to use it)")
        return
    files = write_files(out, spec)
    for f in files:
        console.print(f"wrote {f}", highlight=False)
    console.print(
        f"install with: sudo install -m 0644 {files[0]} /etc/systemd/system/ && "
        f"sudo install -m 0644 {files[1]} /etc/udev/rules.d/ (or run `sudo testbed agent install-service --apply`)",
        highlight=False,
        soft_wrap=True,
    )


def _print_measurement(r: Measurement) -> None:
    lat = r["latency"]
    console.print(
        f"pattern set {r['pattern_set']}: {lat['count']} inferences, p50 {lat['p50_ms']:.2f} ms, "
        f"p90 {lat['p90_ms']:.2f} ms, p99 {lat['p99_ms']:.2f} ms, max {lat['max_ms']:.2f} ms",
        highlight=False,
    )
    if lat["deadline_ms"] is not None:
        console.print(f"deadline {lat['deadline_ms']} ms: {lat['deadline_misses']} misses", highlight=False)
    e = r.get("energy")
    if e is None or not has_energy(e):  # the agent has no meter: its (EmptyMeter) window measured nothing
        console.print("energy: not measured (the agent has no power meter; start it with --meter URI)", highlight=False)
    else:
        console.print(
            f"energy {e['energy_j']:.4f} J over {e['duration_s']:.3f} s "
            f"({e['energy_method']}, {e['samples']} samples), "
            f"mean {e['mean_power_w']:.3f} W; {r['energy_per_inference_j']:.5f} J per inference",
            highlight=False,
        )
        if not e["complete"]:
            warn("the meter window is incomplete: " + "; ".join(e.get("events", [])))
    if r["throttled_during"]:
        warn("the board was throttled during the window; discard this measurement")
    if r["frequency_changed_during"]:
        warn("the frequency changed during the window")
