"""`meter calibrate` recovers known power-model coefficients from a synthetic measured run."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from devices.board_profile import BoardProfile, load_profile, load_profile_file
from devices.errors import BadInputError
from devices.meters.activity import ActivityRow, read_activity_csv
from devices.meters.calibrate import calibrate
from devices.meters.power_model import coefficients, model_power_w
from devices.meters.samples import Sample, write_samples_csv

S = 1_000_000_000


def synthetic_run(true_profile: BoardProfile, n: int = 80, seed: int = 1) -> tuple[list[Sample], list[ActivityRow]]:
    """Piecewise-constant power from ``true_profile`` over n half-second intervals, sampled at 10 Hz."""
    rng = random.Random(seed)
    freqs = true_profile.policy("policy0").frequencies_khz
    activity = [ActivityRow(0, {}, {})]
    samples: list[Sample] = []
    for k in range(n):
        f = rng.choice(freqs)
        util = {c: rng.choice([0.0, rng.random(), 1.0]) for c in range(4)}
        p = model_power_w(true_profile, {"policy0": f}, util)
        t0, t1 = k * S // 2, (k + 1) * S // 2
        samples += [Sample(t0 + i * S // 10, p) for i in range(5)] + [Sample(t1, p)]
        activity.append(ActivityRow(t1, {"policy0": float(f)}, util))
    return samples, activity


def perturbed(name: str, factor: float) -> BoardProfile:
    prof = load_profile(name)
    pm = prof.power_model.model_dump()
    pm["idle_w"] *= factor
    for cpu in pm["cpu"]:
        cpu["cluster_active_w"] = [x * factor for x in cpu["cluster_active_w"]]
        cpu["core_active_w"] = [x * factor * 1.1 for x in cpu["core_active_w"]]
    return prof.model_copy(update={"power_model": type(prof.power_model).model_validate(pm)})


def test_recovers_the_true_coefficients() -> None:
    start = load_profile("rpi4")
    truth = perturbed("rpi4", 1.3)
    samples, activity = synthetic_run(truth)
    fitted, report = calibrate(start, samples, activity, "synthetic")
    assert coefficients(fitted) == pytest.approx(coefficients(truth), rel=1e-6, abs=1e-9)
    assert report.rmse_after_w < 1e-6 < report.rmse_before_w
    assert report.kept == [] and report.intervals == 80
    assert fitted.power_model.calibrated_from is not None and "synthetic" in fitted.power_model.calibrated_from


def test_unvisited_steps_keep_their_values_and_too_little_data_is_refused() -> None:
    start = load_profile("rpi4")
    truth = perturbed("rpi4", 0.8)
    samples, activity = synthetic_run(truth)
    only_top = [a for a in activity if a.freq_khz.get("policy0") in (None, 1500000.0)]
    # Rebuild a run that stays at 1.5 GHz by dropping the other intervals' activity rows.
    fitted, report = calibrate(start, samples, only_top, "top only")
    assert any("600000" in k for k in report.kept)
    assert fitted.power_model.cpu[0].core_active_w[0] == start.power_model.cpu[0].core_active_w[0]
    with pytest.raises(BadInputError, match="only 2 activity intervals"):
        calibrate(start, samples, activity[:3], "short")


def test_cli_calibrate_writes_a_loadable_profile(tmp_path: Path) -> None:
    from tests.meters.test_cli import run_cli

    truth = perturbed("rpi4", 1.2)
    samples, activity = synthetic_run(truth)
    write_samples_csv(tmp_path / "s.csv", samples, {"meter": "um25c:///dev/rfcomm0"})
    with open(tmp_path / "a.csv", "w") as fh:
        fh.write("t_ns,t_s,policy0_khz,cpu0_util,cpu1_util,cpu2_util,cpu3_util\n")
        for a in activity[1:]:
            us = ",".join(str(a.util[c]) for c in range(4))
            fh.write(f"{a.t_ns},{a.t_ns / S},{int(a.freq_khz['policy0'])},{us}\n")
    assert len(read_activity_csv(tmp_path / "a.csv")) == 80
    out = tmp_path / "rpi4-calibrated.toml"
    code, stdout, _err = run_cli(
        "meter", "calibrate", "--samples", tmp_path / "s.csv", "--activity", tmp_path / "a.csv",
        "--profile", "rpi4", "--out", out, "--json",
    )  # fmt: skip
    assert code == 0
    import json

    report = json.loads(stdout)
    assert report["rmse_after_w"] < 1e-5 and report["intervals"] == 79
    reloaded = load_profile_file(out)
    assert coefficients(reloaded) == pytest.approx(coefficients(truth), rel=1e-5)
    assert "um25c" in (reloaded.power_model.calibrated_from or "")
