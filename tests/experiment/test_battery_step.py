"""The stepped batteries against the battery package's own simulators and closed forms."""

from __future__ import annotations

import math

import pytest

from devices.errors import BadInputError
from testbed.battery.cell import load_cell
from testbed.battery.ecm import Load, simulate_ecm
from testbed.experiment.battery_step import BucketBattery, EcmBattery


def _life(battery: BucketBattery | EcmBattery, schedule: list[tuple[float, float]]) -> float:
    t = 0.0
    while not battery.ended:
        for p, dt in schedule:
            t += battery.step(p, dt)
            if battery.ended:
                break
    return t


def test_bucket_life_is_energy_over_power() -> None:
    b = BucketBattery(1000.0, efficiency=0.8, static_power_w=0.5)
    life = _life(b, [(4.5, 0.3), (1.5, 0.7)])
    # closed form: whole 1-s cycles, then the rest inside the piecewise-constant cycle
    drain = [(4.5 + 0.5) / 0.8, (1.5 + 0.5) / 0.8]
    cycle_j = drain[0] * 0.3 + drain[1] * 0.7
    n = math.floor(1000.0 / cycle_j)
    rest = 1000.0 - n * cycle_j
    expected = n + (rest / drain[0] if rest <= drain[0] * 0.3 else 0.3 + (rest - drain[0] * 0.3) / drain[1])
    assert life == pytest.approx(expected, rel=1e-9)
    assert b.soc == 0.0 and b.end_reason == "empty"
    # the load energy excludes static power and the converter loss
    part_s = expected - n
    load_j = n * (4.5 * 0.3 + 1.5 * 0.7) + 4.5 * min(part_s, 0.3) + 1.5 * max(part_s - 0.3, 0.0)
    assert b.load_energy_j == pytest.approx(load_j, rel=1e-9)


@pytest.mark.parametrize("cell_name", ["nmc-18650", "phone-lco"])
@pytest.mark.parametrize(("schedule"), [[(5.0, 0.2)], [(6.0, 0.1), (2.5, 0.1)]])
def test_ecm_matches_simulate_ecm(cell_name: str, schedule: list[tuple[float, float]]) -> None:
    cell = load_cell(cell_name)
    ref = simulate_ecm(cell, Load(tuple(dt for _, dt in schedule), tuple(p for p, _ in schedule)))
    b = EcmBattery(cell)
    life = _life(b, schedule)
    assert life == pytest.approx(ref.life_s, rel=1e-6)
    assert b.end_reason == ref.end_reason
    assert b.load_energy_j == pytest.approx(ref.load_energy_j, rel=1e-6)


def test_ecm_splits_long_steps_and_resumes_from_state() -> None:
    cell = load_cell("nmc-18650")
    a = EcmBattery(cell, max_step_s=1.0)
    a.step(4.0, 600.0)
    b = EcmBattery(cell, max_step_s=1.0)
    for _ in range(600):
        b.step(4.0, 1.0)
    assert a.soc == pytest.approx(b.soc, rel=1e-12)
    c = EcmBattery(cell)
    c.restore(a.state())
    assert c.soc == a.soc and c.v_rc == a.v_rc
    assert math.isclose(c.step(4.0, 1.0), 1.0)


def test_power_beyond_the_cell_ends_at_once() -> None:
    b = EcmBattery(load_cell("phone-lco"))
    assert b.step(1e6, 1.0) == 0.0
    assert b.ended and b.end_reason == "power_limit"


def test_bad_parameters() -> None:
    with pytest.raises(BadInputError, match="energy_j"):
        BucketBattery(0.0)
    with pytest.raises(BadInputError, match="efficiency"):
        EcmBattery(load_cell("phone-lco"), efficiency=1.5)
