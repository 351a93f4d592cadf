"""RT3's bucket accounting, checked bit for bit against the reference formula written out independently."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import BadInputError
from testbed.battery.rt3_accounting import RT3_ENERGY_J, RT3_FREQ_GHZ, RT3_SPLIT, RT3_VOLT_V, rt3_runs


def reference_runs(
    latency_list: list[float], frequency_list=(1.400, 1.000, 0.800), voltage_list=(1.240, 1.06625, 0.9925)
):
    """RT3's ``energy_power`` + ``compute_runs_number`` as the reference spells them (Column_pruning,
    utils/runs_number_reward.py): fixed 37800 and 0.5/0.3/0.2 by level index."""
    usage_time_level = []
    full_energy = 37800
    for i in range(len(frequency_list)):
        if i == 0:
            energy = 0.5 * full_energy
        if i == 1:
            energy = 0.3 * full_energy
        if i == 2:
            energy = 0.2 * full_energy
        power = frequency_list[i] * pow(10, 9) * pow(voltage_list[i], 2) * pow(10, -10)
        usage_time = (energy / power) * 1000
        usage_time_level.append(usage_time)
    runs_number = [usage_time_level[i] // latency_list[i] for i in range(len(usage_time_level))]
    return runs_number, sum(runs_number)


def test_rt3_timing_constraints_example():
    per_level, total = reference_runs([115.0, 104.0, 94.0])
    r = rt3_runs(RT3_ENERGY_J, RT3_SPLIT, RT3_FREQ_GHZ, RT3_VOLT_V, [115.0, 104.0, 94.0])
    assert r.runs_per_level == [int(x) for x in per_level]
    assert r.runs == int(total)
    assert r.power_w == [
        f * pow(10, 9) * pow(v, 2) * pow(10, -10) for f, v in zip(RT3_FREQ_GHZ, RT3_VOLT_V, strict=True)
    ]
    assert r.power_w[0] == pytest.approx(0.215264)  # RT3's ≈0.22 W at 1.4 GHz


@settings(max_examples=300, deadline=None)
@given(st.lists(st.floats(min_value=1e-3, max_value=1e4, allow_nan=False), min_size=3, max_size=3))
def test_bit_exact_against_reference(latencies):
    per_level, total = reference_runs(latencies)
    r = rt3_runs(37800, (0.5, 0.3, 0.2), (1.4, 1.0, 0.8), (1.24, 1.06625, 0.9925), latencies)
    assert r.runs_per_level == [int(x) for x in per_level]
    assert r.runs == int(total)


def test_general_levels_follow_the_same_formula():
    r = rt3_runs(1000.0, [0.6, 0.4], [2.0, 1.0], [1.0, 0.9], [10.0, 20.0])
    p0 = 2.0 * 1e9 * 1.0 * 1e-10  # 0.2 W
    p1 = 1.0 * 1e9 * 0.81 * 1e-10  # 0.081 W
    assert r.runs_per_level == [int((600.0 / p0) * 1000 // 10.0), int((400.0 / p1) * 1000 // 20.0)]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ((0.0, [1.0], [1.0], [1.0], [1.0]), "--energy-j"),
        ((1.0, [0.7, 0.7], [1.0, 1.0], [1.0, 1.0], [1.0, 1.0]), "sums to 1.4"),
        ((1.0, [0.5, 0.5], [1.0], [1.0, 1.0], [1.0, 1.0]), "--freq-ghz has 1 values"),
        ((1.0, [1.0], [1.0], [1.0], [0.0]), "--latency-ms values must be positive"),
        ((1.0, [1.0], [1.0], [float("nan")], [1.0]), "--volt values must be positive"),
        ((1.0, [], [], [], []), "at least one level"),
    ],
)
def test_bucket_bad_input(args, message):
    with pytest.raises(BadInputError, match=message):
        rt3_runs(*args)


def test_bucket_cli(cli):
    r = cli(
        "battery", "bucket", "--energy-j", "37800", "--split", "0.5,0.3,0.2", "--freq-ghz", "1.4,1.0,0.8",
        "--volt", "1.24,1.06625,0.9925", "--latency-ms", "115,104,94", "--json",
    )  # fmt: skip
    assert r.code == 0, r.err
    data = json.loads(r.out)
    per_level, total = reference_runs([115.0, 104.0, 94.0])
    assert data["runs"] == int(total)
    assert data["runs_per_level"] == [int(x) for x in per_level]
    text = cli("battery", "bucket", "--energy-j", "37800", "--latency-ms", "115,104,94")
    assert f"runs: {int(total)}" in text.out
    assert "runs_per_level: " + ",".join(str(int(x)) for x in per_level) in text.out
    bad = cli("battery", "bucket", "--energy-j", "37800", "--latency-ms", "115,abc,94")
    assert bad.code == 2 and "comma-separated numbers" in bad.err
