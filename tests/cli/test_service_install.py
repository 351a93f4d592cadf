"""`testbed agent install-service`: the unit runs the agent as a normal user; the rule grants the group."""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable
from pathlib import Path

import pytest

from devices.errors import BadInputError, PermissionDeniedError
from devices.service_install import RULE_PATH, UNIT_PATH, ServiceSpec, install, render_udev_rule, render_unit
from devices.sysfs import permission_hint
from tests.conftest import CliResult


def _spec(**kw: object) -> ServiceSpec:
    base: dict[str, object] = {"user": "pi", "home": Path("/home/pi"), "testbed_exe": "/opt/venv/bin/testbed"}
    return ServiceSpec(**(base | kw))  # type: ignore[arg-type]


def test_unit_runs_as_the_user_with_the_groups_it_needs() -> None:
    unit = render_unit(_spec(meter="um25c:///dev/rfcomm0", bt_mac="00:15:A3:00:55:3F", port=9000))
    lines = dict(ln.split("=", 1) for ln in unit.splitlines() if "=" in ln and not ln.startswith("#"))
    assert lines["User"] == "pi" and lines["Group"] == "testbed" and "dialout" in lines["SupplementaryGroups"]
    assert lines["StateDirectory"] == "testbed" and lines["KillSignal"] == "SIGTERM"
    argv = shlex.split(lines["ExecStart"])
    assert argv[:3] == ["/opt/venv/bin/testbed", "agent", "serve"]
    assert argv[argv.index("--token-file") + 1] == "/home/pi/.config/testbed/token"
    assert argv[argv.index("--port") + 1] == "9000" and "um25c:///dev/rfcomm0" in argv
    assert "ExecStartPre=+/usr/bin/rfcomm bind 0 00:15:A3:00:55:3F" in unit


def test_rule_is_the_one_the_permission_errors_name() -> None:
    rule = render_udev_rule()
    assert 'SUBSYSTEM=="cpu"' in rule and "chgrp -R testbed /sys/devices/system/cpu/cpufreq" in rule
    assert "chgrp -R testbed /sys/devices/system/cpu/cpufreq" in permission_hint("sys/devices/system/cpu/cpufreq")


@pytest.mark.parametrize(
    ("kw", "fragment"),
    [
        ({"user": "Bad User"}, "user name"),
        ({"port": 0}, "--port"),
        ({"bt_mac": "xx"}, "Bluetooth address"),
        ({"bt_mac": "00:15:A3:00:55:3F"}, "--bt-mac needs --meter"),
    ],
)
def test_bad_settings_are_refused(kw: dict[str, object], fragment: str) -> None:
    with pytest.raises(BadInputError, match=fragment):
        _spec(**kw)


def test_apply_below_a_root_installs_both_files(tmp_path: Path) -> None:
    written = install(_spec(), tmp_path, run_commands=False)
    assert written == [tmp_path / UNIT_PATH, tmp_path / RULE_PATH]
    assert "User=pi" in (tmp_path / UNIT_PATH).read_text()


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write anywhere")
def test_apply_without_root_changes_nothing(tmp_path: Path) -> None:
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    with pytest.raises(PermissionDeniedError, match="sudo testbed agent install-service --apply"):
        install(_spec(), root, run_commands=False)
    assert not any(root.iterdir())


def test_cli_writes_the_files_to_out(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    res = cli("agent", "install-service", "--out", tmp_path / "svc", "--user", "pi", "--meter", "um25c:///dev/rfcomm0")
    assert res.code == 0, res.err
    assert (tmp_path / "svc" / "testbed-agent.service").is_file()
    assert (tmp_path / "svc" / "99-testbed-cpufreq.rules").read_text() == render_udev_rule()
    bad = cli("agent", "install-service", "--out", tmp_path / "svc2", "--meter", "nosuch://x")
    assert bad.code == 2 and not (tmp_path / "svc2").exists()
