"""The Thevenin ECM against closed forms and independent quadrature."""

from __future__ import annotations

import math

import numpy as np
import pytest

from devices.errors import BadInputError
from testbed.battery.cell import Cell, RcPair
from testbed.battery.simulate import Load, simulate, simulate_ecm, steps_from_trace
from traces.power import PowerTrace, constant_power


def cell(
    ocv: tuple[tuple[float, float], ...] = ((0.0, 3.7), (1.0, 3.7)),
    r0: float = 0.0,
    rc: tuple[RcPair, ...] = (),
    q: float = 2.0,
    v_cut: float = 3.0,
) -> Cell:
    return Cell(
        name="test",
        capacity_ah=q,
        v_cutoff_v=v_cut,
        v_max_v=4.5,
        r0_ohm=r0,
        ocv_soc=tuple(s for s, _ in ocv),
        ocv_v=tuple(v for _, v in ocv),
        rc=rc,
    )


def test_constant_power_flat_ocv_closed_form():
    v0, r0, p, q = 3.7, 0.08, 2.5, 2.0
    c = cell(r0=r0, q=q)
    i = (v0 - math.sqrt(v0 * v0 - 4 * r0 * p)) / (2 * r0)
    life = 3600 * q / i
    res = simulate(c, constant_power(p), max_step_s=7.0)
    assert res.end_reason == "empty"
    assert res.life_s == pytest.approx(life, rel=1e-12)
    assert res.soc_end == 0.0
    assert res.energy_delivered_j == pytest.approx(p * life, rel=1e-12)
    assert res.ohmic_loss_j == pytest.approx(i * i * r0 * life, rel=1e-12)


def test_power_beyond_the_cell_ends_at_once():
    v0, r0 = 3.7, 0.1
    res = simulate(cell(r0=r0), constant_power(v0 * v0 / (4 * r0) * 1.001))
    assert (res.end_reason, res.life_s, res.soc_end) == ("power_limit", 0.0, 1.0)


def test_voltage_below_cutoff_ends_at_once():
    # V = e - I·R0 with I = 1 A at 3.7 V / 1 Ω: below a 3.0 V cut-off from the start
    res = simulate_ecm(cell(r0=1.0), Load((1.0,), (1.0,)), mode="current")
    assert (res.end_reason, res.life_s) == ("cutoff", 0.0)


def test_constant_current_linear_ocv_cutoff_closed_form():
    a, b, r0, i, q, v_cut = 3.0, 1.2, 0.05, 1.3, 2.5, 3.3
    c = cell(ocv=((0.0, a), (1.0, a + b)), r0=r0, q=q, v_cut=v_cut)
    # a + b·(1 − I·t/(3600·Q)) − I·R0 = V_cut
    t_end = (a + b - i * r0 - v_cut) * 3600 * q / (b * i)
    for dt in (1.0, 13.0, 600.0):  # exact at any step: the crossing is interpolated within the step
        res = simulate_ecm(c, Load((dt,), (i,)), mode="current")
        assert res.end_reason == "cutoff"
        assert res.life_s == pytest.approx(t_end, rel=1e-12)
        assert res.v_end_v == v_cut
        assert res.soc_end == pytest.approx(1 - i * t_end / (3600 * q), rel=1e-12)
    traj = simulate_ecm(c, Load((60.0,), (i,)), mode="current", record=True).trajectory
    assert traj is not None
    assert traj["t_s"][-1] == pytest.approx(t_end, rel=1e-12) and traj["voltage_v"][-1] == v_cut
    assert all(b > a for a, b in zip(traj["t_s"], traj["t_s"][1:], strict=False))


def test_rc_step_response_exact():
    v0, r0, r1, c1, r2, c2, i = 3.7, 0.03, 0.02, 1500.0, 0.01, 50.0, 2.0
    c = cell(r0=r0, rc=(RcPair(r1, c1), RcPair(r2, c2)), q=0.62)  # empty after ~1100 s
    res = simulate_ecm(c, Load((0.5,), (i,)), mode="current", record=True)
    traj = res.trajectory
    assert traj is not None
    t = np.array(traj["t_s"][:2000])
    expected = v0 - i * r0 - i * r1 * (1 - np.exp(-t / (r1 * c1))) - i * r2 * (1 - np.exp(-t / (r2 * c2)))
    assert np.allclose(traj["voltage_v"][:2000], expected, rtol=0, atol=1e-12)


def test_rc_relaxation_after_a_pulse():
    v0, r0, r1, c1 = 3.7, 0.05, 0.04, 500.0
    c = cell(r0=r0, rc=(RcPair(r1, c1),), q=0.06)  # empty in the second pass
    load = Load(tuple([1.0] * 60 + [1.0] * 240), tuple([3.0] * 60 + [0.0] * 240))
    res = simulate_ecm(c, load, mode="current", record=True)
    traj = res.trajectory
    assert traj is not None
    tau = r1 * c1
    v_rc_end = 3.0 * r1 * (1 - math.exp(-60 / tau))
    for k in (60, 120, 299):  # after the pulse: V = OCV − v_rc(60)·exp(−(t−60)/τ)
        assert traj["voltage_v"][k] == pytest.approx(v0 - v_rc_end * math.exp(-(k - 60) / tau), abs=1e-12)


def _quad_life(a: float, b: float, r0: float, p: float, q: float, soc_end: float, n: int = 400001) -> float:
    """t = 3600·Q·∫ dsoc / I(soc) from soc_end to 1 (independent of the simulator's stepping)."""
    soc = np.linspace(soc_end, 1.0, n)
    e = a + b * soc
    current = (e - np.sqrt(e * e - 4 * r0 * p)) / (2 * r0)
    f = 1.0 / current
    return float(3600 * q * np.sum((f[1:] + f[:-1]) * 0.5 * np.diff(soc)))


def test_constant_power_linear_ocv_cutoff_matches_quadrature():
    a, b, r0, p, q, v_cut = 3.0, 1.2, 0.06, 4.0, 2.0, 3.2
    c = cell(ocv=((0.0, a), (1.0, a + b)), r0=r0, q=q, v_cut=v_cut)
    e_end = v_cut + p * r0 / v_cut  # at the cut-off: V = V_cut, I = P / V_cut, e = V + I·R0
    soc_end = (e_end - a) / b
    expected = _quad_life(a, b, r0, p, q, soc_end)
    res = simulate(c, constant_power(p), max_step_s=1.0)
    assert res.end_reason == "cutoff"
    assert res.life_s == pytest.approx(expected, rel=2e-4)
    assert res.soc_end == pytest.approx(soc_end, abs=1e-4)


def test_power_limit_inside_a_step_matches_quadrature():
    a, b, r0, p, q = 2.0, 2.0, 0.4, 3.0, 1.0
    c = cell(ocv=((0.0, a), (1.0, a + b)), r0=r0, q=q, v_cut=0.5)
    soc_star = (2 * math.sqrt(r0 * p) - a) / b  # e² = 4·R0·P: no real current beyond it
    expected = _quad_life(a, b, r0, p, q, soc_star + 1e-9)
    res = simulate(c, constant_power(p), max_step_s=0.5)
    assert res.end_reason == "power_limit"
    assert res.life_s == pytest.approx(expected, rel=2e-3)
    assert res.soc_end == pytest.approx(soc_star, abs=2e-3)
    assert res.life_s % 0.5 != 0.0  # placed inside the step, not at its edge


def test_static_power_and_efficiency():
    v0, q, p, ps, eff = 3.7, 2.0, 1.0, 0.25, 0.8
    res = simulate(cell(q=q), constant_power(p), static_power_w=ps, efficiency=eff)
    expected = 3600 * q * v0 / ((p + ps) / eff)
    assert res.life_s == pytest.approx(expected, rel=1e-12)
    assert res.load_energy_j == pytest.approx(p * expected, rel=1e-12)


def test_repeating_trace_lossless_equals_bucket():
    trace = PowerTrace(np.array([0.0, 10.0, 25.0]), np.array([2.0, 0.5, 4.0]), duration_s=40.0)
    c = cell(q=0.3)
    ecm = simulate(c, trace, max_step_s=1.0)
    bucket = simulate(c, trace, model="energy-bucket")
    assert ecm.end_reason == bucket.end_reason == "empty"
    assert ecm.life_s == pytest.approx(bucket.life_s, rel=1e-9)
    # closed form: energy 3600·Q·V0 over passes of 20 + 7.5 + 60 = 87.5 J
    energy = 3600 * 0.3 * 3.7
    passes = math.floor(energy / 87.5)
    rest = energy - passes * 87.5
    t_in = rest / 2.0 if rest <= 20 else (10 + (rest - 20) / 0.5 if rest <= 27.5 else 25 + (rest - 27.5) / 4.0)
    assert bucket.life_s == pytest.approx(passes * 40 + t_in, rel=1e-12)
    assert ecm.passes == pytest.approx(ecm.life_s / 40.0)


def test_losses_shorten_life_and_bucket_is_the_upper_bound():
    c = cell(ocv=((0.0, 3.0), (0.5, 3.7), (1.0, 4.2)), r0=0.1, rc=(RcPair(0.05, 400.0),), q=2.0)
    trace = PowerTrace(np.arange(0.0, 60.0, 1.0), np.where(np.arange(60) % 3 == 0, 5.0, 0.8))
    ecm = simulate(c, trace)
    bucket = simulate(c, trace, model="bucket")
    assert ecm.life_s < bucket.life_s
    assert ecm.energy_delivered_j + ecm.ohmic_loss_j <= c.energy_j() * 1.0001
    # a finer step changes the life little (first-order accurate stepping)
    fine = simulate(c, trace, max_step_s=0.25)
    assert fine.life_s == pytest.approx(ecm.life_s, rel=2e-3)


def test_steps_from_trace_splits_long_holds():
    trace = PowerTrace(np.array([0.0, 2.5]), np.array([1.0, 2.0]), duration_s=3.0)
    load = steps_from_trace(trace, max_step_s=1.0)
    assert load.dt_s == pytest.approx((2.5 / 3, 2.5 / 3, 2.5 / 3, 0.5))
    assert load.value == (1.0, 1.0, 1.0, 2.0)
    assert steps_from_trace(constant_power(3.0), 2.0) == Load((2.0,), (3.0,))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"soc0": 0.0}, "initial SoC"),
        ({"soc0": 1.5}, "initial SoC"),
        ({"efficiency": 0.0}, "efficiency"),
        ({"static_power_w": -1.0}, "static power"),
        ({"mode": "voltage"}, "drive mode"),
    ],
)
def test_ecm_bad_arguments(kwargs, message):
    with pytest.raises(BadInputError, match=message):
        simulate_ecm(cell(), Load((1.0,), (1.0,)), **kwargs)


def test_zero_load_never_ends_is_an_error():
    with pytest.raises(BadInputError, match="never end"):
        simulate_ecm(cell(), Load((1.0,), (0.0,)))
    with pytest.raises(BadInputError, match="forever"):
        simulate(cell(), PowerTrace(np.array([0.0, 1.0]), np.array([0.0, 0.0])), model="energy-bucket")
