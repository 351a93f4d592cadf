"""Device tests that are safe on a real board, run against emulated boards always and the real one on request.

Every test here takes :func:`tests.conftest.board_under_test` or :func:`tests.conftest.meter_under_test`:
by default the bodies run against fake-kernel trees and a fake meter (so they are never dead code) and
the ``hardware`` parameters are skipped. On a board::

    pytest tests/devices/test_hardware.py --hardware                      # read-only checks of /sys
    pytest tests/devices/test_hardware.py --hardware --hardware-writes    # + a set-and-restore round trip
    pytest tests/devices/test_hardware.py --hardware --meter-uri um25c:///dev/rfcomm0

Reads only, except the round trip, which runs on a real board only with ``--hardware-writes`` and puts
the governor and limits back as they were (through :class:`devices.guard.BoardGuard`, also on failure).
"""

from __future__ import annotations

import json
import math
import time

import pytest

from devices.board import Board
from devices.commands import CommandRunner
from devices.cpufreq import CpufreqPolicy, list_policies
from devices.detect import detect_profile_name
from devices.devfreq import list_devfreq
from devices.guard import BoardGuard
from devices.meters.registry import open_meter
from devices.meters.sampler import Sampler
from devices.thermal import read_thermal_zones
from tests.conftest import BoardUnderTest, MeterUnderTest


def _policies(board: BoardUnderTest) -> list[CpufreqPolicy]:
    policies = list_policies(board.sysfs, CommandRunner(board.sysfs.root))
    if not policies:
        assert board.real, "an emulated board always has cpufreq policies"
        pytest.skip("this machine exposes no cpufreq policies")
    return policies


def test_policies_read_consistently(board_under_test: BoardUnderTest) -> None:
    seen: set[int] = set()
    for p in _policies(board_under_test):
        cpus = p.cpus
        assert cpus and not seen & set(cpus), f"{p.name}: CPUs {cpus} empty or shared with another policy"
        seen |= set(cpus)
        lo, hi = p.hw_min_khz, p.hw_max_khz
        assert 0 < lo <= hi
        assert lo <= p.min_khz <= p.max_khz <= hi
        table = p.available_khz
        assert table == sorted(table) and all(lo <= f <= hi for f in table)
        cur = p.cur_khz
        assert cur is None or cur > 0
        json.dumps(p.info())  # what `board info --json` prints


def test_governors_are_listed(board_under_test: BoardUnderTest) -> None:
    for p in _policies(board_under_test):
        governors = p.governors
        if governors:  # some drivers list none
            assert p.governor in governors
    for dev in list_devfreq(board_under_test.sysfs):
        if dev.governors:
            assert dev.governor in dev.governors
        assert dev.available_hz == sorted(dev.available_hz)


def test_thermal_zones_are_plausible(board_under_test: BoardUnderTest) -> None:
    zones = read_thermal_zones(board_under_test.sysfs)
    if not board_under_test.real:
        assert zones, "emulated boards have thermal zones"
    assert [z.index for z in zones] == sorted({z.index for z in zones})
    for z in zones:
        assert z.type
        assert z.temp_c is None or -60.0 < z.temp_c < 150.0, f"{z.type}: {z.temp_c} °C"


def test_board_info_names_the_detected_board(board_under_test: BoardUnderTest) -> None:
    info = Board(board_under_test.sysfs).info()
    json.dumps(info)
    assert info["emulated"] is (not board_under_test.real)
    assert info["board"] == detect_profile_name(board_under_test.sysfs)
    if board_under_test.profile is not None:
        assert info["board"] == board_under_test.profile


def test_set_and_restore_round_trip(board_under_test: BoardUnderTest) -> None:
    if not board_under_test.writes_allowed:
        pytest.skip("changes the real board's frequency: pass --hardware-writes as well")
    candidates = [p for p in _policies(board_under_test) if len(p.available_khz) >= 2]
    if not candidates:
        pytest.skip("no policy lists two or more frequencies")
    policy = candidates[0]
    before = policy.state()
    target = next(f for f in policy.available_khz if f != policy.cur_khz)
    with BoardGuard(board_under_test.sysfs, install_signal_handlers=False) as guard:
        rb = guard.set_cpu_frequency(policy, target)
        assert rb.requested_khz == target
        if not board_under_test.real:  # a real governor may move scaling_cur_freq on its own
            assert rb.scaling_cur_khz == target and not rb.mismatch
    assert policy.state() == before  # the guard restored governor, limits and setspeed on exit


def test_meter_window_measures_energy(meter_under_test: MeterUnderTest) -> None:
    meter = open_meter(meter_under_test.uri, sysfs_root=meter_under_test.sysfs_root)
    with Sampler(meter) as sampler:
        assert sampler.wait_for_samples(1, max(3.0, 3 * meter.timeout_s)), "the meter delivered no sample"
        sampler.begin_window("hardware")
        time.sleep(0.3)
        result = sampler.end_window("hardware")
    assert result is not None and result.energy_available
    assert result.energy_j is not None and result.mean_power_w is not None
    assert result.samples >= 1 and result.duration_s > 0
    assert result.energy_j > 0 and math.isfinite(result.mean_power_w) and result.mean_power_w > 0
    if meter_under_test.expected_power_w is not None:
        assert result.mean_power_w == pytest.approx(meter_under_test.expected_power_w, rel=0.01)
