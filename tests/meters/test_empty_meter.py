""" "No meter" is the null meter: windows and measurements say "no energy", nothing crashes, nothing is 0 J."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from devices.errors import BadInputError
from devices.fake.kernel import FakeKernel
from devices.meters.empty import EMPTY_METER_URI, EmptyMeter, has_energy, require_energy
from devices.meters.registry import open_meter
from devices.meters.sampler import Sampler
from tests.conftest import CliResult


def _assert_no_energy(window: Mapping[str, Any]) -> None:
    assert window["energy_j"] is None and window["mean_power_w"] is None
    assert window["trapezoid_energy_j"] is None and window["net_energy_j"] is None
    assert window["energy_method"] == "none" and window["samples"] == 0
    assert window["complete"] is False and window["coverage"] == 0.0
    assert any("no power meter" in e for e in window["events"])


def test_a_sampler_over_the_empty_meter_answers_windows_without_energy() -> None:
    with Sampler(EmptyMeter()) as sampler:
        sampler.begin_window("w")
        result = sampler.end_window("w")
        assert result is not None and not result.energy_available
        _assert_no_energy(result.to_dict())
        assert result.duration_s >= 0
        assert result.with_idle(2.0).net_energy_j is None  # no energy stays no energy
        idle = sampler.measure_idle(0.0)
        assert idle.mean_power_w is None and sampler.idle_power_w is None
        assert sampler.samples() == [] and sampler.exhausted
        sampler.begin_window("cancelled")
        sampler.cancel_window("cancelled")


def test_none_uri_opens_the_empty_meter() -> None:
    meter = open_meter("none://")
    assert isinstance(meter, EmptyMeter) and not meter.measures_energy
    assert meter.info()["uri"] == EMPTY_METER_URI and meter.info()["scheme"] == "none"


def test_has_and_require_energy() -> None:
    measured = {"energy_j": 1.5, "duration_s": 1.0}
    assert has_energy(measured) and require_energy(measured, "profile energy") is measured
    empty = Sampler(EmptyMeter())
    empty.begin_window("w")
    result = empty.end_window("w")
    assert result is not None
    for window in (None, {}, result.to_dict()):
        assert not has_energy(window)
        with pytest.raises(BadInputError, match="the agent has no power meter: cannot profile energy"):
            require_energy(window, "profile energy")


def test_meter_read_refuses_the_null_meter(cli: Callable[..., CliResult]) -> None:
    r = cli("meter", "read", "none://", "--seconds", "0.1")
    assert r.code == 2 and "measures nothing" in r.err


def test_an_agent_without_a_meter_measures_and_reports_no_energy(
    make_board: Callable[[str], FakeKernel], tmp_path: Path
) -> None:
    from devices.agent.service import AgentService
    from devices.board import Board
    from tests.agent.conftest import write_mlp_onnx

    kernel = make_board("rpi4")
    service = AgentService(
        Board(kernel.sysfs()), meter_uri=None, state_dir=tmp_path / "state", emulated=True, models_dir=tmp_path
    )  # models load only from the models directory
    service.start()
    try:
        info = service.info()
        assert info["meter"]["uri"] == EMPTY_METER_URI
        model = service.load_model(str(write_mlp_onnx(tmp_path / "mlp.onnx")))
        m = service.measure(model.model_id, inferences=3, warmup=1, level=None)
        assert m["latency"]["count"] == 3
        _assert_no_energy(m["energy"])
        assert m["energy_per_inference_j"] is None
        json.dumps(m)  # what the HTTP layer sends
        samples = service.power_samples(None, 10)
        assert samples["meter"] == EMPTY_METER_URI and samples["samples"] == []
    finally:
        service.stop()
