"""Emulated-board latency comes from the CPU time of the inference, scaled to the board, not from wall time."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devices.agent.service import AgentService
from devices.board import Board
from devices.board_profile import load_profile
from devices.fake.emulation import BoardSpeed, board_speed, host_gflops_per_core
from devices.fake.kernel import FakeKernel

SPEED = BoardSpeed(speed=10.0, compute_share=0.9, f_max_khz=1_500_000, host_gflops=20.0, board_gflops=2.0)


class SleepyModel:
    """An inference that spends ``sleep_s`` descheduled (what a busy host does to a thread) and ``burn_s`` on CPU."""

    model_id, active = "sleepy", 0  # what the agent keys its host-spike filter by

    def __init__(self, sleep_s: float, burn_s: float) -> None:
        self.sleep_s, self.burn_s = sleep_s, burn_s

    def infer(self) -> float:
        t0 = time.perf_counter()
        time.sleep(self.sleep_s)
        c0 = time.thread_time()
        while time.thread_time() - c0 < self.burn_s:
            pass
        return (time.perf_counter() - t0) * 1000.0


@pytest.fixture
def service(make_board: Callable[[str], FakeKernel], tmp_path: Path) -> Iterator[AgentService]:
    svc = AgentService(Board(make_board("rpi4").sysfs()), meter_uri=None, state_dir=tmp_path / "s", emulated=True)
    svc.threads = 1
    svc._board_speed = SPEED
    yield svc


def test_the_scaling_formula() -> None:
    s = SPEED
    assert s.latency_ms(2.0) == pytest.approx(20.0)
    assert s.latency_ms(2.0, 2.5) == pytest.approx(2.0 * 10.0 * (0.9 * 2.5 + 0.1))


def test_time_off_the_cpu_does_not_count(service: AgentService) -> None:
    """50 ms descheduled + 2 ms on the CPU: the board latency is 10 x the 2 ms, not 10 x 52 ms."""
    lat = service._one(SleepyModel(0.05, 0.002), 1.0)  # type: ignore[arg-type]
    assert 15.0 <= lat <= 35.0


def test_the_call_lasts_the_emulated_latency_and_scales_with_frequency(service: AgentService) -> None:
    t0 = time.perf_counter()
    fast = service._one(SleepyModel(0.0, 0.002), 1.0)  # type: ignore[arg-type]
    wall_ms = (time.perf_counter() - t0) * 1000.0
    assert wall_ms >= fast * 0.99
    slow = service._one(SleepyModel(0.0, 0.002), 2.5)  # type: ignore[arg-type]
    assert slow / fast == pytest.approx(0.9 * 2.5 + 0.1, rel=0.35)  # CPU-time jitter of a 2 ms burn


def test_real_hardware_keeps_wall_time(make_board: Callable[[str], FakeKernel], tmp_path: Path) -> None:
    svc = AgentService(Board(make_board("rpi4").sysfs()), meter_uri=None, state_dir=tmp_path / "s", emulated=False)
    assert svc.slowdown() is None
    assert svc._one(SleepyModel(0.02, 0.0), None) >= 20.0  # type: ignore[arg-type]


def test_profiles_cite_their_speed_and_the_host_is_measured() -> None:
    emu = load_profile("rpi4").emulation
    assert emu is not None and "feiereisen.net" in emu.speed_source and emu.board_gflops_per_core == 2.0
    assert host_gflops_per_core() > 0
    assert board_speed(load_profile("rpi4"), host_gflops=20.0).speed == pytest.approx(10.0)
    assert board_speed(load_profile("laptop"), host_gflops=20.0).speed == 1.0


def test_host_spikes_are_clipped_at_a_multiple_of_the_running_median() -> None:
    """A host stall (3 x the median CPU time) becomes 1.5 x the median; ordinary spread passes unchanged;
    nothing is clipped before a key has enough samples; keys are independent."""
    from devices.fake.emulation import HostSpikeFilter

    f = HostSpikeFilter(factor=1.5, window=31, min_samples=10)
    assert f("a", 30.0) == 30.0  # no history yet: nothing to compare with
    for i in range(20):
        assert f("a", 10.0 + 0.1 * (i % 5)) == 10.0 + 0.1 * (i % 5)
    assert f("a", 14.0) == 14.0  # 1.4 x the median: the host's ordinary spread
    assert f("a", 30.0) == pytest.approx(1.5 * 10.2)
    assert f.clipped == 1
    assert f("b", 30.0) == 30.0  # another model or pattern set has its own median
