"""The systemd unit and udev rule a board needs to run the agent at boot (``testbed agent install-service``).

* ``testbed-agent.service`` runs ``testbed agent serve`` as the board's normal user (never root) in the
  ``testbed`` group, with ``dialout`` (serial meters) and ``video`` (``vcgencmd``) as supplementary groups,
  the token file in that user's home, and its state directory (``/var/lib/testbed``, ``StateDirectory=``)
  owned by that user — so nothing the agent writes ends up root-owned. SIGTERM lets the agent restore the
  board before it exits; after a crash, the next start restores it from the state file.
* ``99-testbed-cpufreq.rules`` gives the ``testbed`` group write access to cpufreq (and devfreq) at boot,
  the rule :func:`devices.sysfs.permission_hint` names. With a Bluetooth meter MAC, the unit also binds
  ``/dev/rfcommN`` before the agent starts (as root, the ``+`` prefix).

:func:`render_unit` and :func:`render_udev_rule` only build text; :func:`install` writes the files below a
root (``/`` on the board) and, on the real root, creates the group, adds the user and reloads systemd
and udev. Failure modes: :class:`~devices.errors.PermissionDeniedError` without write access to the
root's ``etc/`` (one line: run with sudo); :class:`~devices.errors.BadInputError` for a bad user name,
port or MAC; :class:`~devices.errors.HardwareError` when a system command fails.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devices.errors import BadInputError, HardwareError, PermissionDeniedError

UNIT_NAME = "testbed-agent.service"
UNIT_PATH = f"etc/systemd/system/{UNIT_NAME}"
RULE_PATH = "etc/udev/rules.d/99-testbed-cpufreq.rules"
GROUP = "testbed"


@dataclass(frozen=True)
class ServiceSpec:
    """What the unit runs: as ``user``, ``testbed_exe agent serve`` with these options."""

    user: str
    home: Path
    testbed_exe: str
    host: str = "127.0.0.1"
    port: int = 8765
    token_file: Path | None = None
    meter: str | None = None
    board: str | None = None
    bt_mac: str | None = None

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z_][a-z0-9_-]*\$?", self.user):
            raise BadInputError(f"--user {self.user!r} is not a valid user name")
        if not 1 <= self.port <= 65535:
            raise BadInputError(f"--port must be 1..65535, got {self.port}")
        if self.bt_mac is not None and not re.fullmatch(r"(?:[0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}", self.bt_mac):
            raise BadInputError(f"--bt-mac {self.bt_mac!r} is not a Bluetooth address such as 00:15:A3:00:55:3F")
        if self.bt_mac is not None and not (self.meter or "").startswith(("um24c://", "um25c://", "um34c://")):
            raise BadInputError("--bt-mac needs --meter um25c:///dev/rfcommN (the port the MAC is bound to)")

    @property
    def token(self) -> Path:
        return self.token_file or self.home / ".config" / "testbed" / "token"

    def argv(self) -> list[str]:
        args = [self.testbed_exe, "agent", "serve", "--host", self.host, "--port", str(self.port)]
        args += ["--token-file", str(self.token)]
        if self.board:
            args += ["--board", self.board]
        if self.meter:
            args += ["--meter", self.meter]
        return args


def _rfcomm_index(meter: str) -> int:
    m = re.search(r"/dev/rfcomm(\d+)", meter)
    if not m:
        raise BadInputError(f"--bt-mac needs a meter on /dev/rfcommN, got {meter!r}")
    return int(m.group(1))


def render_unit(spec: ServiceSpec) -> str:
    """The systemd unit text (see the module docstring)."""
    lines = [
        "# Written by `testbed agent install-service`: the RT3 testbed device agent, started at boot.",
        "[Unit]",
        "Description=RT3 testbed device agent",
        "After=network-online.target bluetooth.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=simple",
        f"User={spec.user}",
        f"Group={GROUP}",
        "SupplementaryGroups=dialout video",
        "StateDirectory=testbed",
        "Environment=TESTBED_STATE_DIR=/var/lib/testbed",
    ]
    if spec.bt_mac is not None:
        n = _rfcomm_index(spec.meter or "")
        lines.append(f"ExecStartPre=+-/usr/bin/rfcomm release {n}")
        lines.append(f"ExecStartPre=+/usr/bin/rfcomm bind {n} {spec.bt_mac}")
    lines += [
        f"ExecStart={shlex.join(spec.argv())}",
        "# SIGTERM makes the agent restore governors and limits before it exits.",
        "KillSignal=SIGTERM",
        "TimeoutStopSec=20",
        "Restart=on-failure",
        "RestartSec=5",
        "NoNewPrivileges=true",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
        "",
    ]
    return "\n".join(lines)


def render_udev_rule() -> str:
    """The udev rule giving the ``testbed`` group write access to cpufreq and devfreq."""
    return (
        "# Written by `testbed agent install-service`: lets group 'testbed' set CPU (and GPU) frequencies.\n"
        f'SUBSYSTEM=="cpu", ACTION=="add", RUN+="/bin/chgrp -R {GROUP} /sys/devices/system/cpu/cpufreq", '
        'RUN+="/bin/chmod -R g+w /sys/devices/system/cpu/cpufreq"\n'
        f'SUBSYSTEM=="devfreq", ACTION=="add", RUN+="/bin/chgrp -R {GROUP} /sys%p", RUN+="/bin/chmod -R g+w /sys%p"\n'
    )


def write_files(out_dir: Path, spec: ServiceSpec) -> list[Path]:
    """Write the unit and the rule into ``out_dir`` (not installed); returns their paths."""
    if out_dir.exists() and not out_dir.is_dir():
        raise BadInputError(f"{out_dir}: exists and is not a directory")
    unit, rule = out_dir / UNIT_NAME, out_dir / Path(RULE_PATH).name
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        unit.write_text(render_unit(spec), encoding="utf-8")
        rule.write_text(render_udev_rule(), encoding="utf-8")
    except PermissionError:
        raise PermissionDeniedError(f"{out_dir}: permission denied; choose another --out") from None
    return [unit, rule]


def install_commands(spec: ServiceSpec) -> list[list[str]]:
    """The system commands :func:`install` runs on the real root, in order."""
    return [
        ["groupadd", "-f", GROUP],
        ["usermod", "-aG", f"{GROUP},dialout,video", spec.user],
        ["systemctl", "daemon-reload"],
        ["systemctl", "enable", "--now", UNIT_NAME],
        ["udevadm", "control", "--reload"],
        ["udevadm", "trigger", "--subsystem-match=cpu", "--action=add"],
    ]


def install(spec: ServiceSpec, root: Path = Path("/"), run_commands: bool | None = None) -> list[Path]:
    """Install the unit and the rule below ``root``; on the real root also run :func:`install_commands`.

    Checks write access to both destinations before writing either, so a refused install changes nothing.
    """
    targets = [(root / UNIT_PATH, render_unit(spec)), (root / RULE_PATH, render_udev_rule())]
    for path, _text in targets:
        parent = next((p for p in (path.parent, *path.parents) if p.exists()), root)
        if not os.access(parent, os.W_OK):
            raise PermissionDeniedError(
                f"{parent}: permission denied; installing the service needs root: "
                "run `sudo testbed agent install-service --apply`"
            )
    written = []
    for path, text in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        written.append(path)
    if run_commands if run_commands is not None else root.resolve() == Path("/"):
        for argv in install_commands(spec):
            try:
                proc = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise HardwareError(f"{' '.join(argv)}: cannot run: {exc}") from None
            if proc.returncode != 0:
                why = (proc.stderr or proc.stdout).strip().splitlines()
                raise HardwareError(f"{' '.join(argv)} failed: {why[-1] if why else 'exit ' + str(proc.returncode)}")
    return written
