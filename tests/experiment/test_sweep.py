"""Design-space sweep: Latin hypercube, real ONNX encoders, and the predictor's held-out error."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from testbed.agent.client import AgentClient
from testbed.agent.launch import start_local_agent
from testbed.experiment.sweep import (
    FEATURES,
    SEQ_LEN,
    ModelConfig,
    Predictor,
    features,
    held_out_error,
    latin_hypercube,
    run_sweep,
    sample_configs,
    write_encoder_onnx,
)


def test_latin_hypercube_has_one_point_per_stratum() -> None:
    u = latin_hypercube(17, 5, np.random.default_rng(3))
    assert u.shape == (17, 5) and (u >= 0).all() and (u < 1).all()
    for d in range(5):
        assert sorted(np.floor(u[:, d] * 17).astype(int).tolist()) == list(range(17))


def test_sampled_configs_are_valid() -> None:
    for cfg, level in sample_configs(40, ["a", "b", "c"], seed=1):
        assert cfg.hidden % cfg.heads == 0 and level in {"a", "b", "c"}


def test_encoder_graph_runs_with_the_expected_shape(tmp_path: Path) -> None:
    from devices.ort_runtime import create_session

    cfg = ModelConfig(layers=2, hidden=64, heads=4, ffn=128)
    path = write_encoder_onnx(cfg, tmp_path / "m.onnx")
    sess = create_session(path)
    x = np.random.default_rng(0).standard_normal((SEQ_LEN, 64)).astype(np.float32)
    (y,) = sess.run(None, {"x": x})
    assert y.shape == (SEQ_LEN, 64) and np.isfinite(y).all()
    assert ModelConfig(4, 64, 4, 128).flops() == pytest.approx(2 * cfg.flops())


def test_predictor_recovers_a_known_law_and_states_its_uncertainty() -> None:
    rng = np.random.default_rng(0)
    configs = [c for c, _ in sample_configs(120, ["x"], seed=2)]
    freqs = rng.choice([600_000, 1_000_000, 1_500_000], size=len(configs))
    x = np.array([features(c, f) for c, f in zip(configs, freqs, strict=True)])
    assert x.shape[1] == len(FEATURES)
    noise = rng.lognormal(0.0, 0.05, len(configs))
    latency = np.array([c.flops() / f * 1e-3 for c, f in zip(configs, freqs, strict=True)]) * noise
    train, test = np.arange(90), np.arange(90, 120)
    pred = Predictor.fit(x[train], {"latency_ms": latency[train]})
    err = held_out_error(pred, x[test], {"latency_ms": latency[test]})["latency_ms"]
    assert err["mape"] < 0.1
    assert err["coverage"] >= 0.7
    again = Predictor.from_json(json.loads(json.dumps(pred.to_json())))
    assert np.allclose(again.predict(x[test], "latency_ms")[0], pred.predict(x[test], "latency_ms")[0])


@pytest.mark.slow
def test_sweep_through_an_emulated_agent(tmp_path: Path) -> None:
    agent = start_local_agent(tmp_path / "agent", "rpi4")
    with agent, AgentClient(agent.url, agent.token) as c, c.lease("t"):
        report = run_sweep(c, 12, tmp_path / "sweep.csv", window_s=0.2)
    assert report["measurements"] == 12
    assert set(report["held_out"]) == {"latency_ms", "energy_j", "peak_power_w"}
    lines = (tmp_path / "sweep.csv").read_text().splitlines()
    assert len(lines) == 13 and lines[0].startswith("layers,hidden,heads,ffn,level,freq_khz")
    saved = json.loads((tmp_path / "sweep.csv.predictor.json").read_text())
    assert saved["features"] == list(FEATURES) and saved["board"] == "rpi4"
