from __future__ import annotations

import pytest

from devices.errors import BadInputError
from testbed.battery.rt3_accounting import RT3_ENERGY_J, RT3_FREQ_GHZ, RT3_SPLIT, RT3_VOLT_V, rt3_power_w, rt3_runs
from testbed.search.reward import RewardConfig, battery_runs, calibrated, compute_reward

POWER_W = [rt3_power_w(f, v) for f, v in zip(RT3_FREQ_GHZ, RT3_VOLT_V, strict=True)]


def test_bucket_runs_equal_rt3_accounting_exactly() -> None:
    lat = [101.3, 97.0, 88.25]
    ours = battery_runs(RT3_ENERGY_J, RT3_SPLIT, POWER_W, lat)
    ref = rt3_runs(RT3_ENERGY_J, RT3_SPLIT, RT3_FREQ_GHZ, RT3_VOLT_V, lat)
    assert ours == ref.runs_per_level


def test_reward_terms_match_hand_computation_with_rt3_defaults() -> None:
    cfg = RewardConfig()
    acc = [0.92, 0.91, 0.90]
    lat = [110.0, 100.0, 90.0]
    t = compute_reward(acc, lat, lat, POWER_W, [115.0, 104.0, 94.0], cfg)
    wacc = 0.5 * 0.92 + 0.3 * 0.91 + 0.2 * 0.90
    assert t.weighted_accuracy == pytest.approx(wacc)
    assert t.accuracy_term == pytest.approx((wacc - 0.85) / (0.9745 - 0.85))
    # runs by hand: E_k = split_k · 37800 J, P_k = f·1e9·V²·1e-10 W, runs_k = floor(E_k / P_k · 1000 / latency_k)
    levels = zip((0.5, 0.3, 0.2), (1.4, 1.0, 0.8), (1.24, 1.06625, 0.9925), lat, strict=True)
    hand = [int((s * 37800 / (f * 1e9 * v * v * 1e-10)) * 1000 // lt) for s, f, v, lt in levels]
    assert t.runs_per_level == hand and t.runs == sum(hand)
    assert t.battery_term == pytest.approx((sum(hand) - 2.3e6) / (4.5e6 - 2.3e6))
    assert t.monotonic and t.monotonic_term == 0.0
    assert t.reward == pytest.approx(t.accuracy_term + t.battery_term)


def test_missed_deadline_and_rising_accuracy_are_penalised() -> None:
    cfg = RewardConfig()
    lat = [110.0, 100.0, 95.0]
    t = compute_reward([0.90, 0.91, 0.90], lat, lat, POWER_W, [115.0, 104.0, 94.0], cfg)
    assert t.deadline_met == [True, True, False]
    assert t.accuracy_term == -1.0
    assert not t.monotonic and t.monotonic_term == -0.5
    assert t.reward == pytest.approx(-1.0 - 0.5 + t.battery_term)


def test_weights_are_configurable() -> None:
    cfg = RewardConfig(w_accuracy=2.0, w_battery=0.0, accuracy_weights=(1.0, 0.0, 0.0), monotonic_penalty=0.0)
    lat = [1.0, 1.0, 1.0]
    t = compute_reward([0.9, 0.1, 0.95], lat, lat, POWER_W, [2.0, 2.0, 2.0], cfg)
    assert t.reward == pytest.approx(2.0 * (0.9 - 0.85) / (0.9745 - 0.85))


def test_calibration_and_bad_configs() -> None:
    cfg = calibrated(RewardConfig(), dense_runs=10.0, sparse_runs=30.0, dense_accuracy=0.5)
    assert (cfg.runs_low, cfg.runs_high) == (10.0, 30.0)
    assert cfg.acc_high == 0.5 and cfg.acc_low == pytest.approx(0.5 - 0.1245)
    with pytest.raises(BadInputError):
        calibrated(RewardConfig(), dense_runs=30.0, sparse_runs=10.0)
    with pytest.raises(BadInputError):
        RewardConfig(acc_low=0.9, acc_high=0.8)
    with pytest.raises(BadInputError):
        compute_reward([0.9], [1.0, 2.0], [1.0], [1.0], [1.0], RewardConfig())
