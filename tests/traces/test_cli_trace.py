"""`testbed trace convert|info` end to end on the bundled samples and on bad input (exit 2, one line)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import SAMPLES
from traces.battery import read_battery
from traces.dvfs import read_dvfs
from traces.info import detect_kind
from traces.parsers.ftrace import parse_ftrace
from traces.power import read_power


def test_every_sample_is_labelled_synthetic_or_sourced():
    files = [p for p in SAMPLES.iterdir() if p.name != "README.md"]
    readme = (SAMPLES / "README.md").read_text()
    assert len(files) >= 6
    for p in files:
        head = p.read_text()[:400].lower()
        assert "synthetic" in head or "source=" in head, p.name
        assert p.name in readme, p.name


@pytest.mark.parametrize(
    ("sample", "source", "domains"),
    [
        ("ftrace-cpu-frequency.synthetic.txt", "ftrace", "policy0=0-3,policy4=4-7"),
        ("time-in-state.synthetic.txt", "time-in-state", "policy0=0-3"),
        ("polled-scaling-cur-freq.synthetic.txt", "polled", "policy0=0-3"),
    ],
)
def test_convert_dvfs_sources(cli, tmp_path, sample, source, domains):
    out = tmp_path / "d.csv"
    r = cli("trace", "convert", SAMPLES / sample, "--from", source, "--out", out, "--domains", domains, "--json")
    assert r.code == 0, r.err
    summary = json.loads(r.out)
    d = read_dvfs(out)
    assert summary["rows"] == len(d.events) > 3
    assert d.events[0].t_s == 0.0
    info = cli("trace", "info", out, "--json")
    assert info.code == 0
    data = json.loads(info.out)
    assert data["format"] == "dvfs_trace"
    for dom, item in data["domains"].items():  # residency adds up to the observed time of each domain
        first = next(e.t_s for e in d.events if e.domain == dom)
        assert sum(item["residency_s"].values()) == pytest.approx(d.end_s - first, abs=1e-5)


def test_ftrace_sample_matches_parser(tmp_path, cli):
    out = tmp_path / "d.csv"
    assert (
        cli("trace", "convert", SAMPLES / "ftrace-cpu-frequency.synthetic.txt", "--from", "ftrace", "--out", out).code
        == 0
    )
    assert read_dvfs(out).events == parse_ftrace(SAMPLES / "ftrace-cpu-frequency.synthetic.txt").events


def test_convert_power_supply_and_csv(cli, tmp_path):
    out = tmp_path / "b.csv"
    r = cli("trace", "convert", SAMPLES / "power-supply-uevent.synthetic.log", "--from", "power-supply", "--out", out)
    assert r.code == 0, r.err
    b = read_battery(out)
    assert len(b) == 30 and (b.current_a > 0).all()
    out2 = tmp_path / "p.csv"
    r = cli(
        "trace",
        "convert",
        SAMPLES / "power-inference.synthetic.csv",
        "--from",
        "csv",
        "--kind",
        "power",
        "--map",
        "t_s=t_s,power_w=power_w",
        "--out",
        out2,
    )
    assert r.code == 0, r.err
    assert read_power(out2).power_w.tolist() == read_power(SAMPLES / "power-inference.synthetic.csv").power_w.tolist()


@pytest.mark.parametrize("sample", ["power-inference.synthetic.csv", "battery-phone-lco-1w5.synthetic.csv"])
def test_info_on_canonical_samples(cli, sample):
    r = cli("trace", "info", SAMPLES / sample, "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["format"] == detect_kind(SAMPLES / sample)


@pytest.mark.parametrize(
    ("text", "args", "expect"),
    [
        ("t_s,domain,freq_khz\n0,p0,600000\n1,p0,-1\n", ["trace", "info"], ":3: frequency must be positive"),
        ("t_s,power_w\n0,1\n0,2\n", ["trace", "info"], ":3: time is not increasing"),
        ("t_s,foo\n0,1\n", ["trace", "info"], "matches no known trace format (tried battery, battery-trace,"),
        (
            "  a-1 [000] d..2 1.0: cpu_frequency: state=1 cpu_id=7\n",
            ["trace", "convert", "--from", "ftrace", "--domains", "p0=0-3"],
            ":1: cpu_id=7 is in no domain",
        ),
        ("0 cpu0 nan\n", ["trace", "convert", "--from", "polled"], ":1: frequency of cpu0 is not finite"),
        (
            "=== 1\nPOWER_SUPPLY_CAPACITY=101\n",
            ["trace", "convert", "--from", "power-supply"],
            ":1: capacity 101 % is outside",
        ),
    ],
)
def test_bad_input_exit_2_one_line(cli, write, tmp_path, text, args, expect):
    p = write("bad.txt", text)
    extra = ["--out", str(tmp_path / "o.csv")] if "convert" in args else []
    r = cli(*args[:2], p, *args[2:], *extra)
    assert r.code == 2
    assert r.err.startswith(f"error: {p}:")
    assert expect in r.err
    assert r.err.count("\n") == 1


def test_usage_errors_exit_2(cli, tmp_path):
    src = SAMPLES / "power-supply-uevent.synthetic.log"
    r = cli("trace", "convert", src, "--from", "power-supply", "--domains", "p0=0", "--out", tmp_path / "o.csv")
    assert r.code == 2 and "--domains applies to DVFS sources" in r.err
    r = cli("trace", "convert", src, "--from", "csv", "--out", tmp_path / "o.csv")
    assert r.code == 2 and "needs --map" in r.err
    r = cli("trace", "convert", src, "--from", "ftrace", "--domains", "p0=x", "--out", tmp_path / "o.csv")
    assert r.code == 2 and "bad CPU list" in r.err
    r = cli("trace", "convert", src, "--from", "csv", "--map", "t_s=t", "--out", tmp_path / "o.csv")
    assert r.code == 2 and "needs the source's current sign" in r.err


def test_convert_generic_battery_csv(cli, write, tmp_path):
    src = write("archive.csv", "Test_Time (s),Voltage (V),Current (A)\n10,4.0,-0.5\n11,3.9,-1.0\n")
    out = tmp_path / "b.csv"
    cmap = "t_s=Test_Time (s),voltage_v=Voltage (V),current_a=Current (A)"
    r = cli("trace", "convert", src, "--from", "csv", "--map", cmap, "--sign", "charge_positive", "--out", out)
    assert r.code == 0, r.err
    b = read_battery(out)
    assert b.t_s.tolist() == [0.0, 1.0]
    assert b.current_a.tolist() == [0.5, 1.0]
    assert b.power_w.tolist() == [2.0, 3.9]


def test_info_text_output(cli):
    r = cli("trace", "info", SAMPLES / "power-inference.synthetic.csv")
    assert r.code == 0
    assert "format: power_trace" in r.out and "period_s: 60.0" in r.out and "rows: 120" in r.out


def test_convert_battery_trace_to_power_load(cli, tmp_path, write):
    out = tmp_path / "p.csv"
    src = SAMPLES / "battery-phone-lco-1w5.synthetic.csv"
    r = cli("trace", "convert", src, "--from", "battery", "--out", out)
    assert r.code == 0, r.err
    p = read_power(out)
    assert p.power_w == pytest.approx(1.5, rel=1e-5)  # the sample is a constant 1.5 W discharge
    charging = write(
        "c.csv", "# battery_trace v1; current_sign=discharge_positive\nt_s,voltage_v,current_a,power_w,soc,temp_c\n"
        "0,4,1,,0.5,\n5,4,-1,,0.5,\n",
    )  # fmt: skip
    r = cli("trace", "convert", charging, "--from", "battery", "--out", out)
    assert r.code == 2 and "charges at t_s=5" in r.err
