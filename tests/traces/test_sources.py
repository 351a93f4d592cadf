"""Every raw source format, detected and parsed from real or documented example files (tests/traces/data).

Expected numbers are worked out by hand from the files (see each test's comment), not taken from the code.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import zlib
from pathlib import Path

import pytest

from devices.errors import BadInputError, ParseError
from tests.conftest import SAMPLES
from traces.battery import read_battery
from traces.dvfs import read_dvfs
from traces.info import trace_info
from traces.parsers.trace_cmd import MAGIC
from traces.power import read_power
from traces.sources import ParseOptions, detect, load, source_names
from traces.timefmt import TimeReader

DATA = Path(__file__).resolve().parent / "data"


def info(*names: str, **opts: object) -> dict[str, object]:
    return trace_info([DATA / n for n in names], None, ParseOptions(**opts))  # type: ignore[arg-type]


def test_every_data_file_is_named_in_the_readme_with_source_and_licence():
    readme = (DATA / "README.md").read_text()
    files = [p.name for p in DATA.iterdir() if p.name != "README.md"]
    assert len(files) >= 15
    for name in files:
        row = next((ln for ln in readme.splitlines() if f"`{name}`" in ln), None)
        assert row is not None, name
        assert "licence" in row.lower() or "written" in row.lower(), name


@pytest.mark.parametrize(
    ("name", "fmt"),
    [
        ("tegrastats-xavier-jp4.log", "tegrastats"),
        ("tegrastats-nano-jp4.log", "tegrastats"),
        ("tegrastats-agx-orin-jp7.log", "tegrastats"),
        ("batterystats-history-android8.txt", "batterystats"),
        ("healthd-dmesg.log", "healthd"),
        ("history-charge-BAT0.dat", "upower"),
        ("power-supply-cron-laptop.csv", "power-supply"),
        ("rd-usb-um25c.csv", "rd-usb"),
        ("monsoon-pymonsoon.csv", "monsoon"),
        ("otii-export.csv", "otii"),
        ("systrace-cpufreq.html", "systrace"),
        ("lisa-devlib-markers.txt", "ftrace"),
        ("tis-before-policy4.txt", "time-in-state"),
    ],
)
def test_detection(name, fmt):
    assert detect(DATA / name).name == fmt


@pytest.mark.parametrize("sample", sorted(p.name for p in SAMPLES.iterdir() if p.name != "README.md"))
def test_info_works_directly_on_every_bundled_sample(cli, sample):
    r = cli("trace", "info", SAMPLES / sample, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["format"] in ("dvfs_trace", "battery_trace", "power_trace")
    if data["format"] == "battery_trace":
        assert data["delivered_energy_j"] > 0


def test_no_match_names_the_formats_tried_and_the_closest(cli, write):
    p = write("x.txt", "1800000 10\n")  # a lone raw time_in_state line is close, but a text line is not
    q = write("y.txt", "hello world\n")
    r = cli("trace", "info", q)
    assert r.code == 2 and r.err.count("\n") == 1
    assert "matches no known trace format (tried " in r.err and "tegrastats" in r.err and "upower" in r.err
    r = cli("trace", "info", p)  # accepted as time_in_state, then its parser says what is missing
    assert r.code == 2 and "BEFORE AFTER" in r.err


# ---- DVFS -------------------------------------------------------------------------------------------


def test_systrace_html():
    d = info("systrace-cpufreq.html")
    # cpu0: 300 MHz from 5000.000 to 5001.250, 1209.6 MHz until the last event line at 5002.000
    assert d["domains"]["cpu0"]["residency_s"] == {"300000": 1.25, "1209600": 0.75}
    assert d["duration_s"] == 2.0


def test_lisa_devlib_markers_give_initial_and_final_frequency():
    d = info("lisa-devlib-markers.txt", domains=None)
    # cpu0: devlib says 1.2 GHz at 1190.0, cpu_frequency 600 MHz at 1191.5, final marker 600 MHz at 1194.0
    assert d["domains"]["cpu0"]["residency_s"] == {"1200000": 1.5, "600000": 2.5001}
    # cpu4: 1.8 GHz at 1190.0001, 2.4 GHz at 1192.0001 until the end 1194.0001
    assert d["domains"]["cpu4"]["residency_s"] == {"1800000": 2.0, "2400000": 2.0}


def test_time_in_state_pair_before_after(cli, tmp_path):
    out = tmp_path / "d.csv"
    r = cli(
        "trace", "convert", DATA / "tis-before-policy4.txt", DATA / "tis-after-policy4.txt",
        "--from", "time-in-state", "--interval-s", "16", "--out", out, "--json",
    )  # fmt: skip
    assert r.code == 0, r.err
    d = read_dvfs(out)
    # deltas: 600 ticks at 1.8 GHz, 200 at 2.1 GHz, 800 at 2.4 GHz (10 ms each) = 16 s in a 16 s interval
    assert d.residency_s() == {"policy4": {2400000: 8.0, 2100000: 2.0, 1800000: 6.0}}
    assert d.meta["source"] == "time_in_state_pair"


def test_time_in_state_counter_overflow_is_a_parse_error(write):
    p = write("t.txt", "=== 1 policy0\n600000 1\n=== 2 policy0\n600000 " + "9" * 400 + "\n")
    with pytest.raises(ParseError, match=r":4: value too large"):
        load([p], "time-in-state")


@pytest.mark.parametrize(
    ("name", "cores", "gpu_khz", "emc_khz", "mean_w"),
    [
        ("tegrastats-xavier-jp4.log", 6, 1300000, 1866000, 14.025),  # VDD_IN 14025 mW (JetPack 4: no unit)
        ("tegrastats-nano-jp4.log", 4, 76000, 1600000, 4.520),  # POM_5V_IN 4520 mW
        ("tegrastats-agx-orin-jp7.log", 12, 1300000, 3199000, 13.907),  # no VDD_IN: 5139+3268+5500 mW
    ],
)
def test_tegrastats_clocks_and_rails(name, cores, gpu_khz, emc_khz, mean_w):
    d = info(name)
    doms = d["domains"]
    assert sum(1 for k in doms if k.startswith("cpu")) == cores
    assert doms["gpu"]["freqs_khz"] == [gpu_khz] and doms["emc"]["freqs_khz"] == [emc_khz]
    p = info(name, kind="power")
    assert p["format"] == "power_trace"
    assert p["mean_power_w"] == pytest.approx(mean_w)


def test_tegrastats_timestamps_and_interval():
    stamped = load([DATA / "tegrastats-agx-orin-jp7.log"], None, ParseOptions(kind="power"))[1]
    assert stamped.t_s.tolist() == [0.0, 1.0]  # 09:08:28 and 09:08:29
    unstamped = load([DATA / "tegrastats-xavier-jp4.log"], None, ParseOptions(kind="power", interval_s=0.5))[1]
    assert unstamped.t_s.tolist() == [0.0, 0.5, 1.0]
    d = load([DATA / "tegrastats-nano-jp4.log"], None, ParseOptions(domains=_dom("policy0=0-3")))[1]
    assert {e.domain for e in d.events} == {"policy0", "gpu", "emc"}


def _dom(text: str):
    from traces.domains import parse_domains

    return parse_domains(text)


# ---- Perfetto (encoded from the published schema) ------------------------------------------------


def _varint(v: int) -> bytes:
    out = bytearray()
    while v > 0x7F:
        out.append((v & 0x7F) | 0x80)
        v >>= 7
    out.append(v)
    return bytes(out)


def _field(num: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(num << 3) + _varint(payload)
    return _varint(num << 3 | 2) + _varint(len(payload)) + payload


def perfetto_trace(events: list[tuple[int, int, int]], compressed: bool = False) -> bytes:
    """A Trace of one FtraceEventBundle per event: (timestamp ns, cpu_id, state kHz)."""
    packets = b""
    for ts, cpu, state in events:
        freq = _field(1, state) + _field(2, cpu)
        ev = _field(1, ts) + _field(2, 42) + _field(11, freq)
        bundle = _field(1, 0) + _field(2, ev)
        packets += _field(1, _field(1, bundle) + _field(8, ts))
    if compressed:
        packets = _field(1, _field(50, zlib.compress(packets)))
    return _field(1, _field(8, 1)) + packets  # a first packet without ftrace events (a clock snapshot, say)


@pytest.mark.parametrize("compressed", [False, True])
def test_perfetto_protobuf(tmp_path, cli, compressed):
    src = tmp_path / "trace.perfetto-trace"
    src.write_bytes(perfetto_trace([(10**9, 0, 300000), (10**9, 1, 300000), (3 * 10**9, 0, 1200000)], compressed))
    assert detect(src).name == "perfetto"
    out = tmp_path / "d.csv"
    r = cli("trace", "convert", src, "--out", out, "--domains", "little=0-3")
    assert r.code == 0, r.err
    assert read_dvfs(out).residency_s() == {"little": {300000: 2.0, 1200000: 0.0}}
    bad = tmp_path / "bad.pftrace"
    bad.write_bytes(src.read_bytes()[:-3])
    r = cli("trace", "info", bad, "--from", "perfetto")
    assert r.code == 2 and "not a valid Perfetto protobuf trace" in r.err


# ---- trace-cmd -------------------------------------------------------------------------------------


def _fake_trace_cmd(bin_dir: Path, report: str) -> None:
    """A stand-in ``trace-cmd`` on PATH that prints a fixed report (the real tool needs a kernel trace)."""
    bin_dir.mkdir()
    exe = bin_dir / "trace-cmd"
    exe.write_text(f"#!/bin/sh\n[ \"$1\" = report ] || exit 3\ncat <<'EOF'\n{report}EOF\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)


def test_trace_cmd_dat_through_report(tmp_path, cli, monkeypatch):
    dat = tmp_path / "trace.dat"
    dat.write_bytes(MAGIC + b"\x00" * 64)
    report = (
        "cpus=8\n"
        "     kworker/0:1-88    [000]  5000.000000: cpu_frequency:        state=600000 cpu_id=0\n"
        "     kworker/0:1-88    [000]  5003.000000: cpu_frequency:        state=1500000 cpu_id=0\n"
        "           sh-42      [001]  5003.500000: print:                tracing_mark_write: cpu_frequency_devlib: "
        "state=1000000 cpu_id=1\n"
        "          <idle>-0     [000]  5004.000000: sched_switch:         prev_comm=swapper/0\n"
    )
    monkeypatch.setenv("PATH", str(tmp_path / "nobin"))
    r = cli("trace", "info", dat)
    assert r.code == 2 and "needs the trace-cmd tool" in r.err and "apt-get install trace-cmd" in r.err
    _fake_trace_cmd(tmp_path / "bin", report)
    monkeypatch.setenv("PATH", str(tmp_path / "bin") + os.pathsep + "/usr/bin:/bin")
    r = cli("trace", "info", dat, "--json")
    assert r.code == 0, r.err
    doms = json.loads(r.out)["domains"]
    assert doms["cpu0"]["residency_s"] == {"600000": 3.0, "1500000": 1.0}
    assert doms["cpu1"]["residency_s"] == {"1000000": 0.5}  # a devlib marker as trace-cmd prints it


@pytest.mark.skipif(shutil.which("trace-cmd") is None, reason="trace-cmd not installed (apt-get install trace-cmd)")
def test_real_trace_cmd_rejects_a_corrupt_dat(tmp_path, cli):
    dat = tmp_path / "trace.dat"
    dat.write_bytes(MAGIC + b"\x00" * 64)
    r = cli("trace", "info", dat)
    assert r.code == 2 and r.err.startswith(f"error: {dat}: ") and r.err.count("\n") == 1


# ---- power ----------------------------------------------------------------------------------------


def test_rd_usb_export():
    p = info("rd-usb-um25c.csv")
    # Power (W) 3.054, 3.608, 4.166, 2.505 held 1 s each (Unix time column), last hold as long as the one before
    assert p["energy_per_pass_j"] == pytest.approx(3.054 + 3.608 + 4.166 + 2.505)
    assert p["mean_power_w"] == pytest.approx((3.054 + 3.608 + 4.166 + 2.505) / 4)


def test_monsoon_and_otii_exports():
    m = info("monsoon-pymonsoon.csv")
    # Main(mA) × Main Voltage(V): 0.8, 1.0, 1.2, 0.6 W held 0.2 ms each
    assert m["mean_power_w"] == pytest.approx(0.9)
    assert m["energy_per_pass_j"] == pytest.approx(0.9 * 0.0008)
    o = info("otii-export.csv")
    assert o["mean_power_w"] == pytest.approx((0.5 + 1.5 + 1.0) / 3)  # 5 V × 0.1/0.3/0.2 A, 1 ms each


def test_meter_duplicate_times_are_averaged(write):
    p = write("m.csv", "Time(ms),Main(mA),Main Voltage(V)\n0,100,4\n0,300,4\n1,200,4\n")
    tr = load([p])[1]
    assert tr.t_s.tolist() == [0.0, 0.001] and tr.power_w.tolist() == pytest.approx([0.8, 0.8])


def test_jls_recording(tmp_path, cli):
    pyjls = pytest.importorskip("pyjls")
    import numpy as np

    path = tmp_path / "rec.jls"
    with pyjls.Writer(str(path)) as w:
        w.source_def(source_id=1, name="js220", vendor="Jetperch", model="JS220", version="1", serial_number="x")
        for sid, name, units in ((1, "current", "A"), (2, "voltage", "V")):
            w.signal_def(signal_id=sid, source_id=1, sample_rate=1000, name=name, units=units)
        w.fsr_f32(1, 0, np.full(2000, 0.5, dtype=np.float32))
        w.fsr_f32(2, 0, np.full(2000, 4.0, dtype=np.float32))
    assert detect(path).name == "jls"
    r = cli("trace", "info", path, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["mean_power_w"] == pytest.approx(2.0)  # 0.5 A × 4 V
    assert data["energy_per_pass_j"] == pytest.approx(4.0)  # for 2 s


# ---- battery --------------------------------------------------------------------------------------


def test_laptop_cron_log_energy_counter(cli, tmp_path):
    args = ["--columns", "time,status,energy_full,energy_now", "--tz", "Europe/Berlin"]
    d = info("power-supply-cron-laptop.csv", columns=("time", "status", "energy_full", "energy_now"))
    # energy_now 34.66 → 23.98 Wh while Discharging: 10.68 Wh = 38448 J; 12 intervals of 5 min = 3600 s
    assert d["delivered_energy_j"] == pytest.approx(38448.0)
    assert d["discharging_s"] == 3600.0 and d["energy_method"] == "energy_counter"
    assert d["warnings"] == ["gap of 1800 s at t_s=3600 (sampling period 300 s)"]
    r = cli("trace", "convert", DATA / "power-supply-cron-laptop.csv", *args, "--out", tmp_path / "b.csv")
    assert r.code == 0, r.err
    b = read_battery(tmp_path / "b.csv")
    assert b.energy_wh is not None and b.energy_wh[0] == pytest.approx(34.66)
    r = cli("trace", "info", DATA / "power-supply-cron-laptop.csv")
    assert r.code == 2 and "name its columns with --columns" in r.err


def test_upower_charge_and_rate():
    both = info("history-charge-BAT0.dat", "history-rate-BAT0.dat")
    # 10 W while discharging from 1700000000 to 1700003600: 36000 J over 3600 s
    assert both["delivered_energy_j"] == pytest.approx(36000.0)
    assert both["discharging_s"] == 3600.0
    assert both["soc"] == [0.7, 0.8]
    only_charge = info("history-charge-BAT0.dat")
    assert only_charge["delivered_energy_j"] is None and "no energy_now" in str(only_charge["energy_note"])


def test_batterystats_history_charge_counter():
    d = info("batterystats-history-android8.txt")
    # charge 2838 → 2836 mAh while volt goes 4397 → 4326 mV, then 2836 → 2813 mAh at 4369 mV:
    # (0.002 × 4.3615 + 0.023 × 4.369) Wh × 3600 = 393.156 J
    assert d["delivered_energy_j"] == pytest.approx(393.156, abs=1e-3)
    assert d["energy_method"] == "charge_counter*voltage"
    assert d["soc"] == [0.99, 1.0] and d["temp_c"] == [25.5, 28.2]
    assert d["duration_s"] == pytest.approx(3 * 3600 + 20 * 60 + 1.568)


def test_healthd_lines():
    d = info("healthd-dmesg.log")
    # P = V·I: 3.95·0.45, 3.94·0.55, 3.93·0.50 W, trapezoids over 60 s each
    assert d["delivered_energy_j"] == pytest.approx(60 * (1.7775 + 2.167) / 2 + 60 * (2.167 + 1.965) / 2)
    assert d["current_a"] == [0.45, 0.55]


def test_power_supply_log_without_voltage_uses_power_now(write):
    p = write(
        "bat.log",
        "=== 0\nPOWER_SUPPLY_STATUS=Discharging\nPOWER_SUPPLY_POWER_NOW=8000000\n"
        "=== 60\nPOWER_SUPPLY_STATUS=Discharging\nPOWER_SUPPLY_POWER_NOW=10000000\n",
    )
    d = trace_info(p)
    assert d["delivered_energy_j"] == pytest.approx(60 * 9.0)  # trapezoid of 8 and 10 W over 60 s
    assert d["energy_method"] == "power_integral"


def test_battery_summary_says_why_when_it_cannot(write):
    head = "# battery_trace v1; current_sign=discharge_positive\nt_s,voltage_v,current_a,power_w,soc,temp_c\n"
    p = write("c.csv", head + "0,4,,,0.5,\n10,4,,,0.49,\n")
    d = trace_info(p)
    assert d["delivered_energy_j"] is None and "no energy_now" in str(d["energy_note"])


# ---- timestamps and options -----------------------------------------------------------------------


def test_time_reader_forms():
    r = TimeReader()
    assert r.seconds("1700000000") == 1700000000.0
    assert r.seconds("1700000000123") == pytest.approx(1700000000.123)
    assert r.seconds("2023-11-14T22:13:20Z") == 1700000000.0
    assert r.seconds("2023-11-14 22:13:20") == 1700000000.0
    assert TimeReader(tz="+01:00").seconds("2023-11-14 23:13:20") == 1700000000.0
    assert TimeReader(tz="Europe/Berlin").seconds("2023-11-14 23:13:20") == 1700000000.0
    assert r.seconds("11-14-2023 22:13:20") == 1700000000.0
    assert TimeReader("%d/%m/%Y %H.%M.%S").seconds("14/11/2023 22.13.20") == 1700000000.0
    for bad in ["yesterday", "", "2023-13-45 10:00:00"]:
        with pytest.raises(ValueError):
            r.seconds(bad)


def test_cli_option_errors(cli, tmp_path):
    src = DATA / "rd-usb-um25c.csv"
    r = cli("trace", "info", src, "--tz", "Mars/Olympus")
    assert r.code == 2 and "unknown time zone" in r.err
    r = cli("trace", "info", src, "--interval-s", "-1")
    assert r.code == 2 and "--interval-s" in r.err
    r = cli("trace", "info", src, "--from", "nonsense")
    assert r.code == 2 and "unknown trace source format 'nonsense'" in r.err
    r = cli("trace", "convert", src, src, src, "--out", tmp_path / "o.csv")
    assert r.code == 2 and "takes 1 file" in r.err
    assert not (tmp_path / "o.csv").exists()


def test_converted_trace_never_fails_its_reader(tmp_path):
    for name in source_names():
        assert name  # every registered format is reachable by name
    with pytest.raises(BadInputError):
        load([], None)


def test_power_convert_reads_back(cli, tmp_path):
    out = tmp_path / "p.csv"
    r = cli("trace", "convert", DATA / "tegrastats-nano-jp4.log", "--kind", "power", "--out", out)
    assert r.code == 0, r.err
    assert read_power(out).power_w.tolist() == [4.52, 4.52]


def test_headerless_csv_with_trace_column_names(cli, write, tmp_path):
    p = write("p.csv", "0,1.5\n0.5,2.5\n")
    r = cli("trace", "info", p)
    assert r.code == 2 and "matches no known trace format" in r.err
    r = cli("trace", "info", p, "--from", "power-trace", "--columns", "t_s,power_w", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["energy_per_pass_j"] == pytest.approx(0.5 * 1.5 + 0.5 * 2.5)
    m = write("m.csv", "0,100,4\n1,200,4\n")  # a Monsoon export saved without its header
    r = cli("trace", "info", m, "--from", "monsoon", "--columns", "Time(ms),Main(mA),Main Voltage(V)", "--json")
    assert r.code == 0, r.err
    assert json.loads(r.out)["mean_power_w"] == pytest.approx(0.6)
