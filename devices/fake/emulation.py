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
"""

from __future__ import annotations

import functools
import time
from dataclasses import dataclass

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
