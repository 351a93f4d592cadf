"""`testbed doctor` against emulated boards: passes on a healthy Pi 4, fails with the fix on a broken tree.

Board-side (no torch): `make board-check` runs this file on arm64 too.
"""

from __future__ import annotations

import json
import os
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from devices.cpufreq import list_policies
from devices.doctor import DoctorOptions, probe_write_access, run_doctor
from devices.fake.kernel import FakeKernel
from devices.sysroot import open_sysfs
from tests.conftest import CliResult

P0 = "sys/devices/system/cpu/cpufreq/policy0"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _states(root: Path) -> list[object]:
    return [p.state() for p in list_policies(open_sysfs(root))]


def _remove_write(root: Path, *leaves: str) -> None:
    for leaf in leaves:
        f = root / P0 / leaf
        f.chmod(stat.S_IMODE(f.stat().st_mode) & ~0o222)


def test_doctor_passes_on_an_emulated_pi4(
    make_board: Callable[[str], FakeKernel], cli: Callable[..., CliResult]
) -> None:
    root = make_board("rpi4").root
    before = _states(root)
    res = cli("doctor", "--sysfs-root", root, "--meter", "model://rpi4", "--meter-seconds", "0.5",
              "--agent-port", _free_port(), "--json")  # fmt: skip
    assert res.code == 0, res.err
    report = json.loads(res.out)
    by_name = {c["name"]: c for c in report["checks"]}
    assert report["ok"] and report["counts"]["FAIL"] == 0
    for name in ("board", "cpufreq", "write-access", "round-trip", "thermal", "throttle", "meter", "clock",
                 "agent-port", "saved-state"):  # fmt: skip
        assert by_name[name]["status"] == "PASS", by_name[name]
    assert "4 levels set" in by_name["round-trip"]["detail"]
    assert "Hz" in by_name["meter"]["detail"]
    assert _states(root) == before  # every level was set and the original state is back


def test_doctor_fails_with_the_fix_without_userspace_write_access(
    make_board: Callable[[str], FakeKernel], cli: Callable[..., CliResult]
) -> None:
    root = make_board("rpi4").root
    _remove_write(root, "scaling_governor", "scaling_setspeed")
    before = _states(root)
    res = cli("doctor", "--sysfs-root", root, "--agent-port", "0")
    assert res.code == 1
    lines = res.out.splitlines()
    fail = next(i for i, ln in enumerate(lines) if ln.startswith("FAIL") and "write-access" in ln)
    assert "scaling_governor" in lines[fail] and "scaling_setspeed" in lines[fail]
    fix = lines[fail + 1].strip()
    assert fix.startswith("fix:") and "install-service --apply" in fix and "usermod -aG testbed" in fix
    assert any(ln.startswith("FAIL") and "round-trip" in ln for ln in lines)
    err = res.err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: doctor: write-access")
    assert _states(root) == before  # the probe changed nothing


def test_write_probe_changes_nothing_and_finds_each_denied_file(make_board: Callable[[str], FakeKernel]) -> None:
    kernel = make_board("rpi4")
    policy = list_policies(kernel.sysfs())[0]
    before = (policy.state(), (kernel.root / P0 / "stats/total_trans").read_text())
    assert probe_write_access(policy) == []
    _remove_write(kernel.root, "scaling_max_freq")
    assert probe_write_access(policy) == ["scaling_max_freq"]
    assert (policy.state(), (kernel.root / P0 / "stats/total_trans").read_text()) == before


def test_lying_hardware_and_throttling_are_reported(make_board: Callable[[str], FakeKernel]) -> None:
    kernel = make_board("rpi4")
    kernel.set_lying(hw_cap_khz=1000000)  # also raises the throttle flags "now"
    report = run_doctor(DoctorOptions(kernel.root, agent_port=0))
    by_name = {c.name: c for c in report.checks}
    assert by_name["round-trip"].status == "WARN" and "1500000->1000000" in by_name["round-trip"].detail
    assert by_name["throttle"].status == "FAIL" and "supply" in (by_name["throttle"].fix or "")
    assert not report.ok


def test_busy_agent_port_and_missing_meter(make_board: Callable[[str], FakeKernel]) -> None:
    root = make_board("rpi4").root
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen(1)
        port = other.getsockname()[1]
        report = run_doctor(DoctorOptions(root, agent_port=port, round_trip=False))
    by_name = {c.name: c for c in report.checks}
    assert by_name["agent-port"].status == "FAIL" and "--port N" in (by_name["agent-port"].fix or "")
    assert by_name["meter"].status == "WARN" and "--meter URI" in (by_name["meter"].fix or "")
    assert "round-trip" not in by_name


def test_no_userspace_governor_is_a_warning(make_board: Callable[[str], FakeKernel]) -> None:
    report = run_doctor(DoctorOptions(make_board("laptop").root, agent_port=0))
    cpufreq = [c for c in report.checks if c.name == "cpufreq"]
    assert cpufreq and all(c.status == "WARN" and "modprobe cpufreq_userspace" in (c.fix or "") for c in cpufreq)
    assert all(c.status != "FAIL" for c in report.checks if c.name in ("write-access", "round-trip"))


def test_bad_arguments_are_one_line_exit_2(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    res = cli("doctor", "--sysfs-root", tmp_path / "nosuch")
    assert res.code == 2 and res.err.startswith("error: ") and len(res.err.strip().splitlines()) == 1
    root = tmp_path / "pi"
    FakeKernel.create(root, "rpi4")
    res = cli("doctor", "--sysfs-root", root, "--meter", "nosuch://x", "--agent-port", "0")
    assert res.code == 2 and "nosuch" in res.err and len(res.err.strip().splitlines()) == 1


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file: the real permission check needs a user")
def test_real_permission_denied_names_the_fix(tmp_path: Path) -> None:
    root = tmp_path / "plain"
    (root / P0).mkdir(parents=True)
    for leaf, value in (("scaling_governor", "ondemand"), ("scaling_available_governors", "ondemand userspace"),
                        ("scaling_min_freq", "600000"), ("scaling_max_freq", "1500000"),
                        ("scaling_setspeed", "<unsupported>")):  # fmt: skip
        (root / P0 / leaf).write_text(value + "\n")
    _remove_write(root, "scaling_governor")
    policy = list_policies(open_sysfs(root))[0]
    assert probe_write_access(policy) == ["scaling_governor"]
