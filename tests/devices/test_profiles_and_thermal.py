"""Board profiles, detection, thermal zones, throttle flags and nvpmodel."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.board import Board
from devices.board_profile import (
    available_profiles,
    dump_profile_toml,
    load_profile,
    load_profile_file,
)
from devices.commands import CommandRunner
from devices.detect import detect_profile_name, resolve_profile
from devices.errors import BadInputError
from devices.sysfs import Sysfs
from devices.thermal import (
    THROTTLE_BITS,
    decode_throttled,
    parse_get_throttled,
    parse_nvpmodel_query,
    read_thermal_zones,
    read_throttle,
)

REQUIRED = {"rpi4", "rpi5", "jetson-nano", "jetson-orin-nano", "laptop"}


def test_required_profiles_exist_and_cite_sources():
    assert set(available_profiles()) >= REQUIRED
    for name in REQUIRED:
        p = load_profile(name)
        assert p.power_model.source
        for pol in p.policies:
            assert pol.frequencies_source
        assert p.levels, f"{name} has no experiment levels"


def test_pi4_frequencies_match_the_documentation():
    assert load_profile("rpi4").policies[0].frequencies_khz == [600000, 750000, 1000000, 1500000]
    assert load_profile("rpi5").policies[0].frequencies_khz == list(range(1500000, 2400001, 100000))


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_profiles_round_trip_through_toml(tmp_path, name):
    p = load_profile(name)
    path = tmp_path / f"{name}.toml"
    path.write_text(dump_profile_toml(p))
    assert load_profile_file(path) == p


def test_bad_profile_names_the_field(tmp_path):
    text = dump_profile_toml(load_profile("rpi4")).replace('default_governor = "ondemand"', 'default_governor = "x"')
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(BadInputError, match=r"bad.toml: field policies.0: .*default_governor"):
        load_profile_file(path)
    path.write_text("name = [")
    with pytest.raises(BadInputError, match="not valid TOML"):
        load_profile_file(path)


def test_unknown_profile_lists_the_available_ones():
    with pytest.raises(BadInputError, match="unknown board profile 'pi9'; available: jetson-nano"):
        load_profile("pi9")


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_detection_on_each_emulated_board(make_board, name):
    k = make_board(name)
    assert detect_profile_name(k.sysfs()) == name


def test_detection_failure_asks_for_board(tmp_path):
    (tmp_path / "proc/device-tree").mkdir(parents=True)
    (tmp_path / "proc/device-tree/model").write_bytes(b"Some Unknown Board\x00")
    with pytest.raises(BadInputError, match=r"cannot detect the board \(Some Unknown Board\); pass --board"):
        resolve_profile(Sysfs(tmp_path), None)
    assert resolve_profile(Sysfs(tmp_path), "rpi5").name == "rpi5"


def test_thermal_zones_by_type_in_celsius(make_board):
    k = make_board("jetson-nano")
    k.set_temperature("GPU-therm", 61.5)
    (k.root / "sys/class/thermal/thermal_zone2/temp").write_text("-256000\n")  # a disabled sensor
    zones = {z.type: z.temp_c for z in read_thermal_zones(k.sysfs())}
    assert zones["GPU-therm"] == 61.5 and zones["CPU-therm"] == 38.0 and zones["AO-therm"] is None


@given(st.integers(min_value=0, max_value=0xFFFFF))
def test_throttle_decode_is_bitwise(value):
    state = decode_throttled(value)
    known = sum(1 << b for b in THROTTLE_BITS)
    assert state.throttled_now == bool(value & 0xF)
    assert sum(1 << b for b, n in THROTTLE_BITS.items() if n in state.flags) == value & known
    assert parse_get_throttled(f"throttled={value:#x}") == value


def test_throttle_and_nvpmodel_through_fake_tools(make_board):
    pi = make_board("rpi4")
    pi.set_throttled_flags(0x50005)
    state = read_throttle(CommandRunner(pi.root))
    assert state is not None and state.raw == 0x50005
    assert state.flags == ("under_voltage_now", "throttled_now", "under_voltage_occurred", "throttled_occurred")
    nano = make_board("jetson-nano")
    info = Board.open(nano.root).info()
    assert info["nvpmodel"] == {"name": "MAXN", "id": 0}
    assert info["throttle"] is None  # no vcgencmd on a Jetson


def test_nvpmodel_parser():
    assert parse_nvpmodel_query("NV Power Mode: 5W\n1\n") == ("5W", 1)
    assert parse_nvpmodel_query("garbage") is None


def test_snapshot_records_state_for_discarding_throttled_runs(make_board):
    k = make_board("rpi4")
    k.set_lying(hw_cap_khz=750000)
    snap = Board.open(k.root).snapshot()
    assert snap["throttle"]["throttled_now"] is True
    assert snap["frequencies"]["policy0"]["hardware_khz"] == 750000
    assert snap["thermal_c"] == {"cpu-thermal": 45.0}
