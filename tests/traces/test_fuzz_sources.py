"""Hypothesis against every source parser: mutated real/documented files either parse into a trace that its
canonical reader accepts after writing, or fail with the project's one-line error naming the file.

The parsers are called directly (not through :func:`traces.sources.load`, whose final re-read would hide a
parser that produces what its reader rejects). A small budget runs by default; ``-m slow`` runs thousands
of cases per parser.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices.errors import BadInputError, ParseError
from tests.conftest import SAMPLES
from tests.traces.test_sources import DATA, perfetto_trace
from traces.battery import BatteryTrace, read_battery, write_battery
from traces.domains import parse_domains
from traces.dvfs import DvfsTrace, read_dvfs, write_dvfs
from traces.power import read_power, write_power
from traces.sources import ParseOptions, get_source

#: format → (seed files, options); files that take two inputs list both.
SEEDS: dict[str, tuple[list[Path], ParseOptions]] = {
    "ftrace": ([SAMPLES / "ftrace-cpu-frequency.synthetic.txt"], ParseOptions()),
    "ftrace+devlib": ([DATA / "lisa-devlib-markers.txt"], ParseOptions(domains=parse_domains("p0=0-3,p1=4-7"))),
    "systrace": ([DATA / "systrace-cpufreq.html"], ParseOptions()),
    "time-in-state": ([SAMPLES / "time-in-state.synthetic.txt"], ParseOptions()),
    "time-in-state-pair": (
        [DATA / "tis-before-policy4.txt", DATA / "tis-after-policy4.txt"],
        ParseOptions(interval_s=16.0),
    ),
    "polled": ([SAMPLES / "polled-scaling-cur-freq.synthetic.txt"], ParseOptions()),
    "tegrastats": ([DATA / "tegrastats-agx-orin-jp7.log"], ParseOptions()),
    "tegrastats-power": ([DATA / "tegrastats-xavier-jp4.log"], ParseOptions(kind="power")),
    "power-supply": ([SAMPLES / "power-supply-uevent.synthetic.log"], ParseOptions()),
    "power-supply-csv": (
        [DATA / "power-supply-cron-laptop.csv"],
        ParseOptions(columns=("time", "status", "energy_full", "energy_now")),
    ),
    "upower": ([DATA / "history-charge-BAT0.dat", DATA / "history-rate-BAT0.dat"], ParseOptions()),
    "batterystats": ([DATA / "batterystats-history-android8.txt"], ParseOptions()),
    "healthd": ([DATA / "healthd-dmesg.log"], ParseOptions()),
    "rd-usb": ([DATA / "rd-usb-um25c.csv"], ParseOptions()),
    "monsoon": ([DATA / "monsoon-pymonsoon.csv"], ParseOptions()),
    "otii": ([DATA / "otii-export.csv"], ParseOptions()),
    "csv": (
        [SAMPLES / "battery-phone-lco-1w5.synthetic.csv"],
        ParseOptions(column_map="t_s=t_s,voltage_v=voltage_v,current_a=current_a,soc=soc", sign="charge_positive"),
    ),
    "battery": ([SAMPLES / "battery-phone-lco-1w5.synthetic.csv"], ParseOptions()),
}
FORMAT_OF = {
    "ftrace+devlib": "ftrace",
    "time-in-state-pair": "time-in-state",
    "tegrastats-power": "tegrastats",
    "power-supply-csv": "power-supply",
}
HOSTILE = ["0", "-1", "1e-320", "9" * 160, "nan", "inf", "1e308", "0.0000001", "", "-0", "4294967296", "x"]
_NUM = re.compile(r"\d+(?:\.\d+)?")


def _mutate(text: str, data: st.DataObject) -> str:
    lines = text.splitlines()[:40]
    for _ in range(data.draw(st.integers(0, 4), label="edits")):
        if not lines:
            break
        k = data.draw(st.integers(0, len(lines) - 1), label="line")
        action = data.draw(st.sampled_from(["number", "drop", "dup", "swap", "truncate"]), label="action")
        line = lines[k]
        if action == "number":
            nums = list(_NUM.finditer(line))
            if nums:
                m = nums[data.draw(st.integers(0, len(nums) - 1), label="which")]
                new = data.draw(st.sampled_from(HOSTILE) | st.integers(-(10**12), 10**12).map(str), label="value")
                lines[k] = line[: m.start()] + new + line[m.end() :]
        elif action == "drop":
            del lines[k]
        elif action == "dup":
            lines.insert(k, line)
        elif action == "swap" and k + 1 < len(lines):
            lines[k], lines[k + 1] = lines[k + 1], lines[k]
        elif action == "truncate":
            lines[k] = line[: data.draw(st.integers(0, max(0, len(line) - 1)), label="cut")]
    return "\n".join(lines) + "\n"


def _roundtrip(trace: object, out: Path) -> None:
    if isinstance(trace, DvfsTrace):
        write_dvfs(trace, out)
        read_dvfs(out)
    elif isinstance(trace, BatteryTrace):
        write_battery(trace, out)
        read_battery(out)
    else:
        write_power(trace, out)  # type: ignore[arg-type]
        read_power(out)


def _check(case: str, texts: list[bytes]) -> None:
    seeds, opts = SEEDS[case]
    fmt = get_source(FORMAT_OF.get(case, case))
    with tempfile.TemporaryDirectory() as d:
        paths = []
        for seed, data in zip(seeds, texts, strict=True):
            p = Path(d) / seed.name
            p.write_bytes(data)
            paths.append(p)
        try:
            trace = fmt.parse(paths, opts)
        except BadInputError as exc:
            msg = str(exc)
            assert "\n" not in msg, f"{case}: multi-line error {msg!r}"
            if isinstance(exc, ParseError):
                assert msg.startswith(tuple(str(p) for p in paths)), f"{case}: error does not name the file: {msg}"
            return
        try:
            _roundtrip(trace, Path(d) / "out.csv")
        except ParseError as exc:
            raise AssertionError(f"{case}: the parser wrote a trace its reader rejects: {exc}") from exc


def _run(case: str, data: st.DataObject) -> None:
    seeds, _ = SEEDS[case]
    texts = [_mutate(s.read_text(encoding="utf-8"), data).encode("utf-8") for s in seeds]
    _check(case, texts)


FAST = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
SLOW = settings(max_examples=2000, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.mark.parametrize("case", sorted(SEEDS))
@FAST
@given(data=st.data())
def test_mutated_sources(case: str, data: st.DataObject) -> None:
    _run(case, data)


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(SEEDS))
@SLOW
@given(data=st.data())
def test_mutated_sources_thoroughly(case: str, data: st.DataObject) -> None:
    _run(case, data)


@pytest.mark.parametrize(
    ("case", "text", "problem"),
    [  # the cases issue 13 found: each parser now refuses what its reader would refuse
        ("ftrace", "  a-1 [000] d..2 1.0: cpu_frequency: state=" + "9" * 160 + " cpu_id=0\n", "too many digits"),
        ("csv", "t_s,voltage_v,current_a,soc\n0,-4,1,0.5\n1,4,1,0.5\n", "voltage must be positive"),
        ("csv", "t_s,voltage_v,current_a,soc\n0,1e-320,1,0.5\n1,4,1,0.5\n", "voltage must be positive"),
        ("power-supply", "=== 1\nPOWER_SUPPLY_VOLTAGE_NOW=0.0001\n", "not a battery voltage"),
        ("time-in-state", "=== 1 p\n600000 1\n=== 2 p\n600000 " + "9" * 30 + "\n", "value too large"),
        ("polled", "t_s cpu0\n0 600000\n1 " + "9" * 160 + "\n", "above 1000000000 kHz"),
    ],
)
def test_known_writer_reader_mismatches_are_refused(case: str, text: str, problem: str) -> None:
    _, opts = SEEDS[case]
    fmt = get_source(FORMAT_OF.get(case, case))
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "in.txt"
        p.write_text(text)
        with pytest.raises(ParseError, match=re.escape(problem)) as info:
            fmt.parse([p], opts)
        assert str(info.value).startswith(f"{p}:")


@FAST
@given(st.lists(st.tuples(st.integers(0, 2**64), st.integers(0, 2**33), st.integers(0, 2**33)), max_size=6),
       st.booleans(), st.integers(0, 40))  # fmt: skip
def test_perfetto_bytes(events: list[tuple[int, int, int]], compressed: bool, cut: int) -> None:
    raw = perfetto_trace(events, compressed)
    _check_binary("perfetto", raw[: len(raw) - cut] if cut else raw)


def _check_binary(fmt_name: str, raw: bytes) -> None:
    fmt = get_source(fmt_name)
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "t.bin"
        p.write_bytes(raw)
        try:
            trace = fmt.parse([p], ParseOptions())
        except BadInputError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(p))
            return
        _roundtrip(trace, Path(d) / "out.csv")
