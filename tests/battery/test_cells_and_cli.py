"""Cell files (bundled and user TOML), `testbed battery simulate|cells|crosscheck` from the CLI."""

from __future__ import annotations

import importlib.util
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import BadInputError, ParseError
from testbed.battery.cell import bundled_cells, load_cell, parse_cell
from tests.conftest import SAMPLES
from traces.battery import read_battery
from traces.power import read_power

GOOD = """name = "t"
capacity_ah = 2.0
v_cutoff_v = 3.0
v_max_v = 4.2
r0_ohm = 0.05
ocv = [[0.0, 3.0], [0.5, 3.7], [1.0, 4.2]]

[[rc]]
r_ohm = 0.02
c_f = 1000.0
"""


def test_bundled_cells_are_sourced_and_plausible():
    names = bundled_cells()
    assert {"phone-lco", "nmc-18650"} <= set(names)
    for n in names:
        c = load_cell(n)
        for key in ("ocv", "capacity_ah", "v_cutoff_v", "v_max_v", "r0_ohm", "rc"):
            assert c.sources.get(key), f"{n}: no source for {key}"
        assert c.ocv_v[0] == pytest.approx(c.v_cutoff_v, abs=0.01)  # SoC 0 is the cut-off at C/50
        assert c.v_cutoff_v < c.ocv(0.5) < c.v_max_v
        assert all(b >= a for a, b in zip(c.ocv_v, c.ocv_v[1:], strict=False))  # OCV rises with SoC
        assert 1 <= len(c.rc) <= 2


def test_energy_is_exact_for_piecewise_linear_ocv(write):
    c = load_cell(write("c.toml", GOOD))
    # 3600·Q·∫OCV: two trapezoids, (3.0+3.7)/2·0.5 + (3.7+4.2)/2·0.5
    assert c.energy_j() == pytest.approx(3600 * 2.0 * (1.675 + 1.975), rel=1e-12)
    assert c.energy_j(0.5, 0.0) == pytest.approx(3600 * 2.0 * 1.675, rel=1e-12)
    assert c.ocv(0.25) == pytest.approx(3.35) and c.ocv(-1) == 3.0 and c.ocv(2) == 4.2


@pytest.mark.parametrize(
    ("edit", "line", "problem"),
    [
        (("capacity_ah = 2.0", "capacity_ah = -2.0"), 2, "capacity_ah must be positive"),
        (("capacity_ah = 2.0\n", ""), None, "missing key 'capacity_ah'"),
        (("v_cutoff_v = 3.0", "v_cutoff_v = 4.5"), 3, "must be below v_max_v"),
        (("[0.5, 3.7]", "[0.0, 3.7]"), 6, "soc values must increase"),
        (("[1.0, 4.2]", "[0.9, 4.2]"), 6, "must span soc 0 to 1"),
        (("[0.5, 3.7]", "[0.5, -3.7]"), 6, "voltage must be positive"),
        (("[0.5, 3.7]", "[0.5]"), 6, "must be [soc, volts]"),
        (("r0_ohm = 0.05", 'r0_ohm = "x"'), 5, "finite number"),
        (("r0_ohm = 0.05", "r0_ohm = 0.05\nwat = 1"), 6, "unknown key 'wat'"),
        (("c_f = 1000.0", "c_f = 1000.0\n[[rc]]\nr_ohm=1\nc_f=1\n[[rc]]\nr_ohm=1\nc_f=1"), 8, "0 to 2"),
        (("c_f = 1000.0", "c_f = 0"), 10, "must be positive"),
        (("ocv = [", "ocv = [[["), 8, "invalid TOML"),
    ],
)
def test_cell_file_errors_name_file_and_line(write, edit, line, problem):
    p = write("c.toml", GOOD.replace(*edit))
    with pytest.raises(ParseError) as info:
        load_cell(p)
    assert str(info.value).startswith(f"{p}:{line}: " if line else f"{p}: ")
    assert problem in str(info.value)


def test_unknown_cell_name():
    with pytest.raises(BadInputError, match=r"bundled cells: .*phone-lco"):
        load_cell("no-such-cell")
    assert parse_cell(GOOD, "x").name == "t"


def test_simulate_cli_json_fields(cli):
    r = cli("battery", "simulate", "--cell", "phone-lco", "--constant-power-w", "1.5", "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert {"life_s", "energy_delivered_j", "end_reason", "soc_end"} <= set(data)
    assert data["end_reason"] in ("cutoff", "power_limit", "empty")
    assert data["energy_delivered_j"] == pytest.approx(1.5 * data["life_s"], rel=1e-9)
    bucket = json.loads(
        cli(
            "battery", "simulate", "--cell", "phone-lco", "--constant-power-w", "1.5", "--model", "bucket", "--json"
        ).out
    )
    assert bucket["end_reason"] == "empty"
    assert bucket["life_s"] == pytest.approx(load_cell("phone-lco").energy_j() / 1.5, rel=1e-12)
    assert data["life_s"] < bucket["life_s"]


def test_simulate_cli_with_power_trace_and_trajectory(cli, tmp_path):
    traj = tmp_path / "traj.csv"
    trace = SAMPLES / "power-inference.synthetic.csv"
    r = cli("battery", "simulate", "--cell", "nmc-18650", "--power-trace", trace, "--trajectory-out", traj, "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["passes"] == pytest.approx(data["life_s"] / read_power(trace).period_s)
    b = read_battery(traj)
    assert b.meta["label"] == "synthetic"
    assert b.t_s[-1] <= data["life_s"] and (b.soc[1:] <= b.soc[:-1]).all()
    assert b.power_w[0] == pytest.approx(read_power(trace).power_w[0], rel=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--cell", "phone-lco"], "exactly one of"),
        (["--cell", "phone-lco", "--constant-power-w", "1", "--power-trace", "x.csv"], "exactly one of"),
        (["--cell", "phone-lco", "--constant-power-w", "-1"], "positive number of watts"),
        (["--cell", "nope", "--constant-power-w", "1"], "unknown cell"),
        (["--cell", "phone-lco", "--constant-power-w", "1", "--model", "kibam"], "unknown --model"),
        (["--cell", "phone-lco", "--constant-power-w", "1", "--efficiency", "1.5"], "efficiency"),
        (["--cell", "phone-lco", "--power-trace", "missing.csv"], "missing.csv: file not found"),
    ],
)
def test_simulate_cli_bad_input(cli, args, message):
    r = cli("battery", "simulate", *args)
    assert r.code == 2
    assert message in r.err and r.err.count("\n") == 1


def test_cells_cli(cli):
    r = cli("battery", "cells", "--json")
    assert r.code == 0
    assert {c["name"] for c in json.loads(r.out)} >= {"phone-lco", "nmc-18650"}
    r = cli("battery", "cells", "phone-lco")
    assert "Ai2020" in r.out and "assumption" in r.out


@pytest.mark.skipif(importlib.util.find_spec("pybamm") is not None, reason="PyBaMM is installed")
def test_crosscheck_without_pybamm_says_how_to_install(cli):
    r = cli("battery", "crosscheck", "--cell", "phone-lco", "--constant-power-w", "2")
    assert r.code == 2 and "pip install pybamm" in r.err


@pytest.mark.slow
def test_crosscheck_agrees_with_pybamm():
    pytest.importorskip("pybamm")
    from testbed.battery.crosscheck import crosscheck
    from traces.power import constant_power

    result = crosscheck(load_cell("phone-lco"), constant_power(2.0))
    assert abs(result.relative_difference) < 0.01


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(st.integers(0, len(GOOD)), st.integers(0, 12), st.text(max_size=12)).map(
        lambda m: GOOD[: m[0]] + m[2] + GOOD[m[0] + m[1] :]
    )
    | st.text(max_size=80)
)
def test_cell_parser_never_raises_anything_else(text):
    try:
        cell = parse_cell(text, "fuzz.toml")
    except BadInputError:  # ParseError included
        return
    assert cell.capacity_ah > 0 and cell.ocv_soc[0] == 0.0 and cell.ocv_soc[-1] == 1.0
