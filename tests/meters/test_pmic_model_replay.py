"""pmic:// against a fake vcgencmd, model:// against an emulated board, replay:// of recorded CSVs."""

from __future__ import annotations

import itertools
import stat
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from devices.board_profile import load_profile
from devices.errors import BadInputError, ParseError, PermissionDeniedError, UnsupportedError
from devices.fake.kernel import FakeKernel
from devices.fake.meters.pmic import PI5_RAILS, install_fake_pmic, set_pmic_rail
from devices.meters import MeterExhausted, Sample, Sampler, open_meter, write_samples_csv
from devices.meters.base import MeterEvent
from devices.meters.clock import ManualClock
from devices.meters.pmic import INPUT_FIT, parse_pmic_output

REFERENCE_OUTPUT = """\
 3V7_WL_SW_A current(0)=0.00780744A
  VDD_CORE_A current(7)=0.75012000A
  VDD_CORE_V volt(15)=0.72178200V
     EXT5V_V volt(24)=5.09066000V
      BATT_V volt(25)=0.00000000V
   HDMI_A current(11)=nanA
   HDMI_V volt(23)=5.08V
"""


def test_parse_pairs_rails_by_name_and_skips_nan() -> None:
    r = parse_pmic_output(REFERENCE_OUTPUT)
    assert r.rails_w == {"VDD_CORE": pytest.approx(0.75012 * 0.721782)}
    assert r.volts["EXT5V"] == pytest.approx(5.09066)
    assert "HDMI_A" in r.skipped


def test_pmic_meter_sums_rails_and_says_it_is_not_input_power(tmp_path: Path) -> None:
    install_fake_pmic(tmp_path)
    meter = open_meter("pmic://", sysfs_root=tmp_path)
    s = meter.read()
    expected = sum(v * a for v, a in PI5_RAILS.values())
    assert s.power_w == pytest.approx(expected, rel=1e-6)
    assert s.voltage_v == pytest.approx(5.09066)
    assert any("NOT the 5 V input power" in n for n in meter.notes)
    set_pmic_rail(tmp_path, "VDD_CORE", amps=2.0)
    s2 = meter.read()
    assert s2.power_w - s.power_w == pytest.approx(0.7218 * (2.0 - 0.7501), rel=1e-6)
    est = open_meter("pmic://?estimate_input=1&rails=VDD_CORE", sysfs_root=tmp_path).read()
    assert est.power_w == pytest.approx(INPUT_FIT[0] * 0.7218 * 2.0 + INPUT_FIT[1], rel=1e-6)


def test_pmic_nan_channel_is_skipped_and_reported(tmp_path: Path) -> None:
    install_fake_pmic(tmp_path)
    set_pmic_rail(tmp_path, "HDMI", amps=float("nan"))
    meter = open_meter("pmic://", sysfs_root=tmp_path)
    events: list[MeterEvent] = []
    meter.event_sink = events.append
    s = meter.read()
    expected = sum(v * a for r, (v, a) in PI5_RAILS.items() if r != "HDMI")
    assert s.power_w == pytest.approx(expected, rel=1e-6)
    assert any("HDMI_A" in e.message for e in events)


def test_pmic_missing_tool_and_no_permission(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="vcgencmd not found"):
        open_meter("pmic://", sysfs_root=tmp_path)
    tool = tmp_path / "usr/bin/vcgencmd"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho 'VCHI initialization failed' >&2\nexit 255\n")
    tool.chmod(tool.stat().st_mode | stat.S_IXUSR)
    with pytest.raises(PermissionDeniedError, match="'video' group"):
        open_meter("pmic://", sysfs_root=tmp_path)


def test_model_meter_follows_frequency_and_activity(make_board: Callable[[str], FakeKernel]) -> None:
    kernel = make_board("rpi4")
    from devices.cpufreq import get_policy
    from devices.sysroot import open_sysfs

    policy = get_policy(open_sysfs(kernel.root), "policy0")
    util = {"now": {0: 1.0, 1: 0.5, 2: 0.0, 3: 0.0}}
    meter = open_meter("model://rpi4", sysfs_root=kernel.root, activity=lambda: util["now"])
    policy.set_frequency(1500000)
    hi = meter.read().power_w
    # rpi4 profile at 1.5 GHz: idle 2.7 + cluster 0.5 * max(util)=1 + core 0.8 * sum(util)=1.5
    assert hi == pytest.approx(2.7 + 0.5 * 1.0 + 0.8 * 1.5)
    policy.set_frequency(600000)
    lo = meter.read().power_w
    assert lo == pytest.approx(2.7 + 0.126 * 1.0 + 0.202 * 1.5)
    util["now"] = {}
    assert meter.read().power_w == pytest.approx(2.7)


def test_model_meter_interpolates_between_steps_and_notes_missing_policy(tmp_path: Path) -> None:
    from devices.meters.power_model import model_power_w

    prof = load_profile("rpi4")
    mid = model_power_w(prof, {"policy0": 1250000.0}, {0: 1.0})
    lo = model_power_w(prof, {"policy0": 1000000.0}, {0: 1.0})
    hi = model_power_w(prof, {"policy0": 1500000.0}, {0: 1.0})
    assert mid == pytest.approx((lo + hi) / 2)
    meter = open_meter("model://rpi4", sysfs_root=tmp_path, activity=lambda: {0: 1.0})
    events: list[MeterEvent] = []
    meter.event_sink = events.append
    assert meter.read().power_w == pytest.approx(hi)
    assert any("top step" in e.message for e in events)


def test_unknown_profile_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="unknown board profile"):
        open_meter("model://nosuchboard")


def test_replay_reproduces_recorded_samples_with_their_spacing(tmp_path: Path) -> None:
    recorded = [Sample(10**9 + i * 250_000_000, 1.0 + i, voltage_v=5.0, current_a=(1.0 + i) / 5) for i in range(8)]
    path = tmp_path / "run.csv"
    write_samples_csv(path, recorded, {"meter": "um25c:///dev/rfcomm0"})
    clock = ManualClock(start_ns=77 * 10**9)
    meter = open_meter(f"replay://{path}?speed=2", clock=clock, sleep=clock.sleep)
    sampler = Sampler(meter, sleep=clock.sleep)
    got = [sampler.step() for _ in range(9)]
    assert got[-1] is None and sampler.exhausted
    replayed = [s for s in got if s is not None]
    assert [s.power_w for s in replayed] == [s.power_w for s in recorded]
    assert [b.t_ns - a.t_ns for a, b in itertools.pairwise(replayed)] == [125_000_000] * 7
    assert replayed[0].t_ns == 77 * 10**9
    assert any(e.kind == "end" for e in sampler.events)


def test_replay_loop_keeps_counters_continuous(tmp_path: Path) -> None:
    recorded = [Sample(i * 10**9, 2.0, energy_j=2.0 * i) for i in range(3)]
    path = tmp_path / "c.csv"
    write_samples_csv(path, recorded)
    clock = ManualClock()
    meter = open_meter(f"replay://{path}?loop=1", clock=clock, sleep=clock.sleep)
    energies = [meter.read().energy_j for _ in range(7)]
    assert energies == [0.0, 2.0, 4.0, 4.0, 6.0, 8.0, 8.0]


def test_replay_bad_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("t_s,power_w\n0,1\n1,x\n")
    with pytest.raises(ParseError, match=r"bad.csv:3: column power_w: 'x' is not a number"):
        open_meter(f"replay://{bad}")
    back = tmp_path / "back.csv"
    back.write_text("t_s,power_w\n1,1\n0.5,1\n")
    with pytest.raises(ParseError, match="time goes backwards"):
        open_meter(f"replay://{back}")
    with pytest.raises(BadInputError, match="file not found"):
        open_meter(f"replay://{tmp_path / 'none.csv'}")
    with pytest.raises(MeterExhausted):
        ok = tmp_path / "ok.csv"
        ok.write_text("t_s,power_w\n0,1\n")
        m = open_meter(f"replay://{ok}")
        m.read()
        m.read()


def test_replay_of_a_zero_order_hold_power_trace_integrates_the_steps(tmp_path: Path) -> None:
    from traces.power import PowerTrace, write_power

    path = tmp_path / "load.csv"
    write_power(
        PowerTrace(t_s=np.array([0.0, 1.0, 3.0, 4.0]), power_w=np.array([2.0, 6.0, 1.0, 1.0])), path, source="test"
    )
    clock = ManualClock()
    meter = open_meter(f"replay://{path}", clock=clock, sleep=clock.sleep)
    sampler = Sampler(meter, sleep=clock.sleep)
    sampler.step()
    sampler.begin_window("w")
    while sampler.step() is not None:
        pass
    result = sampler.end_window("w", wait_s=0)
    assert result is not None
    assert result.energy_j == pytest.approx(2.0 * 1 + 6.0 * 2 + 1.0 * 1, rel=1e-6)


def test_a_board_without_pmic_adc_is_unsupported_and_not_detected(
    make_board: Callable[[str], FakeKernel],
) -> None:
    from devices.meters import detect_meters

    kernel = make_board("rpi4")  # the emulated Pi 4's vcgencmd has no pmic_read_adc
    with pytest.raises(UnsupportedError, match="needs a Raspberry Pi 5"):
        open_meter("pmic://", sysfs_root=kernel.root)
    uris = [d["uri"] for d in detect_meters(kernel.root)]
    assert "pmic://" not in uris and "model://rpi4" in uris
