"""Hypothesis: whatever the input, the parsers return a trace or raise the project's ParseError/BadInputError."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devices.errors import BadInputError
from traces.battery import read_battery
from traces.domains import parse_domains
from traces.dvfs import read_dvfs
from traces.info import trace_info
from traces.parsers.ftrace import parse_ftrace
from traces.parsers.generic_csv import parse_generic_csv
from traces.parsers.polled import parse_polled
from traces.parsers.power_supply_log import parse_power_supply
from traces.parsers.time_in_state import parse_time_in_state
from traces.power import power_from_battery, read_power
from traces.sources import ParseOptions, get_source, load, source_names

# fragments that reach deep into each parser: valid pieces, near-misses and hostile values
TOKENS = [
    "0",
    "1",
    "1.5",
    "-1",
    "1e309",
    "nan",
    "inf",
    "",
    " ",
    "abc",
    "600000",
    "1500000",
    "4000000",
    "-500000",
    ",",
    ",,",
    ";",
    ":",
    "=",
    "#",
    "===",
    "(",
    ")",
    "[000]",
    "[",
    "]",
    "d..2",
    "t_s",
    "t_ms",
    "domain",
    "freq_khz",
    "freq_thz",
    "power_w",
    "power_mw",
    "voltage_v",
    "current_a",
    "soc",
    "soc_pct",
    "temp_c",
    "policy0",
    "cpu0",
    "cpu9",
    "gpu",
    "cpu_frequency:",
    "state=",
    "cpu_id=",
    "state=1 cpu_id=0",
    "a-1",
    "( 123)",
    "(-----)",
    "POWER_SUPPLY_VOLTAGE_NOW=",
    "POWER_SUPPLY_CURRENT_NOW=",
    "POWER_SUPPLY_STATUS=Discharging",
    "POWER_SUPPLY_CAPACITY=",
    "/sys/x/power_now:",
    "current_sign=discharge_positive",
    "current_sign=charge_positive",
    "# dvfs_trace v1",
    "# power_trace v1",
    "# battery_trace v1",
    "duration_s=",
    "domains: p0=0-3",
    '"',
    "\t",
    "é",
]
LINE = st.lists(st.sampled_from(TOKENS), max_size=8).map(" ".join) | st.text(max_size=40)
TEXT = st.lists(LINE, max_size=12).map("\n".join)

HEADERS = [
    "t_s,domain,freq_khz",
    "t_s,power_w",
    "# battery_trace v1; current_sign=discharge_positive\nt_s,voltage_v,current_a,power_w,soc,temp_c",
    "t_s cpu0 cpu1",
    "=== 1 policy0",
    "=== 1",
    "  a-1 [000] d..2 1.0: cpu_frequency: state=600000 cpu_id=0",
]
SEEDED = st.tuples(st.sampled_from(HEADERS), TEXT).map(lambda ht: ht[0] + "\n" + ht[1])

DOMAINS = parse_domains("p0=0-3,policy0=4-7")

PARSERS: dict[str, Callable[[Path], Any]] = {
    "dvfs": read_dvfs,
    "power": read_power,
    "battery": read_battery,
    "battery->power": lambda p: power_from_battery(read_battery(p)),
    "info": trace_info,
    "ftrace": parse_ftrace,
    "ftrace+domains": lambda p: parse_ftrace(p, DOMAINS),
    "time_in_state": parse_time_in_state,
    "time_in_state+dominant": lambda p: parse_time_in_state(p, DOMAINS, mode="dominant"),
    "polled": parse_polled,
    "polled+domains": lambda p: parse_polled(p, DOMAINS),
    "power_supply": parse_power_supply,
    "csv-battery": lambda p: parse_generic_csv(p, "t_s=t_s,voltage_v=voltage_v,current_a=current_a:mA,soc=soc"),
    "csv-power": lambda p: parse_generic_csv(p, "t_s=t_s,power_w=power_w", kind="power"),
    "detected": lambda p: load([p]),  # whatever format the content looks like
}
for _name in source_names():  # every registered source format, by name, with default options
    PARSERS[f"source:{_name}"] = lambda p, _n=_name: get_source(_n).parse([p], ParseOptions())


def _check_all(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.txt"
        p.write_bytes(data)
        for name, parse in PARSERS.items():
            try:
                parse(p)
            except BadInputError:  # ParseError is a BadInputError
                pass
            except Exception as exc:  # pragma: no cover - the failure report
                raise AssertionError(f"{name} raised {type(exc).__name__}: {exc}") from exc


FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(SEEDED)
def test_parsers_on_seeded_text(text: str) -> None:
    _check_all(text.encode("utf-8"))


@FUZZ
@given(TEXT)
@example(",")  # once an IndexError in the polled parser
def test_parsers_on_token_soup(text: str) -> None:
    _check_all(text.encode("utf-8"))


@settings(max_examples=40, deadline=None)
@given(st.binary(max_size=200))
def test_parsers_on_bytes(data: bytes) -> None:
    _check_all(data)
