"""The battery-model seam: the registry, the protocol every model keeps, stepping, checkpoints, extension."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import BadInputError
from testbed.battery import registry
from testbed.battery.cell import load_cell
from testbed.battery.ecm import EcmBattery
from testbed.battery.model import END_REASONS, BatteryModel, BatteryParams, ModelSpec, Trajectory
from testbed.battery.rt3_accounting import RT3_ENERGY_J, RT3_FREQ_GHZ, RT3_VOLT_V, rt3_power_w
from testbed.battery.simulate import Load, run_load, simulate, simulate_ecm
from testbed.experiment.assemble import make_battery
from testbed.experiment.config import parse_experiment
from traces.power import constant_power

BUCKETS = ("rt3-accounting", "energy-bucket", "bucket")


def _life(battery: BatteryModel, schedule: list[tuple[float, float]]) -> float:
    t = 0.0
    while not battery.ended:
        for p, dt in schedule:
            t += battery.step(p, dt)
            if battery.ended:
                break
    return t


# -- the stepped models against closed forms and the whole-run simulation -----------------------------------


def test_bucket_life_is_energy_over_power() -> None:
    b = registry.create("bucket", BatteryParams(energy_j=1000.0, efficiency=0.8, static_power_w=0.5))
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
    b = EcmBattery(BatteryParams(cell=cell))
    life = _life(b, schedule)
    assert life == pytest.approx(ref.life_s, rel=1e-6)
    assert b.end_reason == ref.end_reason
    assert b.load_energy_j == pytest.approx(ref.load_energy_j, rel=1e-6)


def test_ecm_splits_long_steps_and_resumes_from_state() -> None:
    cell = load_cell("nmc-18650")
    a = EcmBattery(BatteryParams(cell=cell, max_step_s=1.0))
    a.step(4.0, 600.0)
    b = EcmBattery(BatteryParams(cell=cell, max_step_s=1.0))
    for _ in range(600):
        b.step(4.0, 1.0)
    assert a.soc == pytest.approx(b.soc, rel=1e-12)
    c = EcmBattery(BatteryParams(cell=cell))
    c.restore(a.state())
    assert c.soc == a.soc and c.v_rc == a.v_rc
    assert math.isclose(c.step(4.0, 1.0), 1.0)


def test_power_beyond_the_cell_ends_at_once() -> None:
    b = EcmBattery(BatteryParams(cell=load_cell("phone-lco")))
    assert b.step(1e6, 1.0) == 0.0
    assert b.ended and b.end_reason == "power_limit"


def test_bad_parameters() -> None:
    with pytest.raises(BadInputError, match="energy_j"):
        BatteryParams(energy_j=0.0)
    with pytest.raises(BadInputError, match="efficiency"):
        EcmBattery(BatteryParams(cell=load_cell("phone-lco"), efficiency=1.5))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"energy_j": -1.0}, "battery.energy_j"),
        ({"soc0": 0.0}, "battery.soc0"),
        ({"efficiency": 0.0}, "battery.efficiency"),
        ({"static_power_w": math.nan}, "battery.static_power_w"),
        ({"max_step_s": 0.0}, "battery.max_step_s"),
        ({"drive": "voltage"}, "battery.drive"),
    ],
)
def test_one_validator_one_line_naming_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(BadInputError) as err:
        BatteryParams(**kwargs)  # type: ignore[arg-type]
    assert str(err.value).startswith(field + " ") and "\n" not in str(err.value)


def test_models_say_what_they_need() -> None:
    with pytest.raises(BadInputError, match=r"battery\.cell"):
        registry.create("ecm", BatteryParams(energy_j=10.0))
    with pytest.raises(BadInputError, match=r"battery\.energy_j"):
        registry.create("energy-bucket", BatteryParams())
    with pytest.raises(BadInputError, match="no converter loss"):
        registry.create("rt3-accounting", BatteryParams(energy_j=10.0, efficiency=0.9))


# -- the registry ------------------------------------------------------------------------------------------


def test_registry_lists_the_models_and_keeps_the_old_name() -> None:
    assert registry.names() == ["ecm", "energy-bucket", "rt3-accounting"]
    assert registry.spec("bucket") is registry.spec("energy-bucket")
    assert registry.spec("ecm").voltage and not registry.spec("rt3-accounting").voltage
    with pytest.raises(BadInputError, match=r"unknown battery model 'kibam'; known: ecm, energy-bucket"):
        registry.spec("kibam")
    with pytest.raises(BadInputError, match="already registered"):
        registry.register(registry.spec("ecm"))
    with pytest.raises(BadInputError, match="built in"):
        registry.unregister("ecm")


def test_rt3_accounting_life_is_rt3s_energy_over_power_bit_for_bit() -> None:
    for share, f, v in zip((0.5, 0.3, 0.2), RT3_FREQ_GHZ, RT3_VOLT_V, strict=True):
        energy = share * RT3_ENERGY_J
        power = f * pow(10, 9) * pow(v, 2) * pow(10, -10)
        battery = registry.create("rt3-accounting", BatteryParams(energy_j=energy))
        assert battery.life_at_power_s(rt3_power_w(f, v)) == energy / power
        assert battery.soc == 1.0 and not battery.ended  # asking does not drain it


def test_ecm_life_at_power_matches_the_whole_run_and_leaves_the_battery_alone() -> None:
    cell = load_cell("phone-lco")
    b = EcmBattery(BatteryParams(cell=cell, record=True))
    b.step(2.0, 30.0)
    before = json.dumps(b.state())
    assert b.trajectory is not None
    n_points = len(b.trajectory["t_s"])
    life = b.life_at_power_s(2.0)
    assert json.dumps(b.state()) == before and len(b.trajectory["t_s"]) == n_points
    whole = simulate(cell, constant_power(2.0))
    assert 30.0 + life == pytest.approx(whole.life_s, rel=1e-9)
    assert b.life_at_power_s(0.0) == math.inf


class ConstantVoltage:
    """A test model: a charge counter at a fixed 3.6 V (I = P / V), empty when the charge is used."""

    name = "test-constant-voltage"
    ohmic_loss_j = 0.0
    trajectory: Trajectory | None = None

    def __init__(self, params: BatteryParams) -> None:
        energy_j = params.energy_j if params.energy_j is not None else params.cell.energy_j() if params.cell else None
        if energy_j is None:
            raise BadInputError("battery.energy_j: test-constant-voltage needs energy_j or a cell")
        self.charge_c = energy_j / 3.6
        self.used_c = 0.0
        self.soc = 1.0
        self.ended = False
        self.end_reason: str | None = None
        self.load_energy_j = 0.0
        self.delivered_energy_j = 0.0
        self._i = 0.0

    def step(self, power_w: float, dt_s: float) -> float:
        if self.ended or dt_s <= 0:
            return 0.0
        self._i = power_w / 3.6
        got = min(dt_s, (self.charge_c - self.used_c) / self._i) if self._i > 0 else dt_s
        self.used_c += self._i * got
        self.load_energy_j += power_w * got
        self.delivered_energy_j += power_w * got
        self.soc = max(0.0, 1.0 - self.used_c / self.charge_c)
        if got < dt_s:
            self.ended, self.end_reason, self.soc = True, "empty", 0.0
        return got

    def voltage_v(self) -> float | None:
        return 3.6

    def current_a(self) -> float | None:
        return self._i

    def end_voltage_v(self) -> float | None:
        return 3.6 if self.ended else None

    def life_at_power_s(self, power_w: float) -> float:
        return (self.charge_c - self.used_c) * 3.6 / power_w if power_w > 0 else math.inf

    def state(self) -> dict[str, object]:
        return {"used_c": self.used_c}

    def restore(self, state: Mapping[str, object]) -> None:
        used = state["used_c"]
        assert isinstance(used, float)
        self.used_c = used


def test_a_model_registered_at_run_time_is_usable_by_name(tmp_path: Path) -> None:
    spec = ModelSpec("test-constant-voltage", ConstantVoltage, "test model", ("energy_j", "cell"), voltage=True)
    registry.register(spec)
    try:
        assert "test-constant-voltage" in registry.names()
        battery = registry.create("test-constant-voltage", BatteryParams(energy_j=36.0))
        assert _life(battery, [(2.0, 1.0), (1.0, 1.0)]) == pytest.approx(24.0)
        cell = load_cell("phone-lco")
        result = simulate(cell, constant_power(2.0), model="test-constant-voltage")
        assert (result.model, result.end_reason) == ("test-constant-voltage", "empty")
        assert result.life_s == pytest.approx(cell.energy_j() / 2.0, rel=1e-9)
        cfg = parse_experiment(
            {
                "name": "t",
                "requests": {"period_ms": 100.0, "deadline_ms": 50.0},
                "battery": {"model": "test-constant-voltage", "energy_j": 72.0},
            },
            "<test>",
            str(tmp_path),
        )
        built = make_battery(cfg)
        assert isinstance(built, ConstantVoltage)
        assert run_load(built, Load((1.0,), (4.0,))).life_s == pytest.approx(18.0)
    finally:
        registry.unregister("test-constant-voltage")
    assert not registry.is_known("test-constant-voltage")


# -- every model keeps the protocol ------------------------------------------------------------------------

SMALL_CELL = dataclasses.replace(load_cell("phone-lco"), capacity_ah=0.002)  # ends within a few schedules


def _build(name: str, efficiency: float, static_w: float) -> BatteryModel:
    if name == "rt3-accounting":
        return registry.create(name, BatteryParams(energy_j=50.0))
    if name == "ecm":
        return registry.create(name, BatteryParams(cell=SMALL_CELL, efficiency=efficiency, static_power_w=static_w))
    return registry.create(name, BatteryParams(energy_j=50.0, efficiency=efficiency, static_power_w=static_w))


SCHEDULE = st.lists(
    st.tuples(st.floats(0.0, 6.0, allow_nan=False), st.floats(1e-3, 20.0, allow_nan=False)), min_size=1, max_size=40
)


@settings(max_examples=150, deadline=None)
@given(
    st.sampled_from(["rt3-accounting", "energy-bucket", "ecm"]),
    SCHEDULE,
    st.floats(0.5, 1.0),
    st.floats(0.0, 0.5),
)
def test_every_model_keeps_the_protocol(
    name: str, schedule: list[tuple[float, float]], efficiency: float, static_w: float
) -> None:
    b = _build(name, efficiency, static_w)
    eff, ps = (1.0, 0.0) if name == "rt3-accounting" else (efficiency, static_w)
    soc, load_j, drawn_j = b.soc, 0.0, 0.0
    for p, dt in schedule:
        got = b.step(p, dt)
        assert 0.0 <= got <= dt * (1 + 1e-12)  # a split slice sums its parts: to rounding
        assert b.soc <= soc and b.soc >= 0.0  # never charges under a non-negative load
        soc = b.soc
        load_j += p * got
        drawn_j += (p + ps) / eff * got
        if b.ended:
            assert b.end_reason in END_REASONS
            assert b.step(p, dt) == 0.0
            break
        assert b.end_reason is None
    assert b.load_energy_j == pytest.approx(load_j, rel=1e-9, abs=1e-9)
    # energy is conserved: what the battery gave is what the load, the static draw and the converter took
    assert b.delivered_energy_j == pytest.approx(drawn_j, rel=1e-9, abs=1e-9)
    if name != "ecm":
        assert b.voltage_v() is None and b.current_a() is None and b.ohmic_loss_j == 0.0
        assert b.delivered_energy_j <= 50.0 * (1 + 1e-12)
        if b.ended:
            assert b.delivered_energy_j == pytest.approx(50.0, rel=1e-12)


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(["rt3-accounting", "energy-bucket", "ecm"]), SCHEDULE, SCHEDULE)
def test_a_restored_checkpoint_continues_bit_for_bit(
    name: str, first: list[tuple[float, float]], then: list[tuple[float, float]]
) -> None:
    a = _build(name, 0.9 if name != "rt3-accounting" else 1.0, 0.1 if name != "rt3-accounting" else 0.0)
    for p, dt in first:
        a.step(p, dt)
    b = _build(name, 0.9 if name != "rt3-accounting" else 1.0, 0.1 if name != "rt3-accounting" else 0.0)
    b.restore(json.loads(json.dumps(a.state())))
    for p, dt in then:
        assert a.step(p, dt) == b.step(p, dt)
    assert (a.soc, a.end_reason, a.load_energy_j, a.delivered_energy_j) == (
        b.soc,
        b.end_reason,
        b.load_energy_j,
        b.delivered_energy_j,
    )


def test_checkpoints_written_before_the_registry_still_restore() -> None:
    bucket = registry.create("bucket", BatteryParams(energy_j=100.0))
    bucket.restore({"remaining_j": 40.0, "load_energy_j": 60.0, "ended": False, "end_reason": ""})
    assert (bucket.soc, bucket.end_reason, bucket.delivered_energy_j) == (0.4, None, 60.0)
    ecm = registry.create("ecm", BatteryParams(cell=load_cell("phone-lco")))
    old = {"soc": 0.5, "v_rc": [0.01, 0.0], "load_energy_j": 5.0, "ended": True, "end_reason": "cutoff",
           "v": 3.0, "i": 0.4}  # fmt: skip
    ecm.restore(old)
    assert ecm.ended and ecm.end_reason == "cutoff" and ecm.voltage_v() == 3.0 and ecm.current_a() == 0.4
    with pytest.raises(BadInputError, match="battery checkpoint: soc"):
        ecm.restore({**old, "soc": "half"})


def test_bucket_models_are_one_implementation_under_three_names() -> None:
    built = [registry.create(n, BatteryParams(energy_j=10.0)) for n in BUCKETS]
    assert {type(b) for b in built} == {type(built[0])}
    assert [b.name for b in built] == ["rt3-accounting", "energy-bucket", "energy-bucket"]
