"""Emulated-board latency: the host CPU time of an inference, turned into the time it takes on the board.

An emulated agent runs the real model on this host. Wall time on a busy host says more about the other
processes than about the model, so the emulated latency starts from the CPU time of the thread that ran the
inference (``time.thread_time_ns``; the emulated agent runs onnxruntime with one intra-op thread, in the
calling thread) and scales it twice:

- by the board's speed relative to this host at the top frequency: ``host_gflops / board_gflops``, where
  ``board_gflops`` is the board profile's published per-core GEMM-class rate (``[emulation]`` in
  ``devices/profiles/<board>.toml``, with its source) and ``host_gflops`` is measured once per process with
  the same class of kernel (float64 64×64 matrix products through numpy, single-threaded at that size, timed in
  thread CPU time, best of several tries);
- by ``f_max / f`` for the compute-bound share of the inference (``compute_share``); the rest does not
  scale with the core clock.

``latency_ms = cpu_ms · speed · (share · f_max / f + (1 − share))``. A profile without ``[emulation]`` uses
speed 1 (the host is the board) and the profile's default share.

Host spikes (:class:`HostSpikeFilter`): on this project's VM, 0.7 % of a small model's inferences took
1.5–3.6 × the median CPU time, none of them with steal time counted in ``/proc/stat`` (1500 inferences, a
quiet host), so they are the host's cache and memory contention, not the model. Scaled by the board's speed
(about 22 × here) a 2 ms host stall becomes a 50 ms board stall, and the pooled p99 of a profile cell lands
on whichever cell caught one: a quiet-host demo profile had dense-max's p99 at 2.5 × its median at the top
level, higher than at the next level down. The emulated agent therefore clips an inference's CPU time at
:data:`SPIKE_FACTOR` × the running median of the same (model, pattern set) — the emulated board's tails are
the host's ordinary spread (p99/p50 about 1.4 in the same measurement), not its rare stalls — and counts
every clip (``emulated_spikes_clipped`` in a measurement). A real board's latency is never filtered.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections import deque
from collections.abc import Hashable
from dataclasses import dataclass, field

import numpy as np

from devices.board_profile import BoardProfile

#: GEMM size and count of the host calibration (64³ stays single-threaded in OpenBLAS).
_N = 64
_CALLS = 400
_TRIES = 7


@functools.lru_cache(maxsize=1)
def host_gflops_per_core() -> float:
    """Float64 GEMM rate of one host core (GFLOP/s, thread CPU time, best of :data:`_TRIES`); cached."""
    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((_N, _N)), rng.standard_normal((_N, _N))
    out = np.empty((_N, _N))
    best_s = float("inf")
    for _ in range(_TRIES):
        t0 = time.thread_time_ns()
        for _ in range(_CALLS):
            np.matmul(a, b, out=out)
        best_s = min(best_s, (time.thread_time_ns() - t0) / 1e9)
    return 2.0 * _N**3 * _CALLS / max(best_s, 1e-9) / 1e9


@dataclass(frozen=True)
class BoardSpeed:
    """How host CPU time becomes board latency (see the module text)."""

    speed: float  # board seconds per host CPU second at the top frequency
    compute_share: float
    f_max_khz: int
    host_gflops: float
    board_gflops: float | None

    def latency_ms(self, cpu_ms: float, slowdown: float = 1.0) -> float:
        """Board latency (ms) of an inference that took ``cpu_ms`` of host CPU time, at a frequency
        ``slowdown = f_max / f`` below the top (1.0: the top frequency)."""
        return cpu_ms * self.speed * (self.compute_share * slowdown + (1.0 - self.compute_share))

    def to_dict(self) -> dict[str, float | None]:
        return {
            "speed_vs_host": round(self.speed, 4), "compute_share": self.compute_share,
            "host_gflops_per_core": round(self.host_gflops, 3), "board_gflops_per_core": self.board_gflops,
        }  # fmt: skip


def board_speed(profile: BoardProfile, host_gflops: float | None = None) -> BoardSpeed:
    """The emulation scaling of ``profile`` on this host (``host_gflops``: measured when not given)."""
    emu = profile.emulation
    f_max = profile.policies[0].max_khz
    if emu is None:
        return BoardSpeed(1.0, 0.9, f_max, host_gflops or 0.0, None)
    host = host_gflops if host_gflops is not None else host_gflops_per_core()
    return BoardSpeed(host / emu.board_gflops_per_core, emu.compute_share, f_max, host, emu.board_gflops_per_core)


#: An emulated inference's CPU time is clipped at this many times the running median (see the module text).
SPIKE_FACTOR = 1.5
#: Inferences in the running median, and how many are needed before anything is clipped.
SPIKE_WINDOW = 63
SPIKE_MIN_SAMPLES = 15


@dataclass
class HostSpikeFilter:
    """Clips host stalls out of emulated CPU times: per key (a model and its pattern set), a value above
    ``factor`` × the median of the last ``window`` values is replaced by that bound (the median is taken over
    the unclipped values). Nothing is clipped until a key has ``min_samples`` values. ``clipped`` counts."""

    factor: float = SPIKE_FACTOR
    window: int = SPIKE_WINDOW
    min_samples: int = SPIKE_MIN_SAMPLES
    clipped: int = 0
    _recent: dict[Hashable, deque[float]] = field(default_factory=dict)

    def __call__(self, key: Hashable, cpu_ms: float) -> float:
        """The CPU time (ms) to emulate for one inference of ``key`` that took ``cpu_ms`` on the host."""
        recent = self._recent.setdefault(key, deque(maxlen=self.window))
        out = cpu_ms
        if len(recent) >= self.min_samples:
            bound = self.factor * statistics.median(recent)
            if cpu_ms > bound:
                out = bound
                self.clipped += 1
        recent.append(cpu_ms)
        return out
