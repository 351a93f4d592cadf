"""INA3221 (JetPack 4 IIO / JetPack 5 hwmon) and RAPL meters against fake sysfs trees."""

from __future__ import annotations

import builtins
import os
from pathlib import Path

import pytest

from devices.errors import BadInputError, PermissionDeniedError, UnsupportedError
from devices.fake.meters.sysfs_trees import (
    AGX_ORIN_RAILS,
    build_ina3221_jp4,
    build_ina3221_jp5,
    build_rapl,
    set_ina3221_rail,
    set_rapl_energy,
)
from devices.meters import Sampler, open_meter
from devices.meters.clock import ManualClock
from devices.meters.ina3221 import Ina3221Meter
from devices.meters.rapl import RaplMeter


def deny_energy_uj(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make ``energy_uj`` root-only as on a real kernel (root ignores chmod, so patch the opens)."""
    real_open, real_os_open = builtins.open, os.open

    def guarded_open(file, *args, **kwargs):
        if str(file).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    def guarded_os_open(path, *args, **kwargs):
        if str(path).endswith("energy_uj"):
            raise PermissionError(13, "Permission denied", str(path))
        return real_os_open(path, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)


def test_jp4_total_rail_by_label_is_not_summed(tmp_path: Path) -> None:
    build_ina3221_jp4(tmp_path, {"POM_5V_GPU": (5000, 100), "POM_5V_IN": (5080, 800), "POM_5V_CPU": (5000, 300)})
    meter = open_meter("ina3221://", sysfs_root=tmp_path)
    assert isinstance(meter, Ina3221Meter)
    s = meter.read()
    # JP4 reports in_power in mW: 5080 mV * 800 mA = 4064 mW; the other rails are not added.
    assert s.power_w == pytest.approx(4.064)
    assert s.voltage_v == pytest.approx(5.08) and s.current_a == pytest.approx(0.8)
    assert meter.rail is not None and meter.rail.label == "POM_5V_IN"


def test_jp5_hwmon_rail_found_by_label_whatever_the_hwmon_number(tmp_path: Path) -> None:
    build_ina3221_jp5(tmp_path, hwmon=7, update_interval_ms=20)
    meter = open_meter("ina3221://", sysfs_root=tmp_path)
    assert isinstance(meter, Ina3221Meter)
    s = meter.read()
    assert s.power_w == pytest.approx(5.056 * 1.280)  # VDD_IN only
    assert meter.poll_period_s == pytest.approx(0.02)  # from update_interval
    one = open_meter("ina3221://?rail=vdd_soc&rate_hz=100", sysfs_root=tmp_path)
    assert one.read().power_w == pytest.approx(5.048 * 0.400)
    assert one.poll_period_s == pytest.approx(0.01)
    assert "sum of shunt voltages" not in [r.label for r in meter.rails]


def test_agx_without_total_rail_asks_for_a_rail(tmp_path: Path) -> None:
    build_ina3221_jp5(tmp_path, AGX_ORIN_RAILS)
    with pytest.raises(BadInputError, match=r"\?rail=NAME"):
        open_meter("ina3221://", sysfs_root=tmp_path)
    with pytest.raises(BadInputError, match="rails: VDD_GPU_SOC"):
        open_meter("ina3221://?rail=VDD_IN", sysfs_root=tmp_path)


def test_no_ina3221_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="Jetson"):
        open_meter("ina3221://", sysfs_root=tmp_path)


def test_ina3221_window_energy_with_a_manual_clock(tmp_path: Path) -> None:
    build_ina3221_jp5(tmp_path, {"VDD_IN": (5000, 1000)}, update_interval_ms=100)
    clock = ManualClock()
    meter = open_meter("ina3221://", sysfs_root=tmp_path, clock=clock)
    sampler = Sampler(meter, sleep=clock.sleep)
    sampler.step()
    sampler.begin_window("w")
    for i in range(10):
        clock.advance(0.1)
        set_ina3221_rail(tmp_path, "VDD_IN", 5000, 1000 + 200 * (i + 1))  # power ramps 5 W -> 15 W
        sampler.step()
    result = sampler.end_window("w", wait_s=0)
    assert result is not None
    assert result.energy_j == pytest.approx((5.0 + 15.0) / 2 * 1.0)
    assert result.samples == 11 and result.complete  # the sample at the window's start counts
    assert result.peak_power_w == pytest.approx(15.0)


def test_rapl_counter_wraps_and_packages_are_summed(tmp_path: Path) -> None:
    max_uj = 1_000_000  # a tiny range so that the counter wraps
    build_rapl(tmp_path, {"intel-rapl:0": "package-0", "intel-rapl:0:0": "core", "intel-rapl:1": "package-1"}, max_uj)
    set_rapl_energy(tmp_path, "intel-rapl:0", 900_000)
    set_rapl_energy(tmp_path, "intel-rapl:1", 0)
    clock = ManualClock()
    meter = open_meter("rapl://?rate_hz=10", sysfs_root=tmp_path, clock=clock)
    assert isinstance(meter, RaplMeter)
    assert [d.name for d in meter.domains] == ["package-0", "package-1"]
    sampler = Sampler(meter, sleep=clock.sleep)
    sampler.step()  # a sample before the window lets the counter be read at its start
    sampler.begin_window("w")
    pkg0, pkg1 = 900_000, 0
    for _ in range(10):
        clock.advance(0.1)
        pkg0 = (pkg0 + 300_000) % max_uj  # 3 W on package 0: wraps several times
        pkg1 += 100_000  # 1 W on package 1
        set_rapl_energy(tmp_path, "intel-rapl:0", pkg0)
        set_rapl_energy(tmp_path, "intel-rapl:1", pkg1)
        s = sampler.step()
        assert s is not None and s.power_w == pytest.approx(4.0)
    result = sampler.end_window("w", wait_s=0)
    assert result is not None
    assert result.energy_method == "counter"
    assert result.energy_j == pytest.approx(4.0)
    assert meter.wraps >= 2


def test_rapl_domain_selection(tmp_path: Path) -> None:
    build_rapl(tmp_path)
    for domain in ("psys", "dram"):
        meter = open_meter(f"rapl://?domain={domain}", sysfs_root=tmp_path)
        assert isinstance(meter, RaplMeter) and [d.name for d in meter.domains] == [domain]
    with pytest.raises(BadInputError, match="domains: core, dram, package-0, psys, uncore"):
        open_meter("rapl://?domain=gpu", sysfs_root=tmp_path)


def test_rapl_root_only_energy_says_how_to_grant_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_rapl(tmp_path)
    deny_energy_uj(monkeypatch)
    with pytest.raises(PermissionDeniedError, match=r"CVE-2020-8694.*0444"):
        open_meter("rapl://", sysfs_root=tmp_path)


def test_no_powercap_is_unsupported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="intel_rapl"):
        open_meter("rapl://", sysfs_root=tmp_path)
