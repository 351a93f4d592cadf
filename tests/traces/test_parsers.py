"""Parsers from real sources: ftrace/systrace, time_in_state, polled logs, power_supply logs, generic CSV."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices.errors import BadInputError, ParseError
from traces.battery import BatteryTrace
from traces.domains import parse_domains
from traces.dvfs import DvfsEvent
from traces.parsers.ftrace import parse_ftrace
from traces.parsers.generic_csv import parse_column_map, parse_generic_csv
from traces.parsers.polled import parse_polled
from traces.parsers.power_supply_log import parse_power_supply
from traces.parsers.time_in_state import parse_time_in_state
from traces.power import PowerTrace

# ---- ftrace -------------------------------------------------------------------------------------

FTRACE = """# tracer: nop
#
#           TASK-PID     CPU#  |||||  TIMESTAMP  FUNCTION
             cat-5235  [002] ..s.  1177.681723: cpu_frequency: state=2900000 cpu_id=2
          <idle>-0     [000] d..2  1177.700000: cpu_frequency: state=1744000 cpu_id=5
     kworker/0:1-1855  ( 1855) [000] d..2  1177.800000: cpu_frequency: state=1200000 cpu_id=1
     kworker/0:1-1855  ( 1855) [000] d..2  1177.800000: cpu_frequency: state=1200000 cpu_id=2
           <...>-12    (-----) [001] ....  1177.900000: cpu_frequency_limits: min_freq=300000 max_freq=1800000 cpu_id=1
          <idle>-0     [003] d.h2  1178.000000: sched_switch: prev_comm=swapper/3
   Binder:12_3-1999 [000] dNh1. 1178.100000: cpu_frequency: state=1744000 cpu_id=4
"""


def test_ftrace_frequency_belongs_to_cpu_id_not_logging_cpu(write):
    d = parse_ftrace(write("t.txt", FTRACE), parse_domains("policy0=0-3,policy4=4-7"))
    assert d.events == [
        DvfsEvent(0.0, "policy0", 2900000),  # logged by CPU 2 for CPU 2
        DvfsEvent(0.018277, "policy4", 1744000),  # logged by CPU 0 for CPU 5
        DvfsEvent(0.118277, "policy0", 1200000),  # TGID column; two CPUs of one policy → one row
    ]  # the last line repeats policy4's frequency: no row; cpu_frequency_limits ignored
    assert d.duration_s == pytest.approx(1178.1 - 1177.681723)
    assert d.meta["t0_source_s"] == "1177.681723"


def test_ftrace_without_domains_keeps_cpus(write):
    d = parse_ftrace(write("t.txt", FTRACE))
    assert [e.domain for e in d.events] == ["cpu2", "cpu5", "cpu1", "cpu2", "cpu4"]


BAD_FTRACE = [
    ("  a-1 [000] d..2 10.0: cpu_frequency: state=abc cpu_id=1\n", 1, "arguments are not"),
    ("  a-1 [000] d..2 10.0: cpu_frequency: state=0 cpu_id=1\n", 1, "must be positive"),
    (
        "  a-1 [000] d..2 10.0: cpu_frequency: state=1 cpu_id=1\n"
        "  a-1 [000] d..2 9.0: cpu_frequency: state=2 cpu_id=1\n",
        2,
        "earlier",
    ),
    ("  a-1 [000] d..2 10.0: cpu_frequency: state=1 cpu_id=9\n", 1, "cpu_id=9 is in no domain"),
    ("garbage cpu_frequency: here\n", 1, "not in ftrace format"),
    ("# nothing\n  a-1 [000] d..2 10.0: sched_switch: x\n", None, "no power:cpu_frequency events"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_FTRACE)
def test_ftrace_bad_input(write, text, line, problem):
    p = write("bad.txt", text)
    with pytest.raises(ParseError) as info:
        parse_ftrace(p, parse_domains("policy0=0-3"))
    assert str(info.value).startswith(f"{p}:{line}: " if line else f"{p}: ")
    assert problem in str(info.value)


# ---- time_in_state ------------------------------------------------------------------------------

TIS = """=== 100.0 policy0
600000 1000
1500000 500
=== 102.0 policy0
600000 1150
1500000 550
# t_s=104.0 domain=policy0
600000 1150
1500000 750
"""


def test_time_in_state_split_preserves_residency(write):
    d = parse_time_in_state(write("tis.txt", TIS))
    # interval 1: 150 ticks at 600 MHz, 50 at 1.5 GHz → 0.5 s at 1.5 GHz then 1.5 s at 600 MHz
    assert d.events == [
        DvfsEvent(0.0, "policy0", 1500000),
        DvfsEvent(0.5, "policy0", 600000),
        DvfsEvent(2.0, "policy0", 1500000),
    ]
    assert d.residency_s() == {"policy0": {1500000: 2.5, 600000: 1.5}}
    assert d.meta["order"] == "synthetic"


def test_time_in_state_dominant(write):
    d = parse_time_in_state(write("tis.txt", TIS), mode="dominant")
    assert d.events == [DvfsEvent(0.0, "policy0", 600000), DvfsEvent(2.0, "policy0", 1500000)]


BAD_TIS = [
    ("600000 10\n", 1, "before any snapshot marker"),
    ("=== 1 policy0\n600000 10\n=== 2 policy0\n600000 5\n", 3, "decreased"),
    ("=== 1 policy0\n600000 10\n=== 0.5 policy0\n600000 20\n", 3, "not after"),
    ("=== 1 policy0\n600000 x\n", 2, "not integers"),
    ("=== 1 policy0\n600000 10\n", None, "at least two"),
    ("=== 1 policy0\n600000 10\n=== 2 policy0\n600000 1000\n", 3, "residency"),
    ("=== 1 gpu\n600000 10\n=== 2 gpu\n600000 20\n", 1, "unknown domain 'gpu'"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_TIS)
def test_time_in_state_bad_input(write, text, line, problem):
    p = write("bad.txt", text)
    with pytest.raises(ParseError) as info:
        parse_time_in_state(p, parse_domains("policy0=0-3"))
    assert str(info.value).startswith(f"{p}:{line}: " if line else f"{p}: ")
    assert problem in str(info.value)


# ---- polled -------------------------------------------------------------------------------------


def test_polled_long_layout_with_domains(write):
    text = "10.0 cpu0 600000\n10.0 cpu4 1000000\n10.1 cpu0 600000\n10.2 cpu1 1500000\n10.3 cpu4 1000000\n"
    d = parse_polled(write("p.txt", text), parse_domains("policy0=0-3,policy4=4-7"))
    assert d.events == [
        DvfsEvent(0.0, "policy0", 600000),
        DvfsEvent(0.0, "policy4", 1000000),
        DvfsEvent(0.2, "policy0", 1500000),
    ]
    assert d.duration_s == 0.3


def test_polled_wide_layout_ms(write):
    d = parse_polled(write("p.csv", "t_ms,policy0,policy4\n0,600000,1000\n500,750000,1000\n"))
    assert d.events == [
        DvfsEvent(0.0, "policy0", 600000),
        DvfsEvent(0.0, "policy4", 1000),
        DvfsEvent(0.5, "policy0", 750000),
    ]


BAD_POLLED = [
    ("t_s cpu0 cpu1\n0 600000 700000\n", 2, "disagree"),
    ("0 cpu0 600000\n1 cpu0 -5\n", 2, "positive integer"),
    ("0 cpu0 nan\n", 1, "not finite"),
    ("1 cpu0 600000\n0 cpu0 600000\n", 2, "earlier"),
    ("0 cpu9 600000\n", 1, "cpu9 is in no domain"),
    ("0 gpu 600000\n", 1, "unknown domain 'gpu'"),
    ("t_fortnights cpu0\n0 600000\n", 1, "unknown unit"),
    ("0 cpu0\n", 1, "expected"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_POLLED)
def test_polled_bad_input(write, text, line, problem):
    p = write("bad.txt", text)
    with pytest.raises(ParseError) as info:
        parse_polled(p, parse_domains("policy0=0-3"))
    assert str(info.value).startswith(f"{p}:{line}: ")
    assert problem in str(info.value)


# ---- power_supply -------------------------------------------------------------------------------


def _uevent(t: float, current_ua: int, status: str = "Discharging", extra: str = "") -> str:
    return (
        f"=== {t}\nPOWER_SUPPLY_STATUS={status}\nPOWER_SUPPLY_VOLTAGE_NOW=4000000\n"
        f"POWER_SUPPLY_CURRENT_NOW={current_ua}\nPOWER_SUPPLY_CAPACITY=50\nPOWER_SUPPLY_TEMP=253\n{extra}"
    )


def test_power_supply_kernel_convention(write):
    b = parse_power_supply(write("k.log", _uevent(5, -500000) + _uevent(6, -250000)))
    assert b.meta["source_sign_rule"] == "kernel"
    assert b.t_s.tolist() == [0.0, 1.0]
    assert b.current_a.tolist() == [0.5, 0.25]
    assert b.power_w.tolist() == [2.0, 1.0]
    assert b.voltage_v.tolist() == [4.0, 4.0]
    assert b.soc.tolist() == [0.5, 0.5]
    assert b.temp_c.tolist() == [25.3, 25.3]


def test_power_supply_acpi_positive_discharge(write):
    b = parse_power_supply(write("a.log", _uevent(5, 500000) + _uevent(6, 400000, "Charging")))
    assert b.meta["source_sign_rule"] == "discharge_positive"
    assert b.current_a.tolist() == pytest.approx([0.5, 0.4])  # as the driver reports it: discharge positive
    s = parse_power_supply(write("s.log", _uevent(5, 500000) + _uevent(6, 400000, "Charging")), sign="status")
    assert s.current_a.tolist() == pytest.approx([0.5, -0.4])


def test_power_supply_grep_layout_power_only(write):
    text = (
        "1700000000\n/sys/class/power_supply/BAT0/status:Discharging\n"
        "/sys/class/power_supply/BAT0/voltage_now:12000000\n/sys/class/power_supply/BAT0/power_now:6000000\n"
        "/sys/class/power_supply/BAT0/energy_now:30000000\n/sys/class/power_supply/BAT0/energy_full:40000000\n"
    )
    b = parse_power_supply(write("g.log", text))
    assert b.power_w.tolist() == [6.0]
    assert b.current_a.tolist() == [0.5]
    assert b.soc.tolist() == [0.75]
    assert b.energy_wh is not None and b.energy_wh.tolist() == [30.0]


def test_power_supply_csv_layout(write):
    b = parse_power_supply(
        write(
            "c.csv",
            "t_s,status,voltage_now,current_now\n0,Discharging,3800000,-1000000\n2,Discharging,3790000,-1000000\n",
        )
    )
    assert b.current_a.tolist() == [1.0, 1.0]
    assert math.isnan(b.soc[0])


BAD_PS = [
    (_uevent(1, -5) + _uevent(2, 5), None, "both positive and negative"),
    (_uevent(2, -5) + _uevent(1, -5), 7, "not increasing"),
    ("POWER_SUPPLY_VOLTAGE_NOW=1\n", 1, "before the first time line"),
    ("=== 1\nnot an attribute\n", 2, "not a power_supply attribute line"),
    ("=== 1\nPOWER_SUPPLY_VOLTAGE_NOW=abc\n", 1, "not a number"),
    ("=== 1\nPOWER_SUPPLY_VOLTAGE_NOW=4000000\nPOWER_SUPPLY_CAPACITY=150\n", 1, "outside 0–100"),
    ("=== 1\nPOWER_SUPPLY_VOLTAGE_NOW=-4\n", 1, "must be positive"),
    ("# empty\n", None, "no samples"),
]


@pytest.mark.parametrize(("text", "line", "problem"), BAD_PS)
def test_power_supply_bad_input(write, text, line, problem):
    p = write("bad.log", text)
    with pytest.raises(ParseError) as info:
        parse_power_supply(p)
    assert str(info.value).startswith(f"{p}:{line}: " if line else f"{p}: ")
    assert problem in str(info.value)


# ---- generic CSV --------------------------------------------------------------------------------

ARCHIVE = """Test_Time (s),Voltage (V),Current (mA),Cell_Temperature (C),SOC (%)
100,4.10,-1000,25.0,90
101,4.09,-2000,25.1,89
"""


def test_generic_csv_battery_with_units_and_sign(write):
    cmap = (
        "t_s=Test_Time (s),voltage_v=Voltage (V),current_a=Current (mA):mA,temp_c=Cell_Temperature (C),soc=SOC (%):pct"
    )
    b = parse_generic_csv(write("a.csv", ARCHIVE), cmap, kind="battery", sign="charge_positive")
    assert isinstance(b, BatteryTrace)
    assert b.t_s.tolist() == [0.0, 1.0]
    assert b.current_a.tolist() == [1.0, 2.0]
    assert np.allclose(b.power_w, [4.10, 8.18])
    assert b.soc.tolist() == [0.9, 0.89]


def test_generic_csv_power(write):
    p = parse_generic_csv(write("p.csv", "time,P\n5000,250\n5500,500\n"), "t_s=time:ms,power_w=P:mW", kind="power")
    assert isinstance(p, PowerTrace)
    assert p.t_s.tolist() == [0.0, 0.5] and p.power_w.tolist() == [0.25, 0.5]


def test_column_map_errors():
    with pytest.raises(BadInputError, match="unknown unit"):
        parse_column_map("t_s=time:fortnights")
    with pytest.raises(BadInputError, match="unknown canonical column"):
        parse_column_map("t_s=time,volts=V")
    with pytest.raises(BadInputError, match="must name the time column"):
        parse_column_map("voltage_v=V")


def test_generic_csv_missing_column_and_nan(write):
    p = write("a.csv", ARCHIVE)
    with pytest.raises(ParseError, match=r":1: mapped column 'Volts'"):
        parse_generic_csv(p, "t_s=Test_Time (s),voltage_v=Volts")
    q = write("n.csv", "t,V\n0,4\n1,nan\n")
    with pytest.raises(ParseError, match=r"n.csv:3: NaN"):
        parse_generic_csv(q, "t_s=t,voltage_v=V")
