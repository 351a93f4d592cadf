"""The real `testbed board` commands, run as a user runs them, against emulated boards."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

P0 = "sys/devices/system/cpu/cpufreq/policy0"


def run_testbed(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


def assert_one_line_error(res: subprocess.CompletedProcess[str], code: int, fragment: str) -> None:
    assert res.returncode == code, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    assert fragment in lines[0]
    assert "Traceback" not in res.stderr


@pytest.fixture
def pi(tmp_path: Path) -> Path:
    root = tmp_path / "pi"
    res = run_testbed("board", "emulate", "rpi4", "--root", root)
    assert res.returncode == 0, res.stderr
    return root


def test_info_json_contract(pi):
    res = run_testbed("board", "info", "--sysfs-root", pi, "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["board"] == "rpi4" and data["emulated"] is True
    (pol,) = data["policies"]
    for key in ("name", "cpus", "available_khz", "governors", "governor", "min_khz", "max_khz", "cur_khz"):
        assert key in pol
    assert pol["available_khz"] == [600000, 750000, 1000000, 1500000]
    assert data["thermal_zones"][0]["type"] == "cpu-thermal"


def test_human_info_mentions_each_policy(tmp_path):
    root = tmp_path / "orin"
    assert run_testbed("board", "emulate", "jetson-orin-nano", "--root", root).returncode == 0
    res = run_testbed("board", "info", "--sysfs-root", root)
    assert res.returncode == 0 and "policy0" in res.stdout and "policy4" in res.stdout
    assert "17000000.ga10b" in res.stdout


def test_set_then_restore(pi):
    res = run_testbed("board", "set", "--policy", "policy0", "--freq-khz", "750000", "--sysfs-root", pi, "--json")
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)["results"][0]
    assert out["requested_khz"] == 750000 and out["hardware_khz"] == 750000 and not out["mismatch"]
    assert (pi / P0 / "scaling_cur_freq").read_text().strip() == "750000"
    res = run_testbed("board", "restore", "--sysfs-root", pi)
    assert res.returncode == 0 and "restored policy0" in res.stdout
    assert (pi / P0 / "scaling_governor").read_text().strip() == "ondemand"
    assert "nothing to restore" in run_testbed("board", "restore", "--sysfs-root", pi).stdout


def test_set_by_profile_level(tmp_path):
    root = tmp_path / "orin"
    assert run_testbed("board", "emulate", "jetson-orin-nano", "--root", root).returncode == 0
    res = run_testbed("board", "set", "--level", "f883", "--sysfs-root", root, "--json")
    assert res.returncode == 0, res.stderr
    assert [r["policy"] for r in json.loads(res.stdout)["results"]] == ["policy0", "policy4"]


def test_lying_board_warns_about_the_mismatch(tmp_path):
    root = tmp_path / "pi5"
    assert run_testbed("board", "emulate", "rpi5", "--root", root, "--hw-floor-khz", "1800000").returncode == 0
    res = run_testbed("board", "set", "--policy", "policy0", "--freq-khz", "1500000", "--sysfs-root", root)
    assert res.returncode == 0
    assert "hardware runs at 1800000 kHz" in res.stderr


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (("--policy", "policy9", "--freq-khz", "750000"), "unknown policy 'policy9'; this board has: policy0"),
        (("--policy", "policy0", "--freq-khz", "700000"), "700000 kHz is not an available frequency"),
        (("--level", "f42"), "unknown level 'f42'"),
    ],
)
def test_bad_input_exits_2_and_changes_nothing(pi, args, fragment):
    before = (pi / P0 / "scaling_governor").read_text()
    res = run_testbed("board", "set", *args, "--sysfs-root", pi)
    assert_one_line_error(res, 2, fragment)
    assert (pi / P0 / "scaling_governor").read_text() == before


def test_read_only_file_exits_2_and_nothing_is_left_changed(pi):
    (pi / P0 / "scaling_max_freq").chmod(0o444)
    res = run_testbed("board", "set", "--policy", "policy0", "--freq-khz", "750000", "--sysfs-root", pi)
    assert_one_line_error(res, 2, "scaling_max_freq: permission denied")
    assert (pi / P0 / "scaling_governor").read_text().strip() == "ondemand"
    assert (pi / P0 / "scaling_cur_freq").read_text().strip() == "1500000"


def test_missing_cpufreq_directory_exits_2(tmp_path):
    res = run_testbed("board", "set", "--policy", "policy0", "--freq-khz", "1", "--sysfs-root", tmp_path)
    assert_one_line_error(res, 2, "no cpufreq directory")


def test_missing_root_exits_2(tmp_path):
    assert_one_line_error(run_testbed("board", "info", "--sysfs-root", tmp_path / "nope"), 2, "is not a directory")


def test_usage_error_exits_2(pi):
    res = run_testbed("board", "set", "--policy", "policy0", "--sysfs-root", pi)
    assert_one_line_error(res, 2, "--policy NAME and --freq-khz F are required")
    assert run_testbed("board", "set", "--freq-khz", "x").returncode == 2


def test_emulate_updates_lying_modes_of_an_existing_board(pi):
    res = run_testbed("board", "emulate", "rpi4", "--root", pi, "--hw-cap-khz", "1000000")
    assert res.returncode == 0 and "updated" in res.stdout
    data = json.loads(run_testbed("board", "info", "--sysfs-root", pi, "--json").stdout)
    assert data["policies"][0]["hardware_khz"] == 1000000
    assert data["throttle"]["throttled_now"] is True


def test_profiles_json():
    data = json.loads(run_testbed("board", "profiles", "--json").stdout)
    assert {"rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "laptop"} <= {p["name"] for p in data}
