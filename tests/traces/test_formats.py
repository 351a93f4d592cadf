"""The three canonical formats: round trips, semantics, and every bad-input class with file and line."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from devices.errors import BadInputError, ParseError
from traces.battery import BatteryTrace, read_battery, write_battery
from traces.domains import parse_domains
from traces.dvfs import DvfsEvent, DvfsTrace, compress, read_dvfs, write_dvfs
from traces.power import PowerTrace, constant_power, read_power, write_power
from traces.units import UnknownUnitError, split_column

DVFS = """# dvfs_trace v1; semantics=zero_order_hold; domains: policy0=cpu0-3, policy4=cpu4-7; duration_s=3
t_s,domain,freq_khz
0,policy0,600000
0,policy4,1000000
1.5,policy0,1500000
2,policy4,2000000
"""


def test_dvfs_read_semantics(write):
    d = read_dvfs(write("d.csv", DVFS))
    assert d.domain_names() == ["policy0", "policy4"]
    assert d.end_s == 3.0
    assert d.freq_at("policy0", 1.49) == 600000
    assert d.freq_at("policy0", 1.5) == 1500000
    assert d.freq_at("policy4", 10.0) == 2000000
    res = d.residency_s()
    assert res["policy0"] == {600000: 1.5, 1500000: 1.5}
    assert res["policy4"] == {1000000: 2.0, 2000000: 1.0}


def test_dvfs_round_trip(tmp_path, write):
    d = read_dvfs(write("d.csv", DVFS))
    out = tmp_path / "out.csv"
    write_dvfs(d, out)
    again = read_dvfs(out)
    assert again.events == d.events
    assert again.duration_s == d.duration_s
    assert again.domains == d.domains


def test_dvfs_unit_conversion(write):
    d = read_dvfs(write("d.csv", "t_ms,domain,freq_mhz\n0,gpu,76.8\n500,gpu,921.6\n"))
    assert d.events == [DvfsEvent(0.0, "gpu", 76800), DvfsEvent(0.5, "gpu", 921600)]


def test_compress_drops_repeats_and_superseded_rows():
    ev = [
        DvfsEvent(0.0, "a", 1),
        DvfsEvent(0.0, "b", 5),
        DvfsEvent(1.0, "a", 1),  # no change
        DvfsEvent(2.0, "a", 2),
        DvfsEvent(2.0, "a", 3),  # supersedes the row above
        DvfsEvent(3.0, "a", 3),
    ]
    assert compress(ev) == [DvfsEvent(0.0, "a", 1), DvfsEvent(0.0, "b", 5), DvfsEvent(2.0, "a", 3)]


BAD_DVFS = [
    ("t_s,domain,freq_khz\n0,p0,600000\n2,p0,700000\n1,p0,800000\n", 4, "not non-decreasing"),
    ("t_s,domain,freq_khz\n0,p0,nan\n", 2, "NaN"),
    ("t_s,domain,freq_khz\n0,p0,-600000\n", 2, "must be positive"),
    ("t_s,domain,freq_thz\n0,p0,1\n", 1, "unknown unit 'thz'"),
    ("t_s,domain\n0,p0\n", 1, "missing column 'freq_khz'"),
    ("t_s,freq_khz\n0,600000\n", 1, "missing column 'domain'"),
    ("# dvfs_trace v1; domains: policy0=0-3\nt_s,domain,freq_khz\n0,policy9,600000\n", 3, "unknown domain 'policy9'"),
    ("t_s,domain,freq_khz\n0,p0,600000\n0,p0,700000\n", 3, "second row"),
    ("t_s,domain,freq_khz\n-1,p0,600000\n", 2, "negative time"),
    ("t_s,domain,freq_khz\n0,p0,abc\n", 2, "not a number"),
    ("t_s,domain,freq_khz\n0,p0\n", 2, "expected 3 fields"),
    ("# only a comment\n", None, "no header"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_DVFS)
def test_dvfs_bad_input_names_file_line_problem(write, text, line, problem):
    p = write("bad.csv", text)
    with pytest.raises(ParseError) as info:
        read_dvfs(p)
    msg = str(info.value)
    assert msg.startswith(f"{p}:{line}: " if line else f"{p}: ")
    assert problem in msg
    assert "\n" not in msg


def test_dvfs_known_domains_from_caller(write):
    p = write("d.csv", "t_s,domain,freq_khz\n0,policy0,600000\n0,gpu,100\n")
    with pytest.raises(ParseError, match=r":3: unknown domain 'gpu'"):
        read_dvfs(p, known_domains=["policy0", "policy4"])


def test_missing_file_is_parse_error(tmp_path):
    with pytest.raises(ParseError, match="file not found"):
        read_dvfs(tmp_path / "nope.csv")


def test_domains_spec():
    d = parse_domains("little=0-1,4-5,big=2-3,gpu=")
    assert d.domains == {"little": (0, 1, 4, 5), "big": (2, 3), "gpu": ()}
    assert d.domain_of(4) == "little"
    assert d.domain_of(9) is None
    assert parse_domains(d.to_text()) == d
    for bad in ["", "0-3", "a=0-3,a=4", "a=0-3,b=3", "a=x", "a=3-1", "9x=1"]:
        with pytest.raises(BadInputError):
            parse_domains(bad)


def test_units():
    assert split_column("power_mw") == ("power", "mw")
    assert split_column("soc") == ("soc", "")
    assert split_column("domain") is None
    with pytest.raises(UnknownUnitError):
        split_column("power_hp")
    with pytest.raises(UnknownUnitError):
        split_column("voltage")


# ---- power traces -------------------------------------------------------------------------------


def test_comments_are_never_read_as_csv(write):
    p = read_power(write("p.csv", '#a,"unbalanced quote\nt_s,power_w\n# mid, "x\n0,1\n1,2\n# duration_s=3\n'))
    assert p.power_w.tolist() == [1.0, 2.0]
    assert p.period_s == 3.0


def test_power_period_and_energy(write):
    p = read_power(write("p.csv", "t_s,power_w\n0,1\n1,3\n"))
    assert p.period_s == 2.0  # the last hold lasts as long as the one before
    assert p.energy_j() == 4.0
    assert p.mean_power_w() == 2.0
    q = read_power(write("q.csv", "# power_trace v1; duration_s=4\nt_ms,power_mw\n0,1000\n1000,3000\n"))
    assert q.period_s == 4.0
    assert q.energy_j() == 1.0 + 9.0
    c = constant_power(2.5)
    assert math.isinf(c.period_s) and c.mean_power_w() == 2.5


def test_power_round_trip(tmp_path):
    tr = PowerTrace(np.array([0.0, 0.25, 1.0]), np.array([0.5, 2.125, 0.0]), 2.0, {"source": "test"})
    write_power(tr, tmp_path / "p.csv")
    back = read_power(tmp_path / "p.csv")
    assert back.t_s.tolist() == tr.t_s.tolist()
    assert back.power_w.tolist() == tr.power_w.tolist()
    assert back.duration_s == 2.0


BAD_POWER = [
    ("t_s,power_w\n0,1\n0,2\n", 3, "not increasing"),
    ("t_s,power_w\n0,-1\n", 2, "negative power"),
    ("t_s,power_w\n1,1\n", 2, "first row must be at t_s=0"),
    ("t_s,power_w\n0,inf\n", 2, "infinite"),
    ("t_s,power_hp\n0,1\n", 1, "unknown unit"),
    ("t_s,watts\n0,1\n", 1, "missing column 'power_w'"),
    ("# power_trace v1; duration_s=1\nt_s,power_w\n0,1\n2,1\n", 1, "must be after the last row"),
    ("t_s,power_w\n", 1, "no data rows"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_POWER)
def test_power_bad_input(write, text, line, problem):
    p = write("bad.csv", text)
    with pytest.raises(ParseError) as info:
        read_power(p)
    assert str(info.value).startswith(f"{p}:{line}: ")
    assert problem in str(info.value)


def test_power_trace_refuses_wrong_kind(write):
    with pytest.raises(ParseError, match="dvfs_trace file, not a power_trace"):
        read_power(write("d.csv", DVFS))


# ---- battery traces -----------------------------------------------------------------------------

BATTERY = """# battery_trace v1; current_sign=charge_positive; source=test
t_s,voltage_v,current_ma,power_w,soc_pct,temp_c,status
0,4.2,-500,-2.1,100,25,Discharging
1,4.1,-400,,99,,Discharging
"""


def test_battery_sign_normalised_and_units(write):
    b = read_battery(write("b.csv", BATTERY))
    assert b.current_a.tolist() == [0.5, 0.4]
    assert b.power_w[0] == 2.1 and math.isnan(b.power_w[1])  # empty cell: not measured
    assert b.soc.tolist() == [1.0, 0.99]
    assert b.meta["current_sign"] == "discharge_positive"
    assert b.meta["source_current_sign"] == "charge_positive"
    assert b.status == ["Discharging", "Discharging"]


def test_battery_round_trip(tmp_path, write):
    b = read_battery(write("b.csv", BATTERY))
    write_battery(b, tmp_path / "out.csv")
    back = read_battery(tmp_path / "out.csv")
    assert back.current_a.tolist() == b.current_a.tolist()
    assert np.array_equal(back.power_w, b.power_w, equal_nan=True)
    assert back.meta["current_sign"] == "discharge_positive"


def test_battery_delivered_energy():
    t = np.array([0.0, 1.0, 2.0])
    tr = BatteryTrace(t, t + 4, t, np.array([1.0, 3.0, 3.0]), t / 4, t)
    assert tr.delivered_energy_j() == 2.0 + 3.0


BH = "# battery_trace v1; current_sign=discharge_positive\n"
BC = "t_s,voltage_v,current_a,power_w,soc,temp_c\n"
BAD_BATTERY = [
    ("t_s,voltage_v,current_a,power_w,soc,temp_c\n0,4,1,4,1,25\n", 1, "does not declare current_sign"),
    (
        "# battery_trace v1; current_sign=up\nt_s,voltage_v,current_a,power_w,soc,temp_c\n0,4,1,4,1,25\n",
        1,
        "unknown current_sign",
    ),
    (
        BH + "t_s,voltage_v,current_a,power_w,soc\n0,4,1,4,1\n",
        2,
        "missing column 'temp_c'",
    ),
    (
        BH + BC + "0,4,1,4,1.5,25\n",
        3,
        "outside 0–1",
    ),
    (
        BH + BC + "0,nan,1,4,1,25\n",
        3,
        "NaN",
    ),
    (
        BH + BC + "0,4,1,4,1,25\n0,4,1,4,1,25\n",
        4,
        "not increasing",
    ),
    (
        BH + BC + ",4,1,4,1,25\n",
        3,
        "empty value",
    ),
    (
        BH + "t_s,voltage_kv,current_a,power_w,soc,temp_c\n0,4,1,4,1,25\n",
        2,
        "unknown unit 'kv'",
    ),
    (
        BH + BC + "0,-4,1,4,1,25\n",
        3,
        "voltage must be positive",
    ),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_BATTERY)
def test_battery_bad_input(write, text, line, problem):
    p = write("bad.csv", text)
    with pytest.raises(ParseError) as info:
        read_battery(p)
    assert str(info.value).startswith(f"{p}:{line}: ")
    assert problem in str(info.value)


def test_write_to_missing_directory_is_bad_input(tmp_path: Path):
    with pytest.raises(BadInputError, match="cannot write"):
        write_dvfs(DvfsTrace([DvfsEvent(0.0, "a", 1)]), tmp_path / "no" / "such" / "dir.csv")


def test_segments_and_quantize(write):
    d = read_dvfs(write("d.csv", DVFS))
    assert d.segments("policy0") == [(0.0, 1.5, 600000), (1.5, 3.0, 1500000)]
    q = d.quantized({"policy0": [700000, 1400000], "policy4": [1000000, 2000000]})
    assert q.events == [
        DvfsEvent(0.0, "policy0", 700000),  # lowest listed at or above the request
        DvfsEvent(0.0, "policy4", 1000000),
        DvfsEvent(1.5, "policy0", 1400000),  # above every listed one: the highest
        DvfsEvent(2.0, "policy4", 2000000),
    ]
    same = d.quantized({"policy0": [1500000], "policy4": [2000000]})
    assert [e.t_s for e in same.events if e.domain == "policy0"] == [0.0]  # merged: both map to 1.5 GHz
    with pytest.raises(BadInputError, match="no frequency table for domain 'policy4'"):
        d.quantized({"policy0": [600000]})
