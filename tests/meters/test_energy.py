"""Energy over windows against analytic ground truth, edge interpolation, counters, gaps (no threads)."""

from __future__ import annotations

import itertools
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.fake.meters.waveform import Waveform
from devices.meters.energy import COUNTER_MAX_RELATIVE_ERROR, WindowIntegrator, integrate
from devices.meters.samples import Sample

S = 1_000_000_000


def sampled(wf: Waveform, rate_hz: float, duration_s: float, counter_res_j: float | None = None) -> list[Sample]:
    n = int(duration_s * rate_hz) + 1
    out = []
    for i in range(n):
        t = i / rate_hz
        e = None
        if counter_res_j is not None:
            e = math.floor(wf.energy_j(0, t) / counter_res_j) * counter_res_j
        out.append(Sample(round(t * S), wf.power_w(t), voltage_v=5.0, current_a=wf.power_w(t) / 5.0, energy_j=e))
    return out


def test_constant_power_is_exact_for_any_edges() -> None:
    samples = sampled(Waveform("const", 3.25, 3.25), 2.0, 10.0)
    r = integrate(samples, int(1.23 * S), int(7.77 * S))
    assert r.energy_j == pytest.approx(3.25 * 6.54, rel=1e-12)
    assert r.mean_power_w == pytest.approx(3.25)
    assert r.mean_voltage_v == pytest.approx(5.0)
    assert r.mean_current_a == pytest.approx(0.65)
    assert r.complete and r.coverage == 1.0
    assert r.samples == 13  # samples at 1.5, 2.0, …, 7.5 s


def test_edges_between_samples_are_interpolated_exactly_on_a_linear_segment() -> None:
    # Within one ramp period power is linear, so trapezoids with interpolated edges are exact.
    wf = Waveform("ramp", 1.0, 9.0, period_s=100.0)
    samples = sampled(wf, 1.0, 50.0)
    t0, t1 = 3.3, 41.7
    r = integrate(samples, round(t0 * S), round(t1 * S))
    assert r.energy_j == pytest.approx(wf.energy_j(t0, t1), rel=1e-9)
    assert r.peak_power_w == pytest.approx(wf.power_w(t1), rel=1e-9)
    assert r.min_power_w == pytest.approx(wf.power_w(t0), rel=1e-9)


@pytest.mark.parametrize("shape", ["square", "ramp", "sine"])
def test_trapezoid_error_shrinks_with_rate_and_meets_half_percent_at_realistic_rates(shape: str) -> None:
    wf = Waveform(shape, 2.0, 6.0, period_s=1.0, duty=0.3)
    t0, t1 = 0.37, 29.61
    truth = wf.energy_j(t0, t1)
    errors = []
    for rate in (10.0, 100.0, 1000.0):
        r = integrate(sampled(wf, rate, 30.0), round(t0 * S), round(t1 * S))
        errors.append(abs(r.energy_j - truth) / truth)
    assert errors[2] <= errors[0]
    assert errors[2] <= 0.005


def test_rectangle_rule_is_worse_than_trapezoids_on_a_ramp() -> None:
    wf = Waveform("ramp", 0.0, 10.0, period_s=10.0)
    samples = sampled(wf, 2.0, 10.0)
    truth = wf.energy_j(0, 9.5)
    trap = integrate(samples, 0, round(9.5 * S)).energy_j
    rect = sum(a.power_w * (b.t_ns - a.t_ns) / S for a, b in itertools.pairwise(samples[:20]))
    assert abs(trap - truth) < abs(rect - truth)
    assert trap == pytest.approx(truth, rel=1e-9)


def test_counter_used_when_fine_enough_else_trapezoids() -> None:
    wf = Waveform("square", 1.0, 5.0, period_s=0.7)
    fine = sampled(wf, 10.0, 60.0, counter_res_j=1e-6)
    r = integrate(fine, round(1.05 * S), round(55.05 * S), counter_resolution_j=1e-6)
    assert r.energy_method == "counter"
    assert r.counter_energy_j is not None
    # Counter edges interpolate between samples; whole samples bracket the truth within one step each.
    assert r.energy_j == pytest.approx(wf.energy_j(1.05, 55.05), abs=2 * 0.1 * 5.0)
    coarse = sampled(wf, 10.0, 60.0, counter_res_j=3.6)
    r2 = integrate(coarse, S, 3 * S, counter_resolution_j=3.6)  # ~6 J window vs 3.6 J steps
    assert r2.energy_method == "trapezoid"
    assert r2.counter_energy_j is not None
    assert COUNTER_MAX_RELATIVE_ERROR * r2.trapezoid_energy_j < 2 * 3.6
    assert r2.trapezoid_error_bound_j < 2 * 3.6


def test_coarse_counter_wins_when_trapezoids_are_less_certain() -> None:
    """A 2 Hz meter on fast bursts (a UM on an inference loop): its mWh counter beats its samples."""
    wf = Waveform("square", 1.0, 5.0, period_s=0.7, duty=0.5)
    samples = sampled(wf, 2.0, 70.0, counter_res_j=3.6)
    r = integrate(samples, round(2.2 * S), round(62.2 * S), counter_resolution_j=3.6)
    assert COUNTER_MAX_RELATIVE_ERROR * r.energy_j < 2 * 3.6 < r.trapezoid_error_bound_j
    assert r.energy_method == "counter"
    # Two counter steps of quantisation plus, at each edge, at most half a sample interval at 5 W.
    assert r.energy_j == pytest.approx(wf.energy_j(2.2, 62.2), abs=2 * 3.6 + 2 * 5.0 * 0.5)


def test_counter_going_backwards_falls_back_to_trapezoids() -> None:
    samples = [Sample(i * S, 2.0, energy_j=float(e)) for i, e in enumerate([100, 102, 104, 0, 2, 4])]
    r = integrate(samples, 0, 5 * S, counter_resolution_j=1e-6)
    assert r.energy_method == "trapezoid"
    assert r.energy_j == pytest.approx(10.0)
    assert any("backwards" in e for e in r.events)


def test_gap_is_reported_as_coverage_and_incomplete() -> None:
    samples = [Sample(round(t * S), 4.0) for t in (0, 0.1, 0.2, 0.3, 2.3, 2.4, 2.5)]
    r = integrate(samples, 0, round(2.5 * S), gap_ns=round(0.5 * S))
    assert r.gap_s == pytest.approx(2.0)
    assert r.coverage == pytest.approx(0.2)
    assert not r.complete
    assert r.energy_j == pytest.approx(10.0)  # bridged linearly across the gap


def test_window_before_first_sample_and_after_last_holds_power_and_reports_gaps() -> None:
    samples = [Sample(round(t * S), 2.0) for t in (1.0, 1.5, 2.0)]
    r = integrate(samples, 0, 3 * S, gap_ns=round(0.6 * S))
    assert r.energy_j == pytest.approx(6.0)
    assert r.gap_s == pytest.approx(2.0)
    assert len(r.events) == 2
    empty = integrate([], 0, S)
    assert empty.samples == 0 and empty.coverage == 0.0 and empty.energy_method == "none"


def test_end_before_start_is_rejected() -> None:
    from devices.errors import BadInputError

    w = WindowIntegrator("w", 10, gap_ns=1)
    with pytest.raises(BadInputError):
        w.set_end(5)


def test_idle_baseline_subtraction() -> None:
    samples = sampled(Waveform("const", 5.0, 5.0), 10.0, 10.0)
    r = integrate(samples, S, 9 * S).with_idle(2.0)
    assert r.net_energy_j == pytest.approx((5.0 - 2.0) * 8)
    assert r.net_mean_power_w == pytest.approx(3.0)


times = st.lists(st.integers(min_value=0, max_value=10**10), min_size=2, max_size=40, unique=True).map(sorted)


@settings(max_examples=200, deadline=None)
@given(
    ts=times,
    powers=st.lists(st.floats(min_value=0, max_value=1e3), min_size=40, max_size=40),
    cuts=st.lists(st.integers(min_value=-(10**9), max_value=11 * 10**9), min_size=3, max_size=3).map(sorted),
)
def test_windows_are_additive(ts: list[int], powers: list[float], cuts: list[int]) -> None:
    """Energy over [a, c] equals energy over [a, b] plus [b, c] for any split point (edges exact)."""
    samples = [Sample(t, p) for t, p in zip(ts, powers, strict=False)]
    a, b, c = cuts
    whole = integrate(samples, a, c).energy_j
    parts = integrate(samples, a, b).energy_j + integrate(samples, b, c).energy_j
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-6)
    assert whole >= 0


@settings(max_examples=100, deadline=None)
@given(ts=times, p=st.floats(min_value=0, max_value=100), a=st.integers(0, 10**10), d=st.integers(0, 10**10))
def test_streaming_and_offline_agree(ts: list[int], p: float, a: int, d: int) -> None:
    """A window fed live (prev sample + later ones) equals the offline integral; constant power is exact."""
    samples = [Sample(t, p) for t in ts]
    b = a + d
    r = integrate(samples, a, b)
    assert r.energy_j == pytest.approx(p * d / 1e9, rel=1e-9, abs=1e-9)
    before = [s for s in samples if s.t_ns <= a]
    w = WindowIntegrator("live", a, gap_ns=10**12, prev=before[-1] if before else None)
    w.set_end(b)  # the sampler fixes the end before any later sample arrives
    for s in samples[len(before) :]:
        w.feed(s)
    assert w.result().energy_j == pytest.approx(r.energy_j, rel=1e-9, abs=1e-9)
