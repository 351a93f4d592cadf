"""INA219/INA226 CSV from a fake Arduino on a pty: parsing, millis mapping and wrap, faults, accuracy."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.fake.meters.ina_stream import FakeInaStream
from devices.fake.meters.waveform import Waveform
from devices.meters import Sampler, open_meter
from devices.meters.ina2xx_serial import MILLIS_WRAP, InaSerialMeter, MillisMapper
from devices.meters.ina_csv import InaLineParser

MS = 1_000_000


def test_the_adafruit_layout_and_power_from_bus_voltage() -> None:
    p = InaLineParser()
    assert p.parse("123446,5.012,52.10,5.064,521.00") is None  # one line does not fix the layout yet
    rec = p.parse("123456,5.012,52.10,5.064,521.00")
    assert rec is not None
    assert rec.millis == 123456
    assert rec.voltage_v == pytest.approx(5.012)
    assert rec.current_a == pytest.approx(0.521)
    assert rec.power_w == pytest.approx(5.012 * 0.521)


def test_banner_header_and_other_layouts() -> None:
    p = InaLineParser()
    assert p.parse("Hello!") is None
    assert p.parse("Measuring voltage and current with INA219 ...") is None
    assert p.parse("") is None
    assert p.parse("millis,busV,mA,mW") is None  # a header: remembered
    rec = p.parse("10;4.9;100;510")
    assert rec is not None and rec.millis == 10 and rec.power_w == pytest.approx(0.51)
    q = InaLineParser()
    assert q.parse("0,5.0,10.0,5.01,100.0,499.0") is None
    six = q.parse("1,5.0,10.0,5.01,100.0,499.0")
    assert six is not None and six.power_w == pytest.approx(0.499)
    assert q.parse("5.0\t10.0\t5.01\t100.0") is None  # the stream's layout has 6 fields: a partial line
    r = InaLineParser()
    r.parse("5.0\t10.0\t5.01\t100.0")
    four = r.parse("5.0\t10.0\t5.01\t100.0")
    assert four is not None and four.millis is None and four.power_w == pytest.approx(0.5)


def test_a_partial_first_line_cannot_fix_a_shorter_layout() -> None:
    p = InaLineParser()
    assert p.parse("39,5.000,50.0") is None  # the tail of a 5-field line would pass for 3 fields
    assert p.parse("49,5.000,50.00,5.050,500.00") is None
    rec = p.parse("59,5.000,50.00,5.050,500.00")
    assert rec is not None and rec.current_a == pytest.approx(0.5)


def test_a_header_cut_short_is_outvoted_by_the_data() -> None:
    p = InaLineParser()
    assert p.parse("V,current_mA") is None  # the tail of a header: 2 columns
    got = [p.parse(f"{1000 + i},5.0,10.0,5.01,100.0") for i in range(5)]
    assert got[:2] == [None, None] and all(r is not None for r in got[2:])
    assert p.relayouts == 1


@pytest.mark.parametrize(
    "line",
    [
        "12345,5.0",
        "12345,5.0,10.0",
        "1,2,3,4,5,6,7",
        "nan,5,1,5,1",
        "1,inf,1,5,1",
        "-5,5,1,5,1",
        "1.5,5,1,5,1",
        "\x00\xff",
        "5,x,1,5,1",
    ],
)
def test_partial_and_garbled_lines_are_skipped(line: str) -> None:
    p = InaLineParser()
    p.parse("990,5.0,10.0,5.01,100.0")
    assert p.parse("1000,5.0,10.0,5.01,100.0") is not None  # the stream's layout
    skipped = p.skipped
    assert p.parse(line) is None
    assert p.skipped == skipped + 1
    assert p.parse("1010,5.0,10.0,5.01,100.0") is not None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=120))
def test_parser_never_raises(text: str) -> None:
    p = InaLineParser()
    for line in text.splitlines() or [text]:
        p.parse(line)


def test_millis_mapped_once_and_unwrapped() -> None:
    m = MillisMapper()
    host0 = 10_000 * MS
    t0, note = m.map(MILLIS_WRAP - 100, host0)
    assert t0 == host0 and note is None
    t1, note = m.map(MILLIS_WRAP - 50, host0 + 53 * MS)  # 3 ms of transport jitter: device clock wins
    assert t1 == host0 + 50 * MS and note is None
    t2, note = m.map(30, host0 + 130 * MS)  # wrapped past 2**32
    assert t2 == host0 + 130 * MS
    assert note is not None and "wrapped" in note and m.wraps == 1


def test_device_reset_and_drift_remap() -> None:
    m = MillisMapper(max_drift_s=0.5)
    m.map(50_000, 1_000 * MS)
    t, note = m.map(20, 1_100 * MS)  # clock went back: the Arduino reset
    assert note is not None and "reset" in note and t == 1_100 * MS
    t, note = m.map(1_020, 3_100 * MS)  # 1 s of device time but 2 s of host time
    assert note is not None and "drifted" in note and t == 3_100 * MS


@pytest.fixture
def ramp_stream(tmp_path: Path):
    dev = FakeInaStream(
        Waveform("ramp", 1.0, 5.0, period_s=0.5), rate_hz=200, millis_start=MILLIS_WRAP - 400, link=tmp_path / "acm0"
    ).start()
    yield dev
    dev.stop()


def test_stream_energy_matches_the_analytic_integral_across_a_millis_wrap(ramp_stream: FakeInaStream) -> None:
    meter = open_meter(f"ina219+serial://{ramp_stream.port}?baud=115200")
    assert isinstance(meter, InaSerialMeter)
    sampler = Sampler(meter).start()
    try:
        assert sampler.wait_for_samples(3, 5)
        sampler.begin_window("w")
        n = sampler.samples_read
        assert sampler.wait_for_samples(n + 250, 15)  # ~1.25 s, crossing the wrap at 0.4 s
        result = sampler.end_window("w")
    finally:
        sampler.stop()
    assert result is not None and result.complete
    assert meter.mapper.wraps == 1
    # Ground truth: the fake's waveform on the device timeline. A host time t maps to unwrapped device
    # milliseconds (t - offset) / 1e6, and the waveform's time 0 is millis_start.
    offset = meter.mapper.offset_ns
    assert offset is not None
    t0_s = ((result.t_start_ns - offset) / MS - (MILLIS_WRAP - 400)) / 1e3
    t1_s = t0_s + result.duration_s
    truth = ramp_stream.waveform.energy_j(t0_s, t1_s)
    assert result.energy_j == pytest.approx(truth, rel=0.01)


def test_banner_partial_lines_and_garbage_do_not_disturb_the_stream(tmp_path: Path) -> None:
    dev = FakeInaStream(Waveform("const", 2.5, 2.5), rate_hz=100, layout="header", link=tmp_path / "p").start()
    meter = open_meter(f"ina226+serial://{dev.port}")
    assert isinstance(meter, InaSerialMeter)
    try:
        for kind in ("partial", "garbage", "partial"):
            dev.inject(kind)
        got = [meter.read() for _ in range(30)]
    finally:
        meter.close()
        dev.stop()
    assert all(s.power_w == pytest.approx(2.5, rel=0.01) for s in got)
    assert all(b.t_ns > a.t_ns for a, b in itertools.pairwise(got))
    assert meter.parser.skipped >= 2


def test_stall_and_disconnect_reconnect_and_mark_the_window(tmp_path: Path) -> None:
    dev = FakeInaStream(Waveform("const", 3.0, 3.0), rate_hz=100, link=tmp_path / "p").start()
    meter = open_meter(f"ina219+serial://{dev.port}?timeout_s=0.3")
    sampler = Sampler(meter, max_backoff_s=0.2).start()
    try:
        assert sampler.wait_for_samples(5, 5)
        sampler.begin_window("w")
        dev.inject("stall", seconds=0.6)
        n = sampler.samples_read
        assert sampler.wait_for_samples(n + 80, 10)
        dev.inject("disconnect", seconds=0.4)
        n = sampler.samples_read
        assert sampler.wait_for_samples(n + 80, 10)
        result = sampler.end_window("w")
    finally:
        sampler.stop()
        dev.stop()
    assert result is not None
    kinds = [e.kind for e in sampler.events]
    assert "stall" in kinds and "reconnect" in kinds
    assert not result.complete and result.gap_s >= 0.5
    assert result.mean_power_w == pytest.approx(3.0, rel=0.01)
