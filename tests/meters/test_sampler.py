"""The sampler: keyed windows (several open, cancel), idle baseline, faults as events, bounded buffer."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.errors import BadInputError, HardwareError
from devices.fake.meters.waveform import WaveformMeter
from devices.meters import Sample, Sampler, open_meter
from devices.meters.base import MeterStall
from devices.meters.clock import ManualClock
from devices.meters.samples import SampleBuffer


def wave(clock: ManualClock, query: str = "square?low_w=2&high_w=6&period_s=1&rate_hz=100") -> WaveformMeter:
    meter = open_meter(f"wave://{query}", clock=clock)
    assert isinstance(meter, WaveformMeter)
    return meter


def run_for(sampler: Sampler, clock: ManualClock, seconds: float) -> None:
    period = sampler.meter.poll_period_s or 0.01
    for _ in range(round(seconds / period)):
        clock.sleep(period)
        sampler.step()


def test_nested_and_overlapping_windows_match_ground_truth(clock: ManualClock) -> None:
    meter = wave(clock, "ramp?low_w=1&high_w=5&period_s=2&rate_hz=100")
    sampler = Sampler(meter, sleep=clock.sleep)
    sampler.step()
    clock.advance(0.003)  # windows begin between samples
    sampler.begin_window("outer")
    run_for(sampler, clock, 0.5)
    clock.advance(0.004)
    sampler.begin_window("inner")
    run_for(sampler, clock, 1.0)
    inner = sampler.end_window("inner")
    sampler.begin_window("tail")
    run_for(sampler, clock, 0.7)
    outer = sampler.end_window("outer")
    tail = sampler.end_window("tail")
    for r in (inner, outer, tail):
        assert r is not None
        truth = meter.energy_between_ns(r.t_start_ns, r.t_end_ns)
        # 100 Hz trapezoids on a sawtooth: only the segments across each reset are off.
        assert r.energy_j == pytest.approx(truth, rel=0.01)
        assert r.complete and r.coverage == 1.0
    assert sampler.open_windows() == []


def test_window_keys_begin_twice_cancel_and_unknown(clock: ManualClock) -> None:
    sampler = Sampler(wave(clock), sleep=clock.sleep)
    sampler.begin_window("a")
    with pytest.raises(BadInputError, match="already open"):
        sampler.begin_window("a")
    sampler.begin_window("a", restart=True)
    sampler.begin_window("b")
    assert sampler.end_window("b", cancel=True) is None
    with pytest.raises(BadInputError, match="no open measurement window 'b'"):
        sampler.end_window("b")
    with pytest.raises(BadInputError):
        sampler.cancel_window("zzz")
    assert sampler.open_windows() == ["a"]


def test_idle_baseline_is_subtracted(clock: ManualClock) -> None:
    meter = wave(clock, "const?power_w=2.5&rate_hz=50")
    sampler = Sampler(meter, sleep=clock.sleep)
    idle = sampler.measure_idle(2.0)
    assert idle.mean_power_w == pytest.approx(2.5)
    meter.waveform = type(meter.waveform)("const", 7.0, 7.0)
    sampler.step()
    sampler.begin_window("load")
    run_for(sampler, clock, 3.0)
    r = sampler.end_window("load")
    assert r is not None
    assert r.energy_j == pytest.approx(21.0, rel=1e-6)
    assert r.idle_power_w == pytest.approx(2.5)
    assert r.net_energy_j == pytest.approx(13.5, rel=1e-6)
    raw = None
    sampler.begin_window("raw")
    run_for(sampler, clock, 1.0)
    raw = sampler.end_window("raw", subtract_idle=False)
    assert raw is not None and raw.net_energy_j is None


class FlakyMeter(WaveformMeter):
    """A waveform meter that fails on command, as a broken cable or a backend bug would."""

    def __init__(self, clock: ManualClock) -> None:
        super().__init__("flaky://", wave(clock).waveform, 0.01, 5.0, clock=clock)
        self.fail_with: list[Exception] = []
        self.reconnects = 0

    def reconnect(self) -> None:
        self.reconnects += 1

    def read(self) -> Sample:
        if self.fail_with:
            raise self.fail_with.pop(0)
        return super().read()


def test_faults_become_events_gaps_and_incomplete_windows(clock: ManualClock) -> None:
    meter = FlakyMeter(clock)
    meter.open()
    sampler = Sampler(meter, sleep=clock.sleep, max_backoff_s=0.05)
    sampler.step()
    sampler.begin_window("w")
    run_for(sampler, clock, 0.5)
    meter.fail_with = [MeterStall("no frame within 1 s"), HardwareError("cable"), ZeroDivisionError("bug")]
    for _ in range(3):
        clock.sleep(0.3)
        assert sampler.step() is None
    run_for(sampler, clock, 0.5)
    r = sampler.end_window("w")
    assert r is not None
    assert [e.kind for e in sampler.events if e.kind != "reconnect"] == ["stall", "fault", "error"]
    assert meter.reconnects == 3
    assert not r.complete
    # From the last good sample to the first after: three failed steps 0.3 s apart, one more 10 ms poll,
    # and a 50 ms back-off before each of the three reconnects.
    assert r.gap_s == pytest.approx(3 * 0.3 + 0.01 + 3 * 0.05, abs=1e-6)
    assert r.coverage == pytest.approx(1 - r.gap_s / r.duration_s)
    assert any("ZeroDivisionError" in e for e in r.events)


def test_buffer_is_bounded_and_counts_drops(clock: ManualClock, tmp_path: Path) -> None:
    sampler = Sampler(wave(clock), sleep=clock.sleep, buffer_size=50)
    sampler.begin_window("long")
    run_for(sampler, clock, 2.0)  # 200 samples
    assert len(sampler.samples()) == 50 and sampler.buffer.dropped == 150
    r = sampler.end_window("long")
    assert r is not None and r.samples == 200  # windows integrate as samples arrive, not from the buffer
    rows = sampler.persist(tmp_path / "s.csv")
    assert rows == 50
    with pytest.raises(BadInputError):
        SampleBuffer(0)


def test_thread_samples_at_the_native_rate_and_windows_wait_for_the_end_edge() -> None:
    meter = open_meter("wave://const?power_w=4&rate_hz=200")
    with Sampler(meter) as sampler:
        assert sampler.wait_for_samples(5, 5)
        sampler.begin_window("w")
        n = sampler.samples_read
        assert sampler.wait_for_samples(n + 40, 10)
        r = sampler.end_window("w")
    assert r is not None
    assert r.energy_j == pytest.approx(4.0 * r.duration_s, rel=1e-9)
    assert r.samples >= 40
    # The end edge was placed with a sample at or after it, not extrapolated.
    assert not any("last" in e for e in r.events)
    assert not sampler.running and not meter.is_open
