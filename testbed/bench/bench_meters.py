"""Power-measurement benchmark: energy accuracy against analytic truth, sampler cost and jitter, parsing.

* ``accuracy``: square and ramp power waveforms produced by the package's fake meters at realistic
  rates, decoded by the real meter code and integrated over windows whose edges fall between samples,
  compared with the waveform's exact integral (goal: ≤ 0.5 % error). Cases: a UM25C polled at 3 Hz
  (values refreshed at 2 Hz, 130-byte frames decoded, trapezoids and its mWh counter), an Arduino
  INA219 streaming CSV at 100 Hz and 1 kHz (millis-mapped timestamps), the Jetson INA3221 at 50 Hz (mV/mA
  quantisation) and RAPL at 10 Hz (µJ counter). The baseline is the rectangle rule ``P(t_now)·Δt`` (as
  Zeus integrates Jetson rails) over the same samples; ``trapezoid_vs_rectangle_error`` < 1 means the
  trapezoids are better. All cases run on a manual clock: deterministic and instant.
* ``sampler``: a real sampler thread on an INA3221 sysfs tree and on the ``wave://`` meter at 100 Hz and
  1 kHz: CPU time of the sampling thread as a fraction of one core (goal at 100 Hz: ≤ 1 %), the same
  for a bare thread that only sleeps one period per iteration (the machine's wake-up floor, measured in
  the same run; ``cpu_vs_bare_sleep_loop`` is the ratio), and the timestamp jitter (std and 99th
  percentile of the interval error, µs; timestamps are taken at each read, so jitter does not bias
  energy).
* ``parse``: UM frames and INA CSV lines decoded per second by the meter code against the bare
  ``struct.unpack`` / ``str.split`` + ``float`` baseline on the same input.
"""

from __future__ import annotations

import itertools
import statistics
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from devices.fake.meters.ina_stream import FakeInaStream
from devices.fake.meters.sysfs_trees import build_ina3221_jp5, set_ina3221_rail
from devices.fake.meters.um_device import FakeUMDevice
from devices.fake.meters.waveform import Waveform
from devices.meters.clock import ManualClock
from devices.meters.energy import integrate
from devices.meters.ina2xx_serial import MillisMapper
from devices.meters.ina_csv import InaLineParser
from devices.meters.registry import open_meter
from devices.meters.sampler import Sampler
from devices.meters.samples import Sample
from devices.meters.um_protocol import MODELS, decode_frame, encode_frame

S = 1_000_000_000
GOAL_ERROR = 0.005


# ---- accuracy --------------------------------------------------------------------------------------
def _rectangle(samples: list[Sample], t0: int, t1: int) -> float:
    """Baseline: each sample's power held back over the interval before it (P(t_now)·Δt)."""
    e = 0.0
    for a, b in itertools.pairwise(samples):
        lo, hi = max(a.t_ns, t0), min(b.t_ns, t1)
        if hi > lo:
            e += b.power_w * (hi - lo) / S
    return e


def _case(samples: list[Sample], t0: int, t1: int, truth: float, resolution_j: float | None = None) -> dict[str, Any]:
    r = integrate(samples, t0, t1, counter_resolution_j=resolution_j)
    assert r.energy_j is not None and r.trapezoid_energy_j is not None  # only the null meter has no energy
    trap_err = abs(r.trapezoid_energy_j - truth) / truth
    rect_err = abs(_rectangle(samples, t0, t1) - truth) / truth
    out: dict[str, Any] = {
        "window_s": round((t1 - t0) / S, 3),
        "truth_j": round(truth, 4),
        "energy_j": round(r.energy_j, 4),
        "method": r.energy_method,
        "error_pct": round(abs(r.energy_j - truth) / truth * 100, 4),
        "trapezoid_error_pct": round(trap_err * 100, 4),
        "rectangle_error_pct": round(rect_err * 100, 4),
        "trapezoid_vs_rectangle_error": round(trap_err / rect_err, 4) if rect_err > 0 else None,
        "meets_goal": abs(r.energy_j - truth) / truth <= GOAL_ERROR,
    }
    if r.counter_energy_j is not None:
        out["counter_error_pct"] = round(abs(r.counter_energy_j - truth) / truth * 100, 4)
    return out


def _um25c(wf: Waveform, window_s: float) -> dict[str, Any]:
    clock = ManualClock(start_ns=S)
    dev = FakeUMDevice("um25c", wf, voltage_v=5.1, clock=clock)
    dev.pty.close()  # frames are built and decoded in-process on the manual clock
    model = MODELS["um25c"]
    samples = []
    while clock() - S < (window_s + 2) * S:
        r = decode_frame(encode_frame(dev.reading()), model)
        samples.append(Sample(clock(), r.power_w, r.voltage_v, r.current_a, r.energy_j))
        clock.advance(1 / 3)
    t0, t1 = S + round(0.77 * S), S + round((0.77 + window_s) * S)
    return _case(samples, t0, t1, wf.energy_j(0.77, 0.77 + window_s), resolution_j=3.6)


def _ina219(wf: Waveform, rate_hz: float, window_s: float) -> dict[str, Any]:
    clock = ManualClock(start_ns=S)
    dev = FakeInaStream(wf, rate_hz=rate_hz, clock=clock, millis_start=2**32 - 1500)
    dev.pty.close()
    parser, mapper = InaLineParser(), MillisMapper()
    samples = []
    for i in range(int((window_s + 2) * rate_hz)):
        t = S + round(i * S / rate_hz)
        host = t + 200_000 + (i * 7919) % 900_000  # 0.2–1.1 ms of USB/serial latency
        rec = parser.parse(dev.line_at(t))
        if rec is None or rec.millis is None:  # the first line only fixes the layout
            continue
        t_ns, _ = mapper.map(rec.millis, host)
        samples.append(Sample(t_ns, rec.power_w, rec.voltage_v, rec.current_a))
    off = samples[0].t_ns - (S + round(S / rate_hz))  # the mapping's constant offset (first line's latency)
    t0, t1 = S + off + round(0.513 * S), S + off + round((0.513 + window_s) * S)
    return _case(samples, t0, t1, wf.energy_j(0.513, 0.513 + window_s))


def _ina3221(wf: Waveform, window_s: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        build_ina3221_jp5(root, {"VDD_IN": (5000, 0)}, update_interval_ms=20)
        clock = ManualClock(start_ns=S)
        meter = open_meter("ina3221://", sysfs_root=root, clock=clock)
        samples = []
        for i in range(int((window_s + 2) * 50)):
            t_s = i / 50
            set_ina3221_rail(root, "VDD_IN", 5000, round(wf.power_w(t_s) / 5.0 * 1000))
            samples.append(meter.read())
            clock.advance(0.02)
    t0, t1 = S + round(0.31 * S), S + round((0.31 + window_s) * S)
    return _case(samples, t0, t1, wf.energy_j(0.31, 0.31 + window_s))


def _rapl(wf: Waveform, window_s: float) -> dict[str, Any]:
    samples = []
    for i in range(int((window_s + 2) * 10)):
        t_s = i / 10
        e_uj = int(wf.energy_j(0, t_s) * 1e6)
        p = wf.energy_j(t_s - 0.1, t_s) / 0.1 if i else 0.0
        samples.append(Sample(S + round(t_s * S), p, energy_j=e_uj / 1e6))
    t0, t1 = S + round(0.25 * S), S + round((0.25 + window_s) * S)
    return _case(samples, t0, t1, wf.energy_j(0.25, 0.25 + window_s), resolution_j=1e-6)


def accuracy(quick: bool) -> dict[str, Any]:
    long_s = 60.0 if quick else 300.0
    # Periods are not multiples of the sample interval, as with a real workload: edges fall anywhere.
    square_slow = Waveform("square", 2.5, 6.5, period_s=10.37, duty=0.4)  # workload phases of seconds
    ramp_slow = Waveform("ramp", 2.5, 6.5, period_s=10.37)
    square_fast = Waveform("square", 2.5, 6.5, period_s=1.037, duty=0.3)  # inference bursts
    ramp_fast = Waveform("ramp", 2.5, 6.5, period_s=1.037)
    cases = {
        "um25c_3hz_square_10s_period": _um25c(square_slow, long_s),
        "um25c_3hz_ramp_10s_period": _um25c(ramp_slow, long_s),
        "um25c_3hz_square_1s_period": _um25c(square_fast, long_s),
        "ina219_100hz_square_1s_period": _ina219(square_fast, 100, 20.0),
        "ina219_100hz_ramp_1s_period": _ina219(ramp_fast, 100, 20.0),
        "ina219_1khz_square_1s_period": _ina219(square_fast, 1000, 10.0),
        "ina219_1khz_ramp_1s_period": _ina219(ramp_fast, 1000, 10.0),
        "ina3221_50hz_square_1s_period": _ina3221(square_fast, 10.0),
        "ina3221_50hz_ramp_1s_period": _ina3221(ramp_fast, 10.0),
        "rapl_10hz_square_1s_period": _rapl(square_fast, 20.0),
        "rapl_10hz_ramp_1s_period": _rapl(ramp_fast, 20.0),
    }
    return {
        "goal_error_pct": GOAL_ERROR * 100,
        "meet_goal": [k for k, c in cases.items() if c["meets_goal"]],
        "miss_goal": [k for k, c in cases.items() if not c["meets_goal"]],
        "cases": cases,
    }


# ---- sampler cost and jitter ----------------------------------------------------------------------
def _thread_cpu_s(ident: int | None) -> float:
    if ident is None:
        return 0.0
    try:
        return time.clock_gettime(time.pthread_getcpuclockid(ident))
    except (OSError, AttributeError):
        return 0.0


def _run_sampler(make: Callable[[], Any], seconds: float, rate_hz: float) -> dict[str, Any]:
    meter = make()
    sampler = Sampler(meter, buffer_size=int(seconds * rate_hz * 2) + 100)
    sampler.start()
    sampler.wait_for_samples(5, 5)
    ident = sampler.thread_ident
    n0 = sampler.samples_read
    cpu0, wall0 = _thread_cpu_s(ident), time.monotonic()
    time.sleep(seconds)
    cpu1, wall1 = _thread_cpu_s(ident), time.monotonic()
    n1 = sampler.samples_read
    samples = sampler.samples()
    sampler.stop()
    period_ns = S / rate_hz
    intervals = [b.t_ns - a.t_ns for a, b in zip(samples[-(n1 - n0) :], samples[-(n1 - n0) + 1 :], strict=False)]
    errs = sorted(abs(x - period_ns) / 1000 for x in intervals) or [0.0]
    return {
        "rate_hz": rate_hz,
        "achieved_hz": round((n1 - n0) / (wall1 - wall0), 1),
        "cpu_fraction_of_one_core": round((cpu1 - cpu0) / (wall1 - wall0), 5),
        "jitter_std_us": round(statistics.pstdev(x - period_ns for x in intervals) / 1000, 1) if intervals else None,
        "jitter_p99_us": round(errs[min(len(errs) - 1, int(0.99 * len(errs)))], 1),
        "meets_goal_1pct_at_100hz": (cpu1 - cpu0) / (wall1 - wall0) <= 0.01 if rate_hz <= 100 else None,
    }


def _sleep_loop_floor(seconds: float, rate_hz: float) -> float:
    """CPU fraction of a bare thread that only sleeps one period per iteration: the wake-up floor."""
    result: list[float] = []

    def loop() -> None:
        c0, t0 = time.thread_time(), time.monotonic()
        next_t = t0
        while time.monotonic() - t0 < seconds:
            next_t += 1 / rate_hz
            time.sleep(max(0.0, next_t - time.monotonic()))
        result.append((time.thread_time() - c0) / (time.monotonic() - t0))

    th = threading.Thread(target=loop)
    th.start()
    th.join()
    return result[0]


def sampler_cost(quick: bool) -> dict[str, Any]:
    seconds = 2.0 if quick else 5.0
    out: dict[str, Any] = {}
    for hz in (100, 1000):
        out[f"bare_sleep_loop_{hz}hz_cpu_fraction"] = round(_sleep_loop_floor(seconds, hz), 5)
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        build_ina3221_jp5(root)
        for hz in (100, 1000):
            uris = {"ina3221_sysfs": f"ina3221://?rate_hz={hz}", "wave": f"wave://square?rate_hz={hz}"}
            for name, uri in uris.items():
                res = _run_sampler(partial(open_meter, uri, sysfs_root=root), seconds, hz)
                floor = out[f"bare_sleep_loop_{hz}hz_cpu_fraction"]
                res["cpu_vs_bare_sleep_loop"] = round(res["cpu_fraction_of_one_core"] / floor, 2) if floor else None
                out[f"{name}_{hz}hz"] = res
    return out


# ---- parsing --------------------------------------------------------------------------------------
def _rate(fn: Callable[[], int], min_s: float) -> float:
    n, t0 = 0, time.perf_counter()
    while True:
        n += fn()
        dt = time.perf_counter() - t0
        if dt >= min_s:
            return n / dt


def parse(quick: bool) -> dict[str, Any]:
    min_s = 0.3 if quick else 1.0
    frame = encode_frame(_reading())
    model = MODELS["um25c"]
    fmt = ">HHHIHHH20IHHHIIHIHHHIHH"

    def um_ours() -> int:
        for _ in range(1000):
            decode_frame(frame, model)
        return 1000

    def um_base() -> int:
        for _ in range(1000):
            struct.unpack(fmt, frame)
        return 1000

    lines = [f"{1000 + i},5.012,{i % 97 / 10:.2f},5.020,{i % 997 / 10:.2f}" for i in range(1000)]

    def ina_ours() -> int:
        p = InaLineParser()
        for line in lines:
            p.parse(line)
        return len(lines)

    def ina_base() -> int:
        for line in lines:
            [float(x) for x in line.split(",")]
        return len(lines)

    um_o, um_b = _rate(um_ours, min_s), _rate(um_base, min_s)
    in_o, in_b = _rate(ina_ours, min_s), _rate(ina_base, min_s)
    return {
        "um_frames_per_s": round(um_o),
        "um_struct_unpack_per_s": round(um_b),
        "um_decode_vs_struct_unpack": round(um_o / um_b, 3),
        "ina_lines_per_s": round(in_o),
        "ina_split_float_per_s": round(in_b),
        "ina_parse_vs_split_float": round(in_o / in_b, 3),
    }


def _reading() -> Any:
    from devices.meters.um_protocol import UMReading

    return UMReading("um25c", 5.08, 0.9123, 4.634, group_mwh=[1234] + [0] * 9)


def run(quick: bool) -> dict[str, Any]:
    acc = accuracy(quick)
    prs = parse(quick)
    smp = sampler_cost(quick)  # threads last, on an otherwise idle process
    return {"accuracy": acc, "parse": prs, "sampler": smp}
