"""`meter calibrate` refuses a fit that explains nothing; the fake RAPL counters move."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from devices.fake.meters.sysfs_trees import RaplCounterDriver, build_rapl
from devices.meters import Sampler, open_meter, write_samples_csv
from devices.meters.samples import Sample
from tests.conftest import CliResult
from tests.meters.test_calibrate import synthetic_run

S = 1_000_000_000


def test_calibrate_refuses_a_fit_that_explains_nothing(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    from devices.board_profile import load_profile

    _samples, activity = synthetic_run(load_profile("rpi4"))
    rng = np.random.default_rng(0)
    t0, t1 = activity[0].t_ns, activity[-1].t_ns
    noise = [Sample(int(t), float(3.0 + rng.normal(0, 1.0))) for t in np.linspace(t0, t1, 4000)]
    write_samples_csv(tmp_path / "s.csv", noise, {"meter": "um25c:///dev/rfcomm0"})
    with open(tmp_path / "a.csv", "w") as fh:
        fh.write("t_ns,t_s,policy0_khz,cpu0_util,cpu1_util,cpu2_util,cpu3_util\n")
        for a in activity[1:]:
            us = ",".join(str(a.util[c]) for c in range(4))
            fh.write(f"{a.t_ns},{a.t_ns / S},{int(a.freq_khz['policy0'])},{us}\n")
    out = tmp_path / "calibrated.toml"
    res = cli("meter", "calibrate", "--samples", tmp_path / "s.csv", "--activity", tmp_path / "a.csv",
              "--profile", "rpi4", "--out", out)  # fmt: skip
    assert res.code == 2 and "R²" in res.err and len(res.err.strip().splitlines()) == 1
    assert not out.exists()
    forced = cli("meter", "calibrate", "--samples", tmp_path / "s.csv", "--activity", tmp_path / "a.csv",
                 "--profile", "rpi4", "--out", out, "--min-r2", "0")  # fmt: skip
    assert forced.code == 0 and out.exists() and "weak fit" in forced.err


def test_fake_rapl_counters_move(tmp_path: Path) -> None:
    build_rapl(tmp_path)
    driver = RaplCounterDriver(tmp_path, lambda t_s: 5.0).start()
    try:
        with Sampler(open_meter("rapl://", sysfs_root=tmp_path)) as sampler:
            sampler.begin_window("w")
            time.sleep(1.0)
            r = sampler.end_window("w")
    finally:
        driver.stop()
    assert r is not None and r.energy_j is not None and r.energy_j > 2.0
    assert r.mean_power_w is not None and 4.0 < r.mean_power_w < 6.0
    core = int((tmp_path / "sys/class/powercap/intel-rapl:0:0/energy_uj").read_text())
    pkg = int((tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj").read_text())
    assert 0 < core < pkg  # a sub-zone counts its share of the package


def test_counter_wraps_like_the_hardware(tmp_path: Path) -> None:
    build_rapl(tmp_path, {"intel-rapl:0": "package-0"}, max_range_uj=1_000_000)
    driver = RaplCounterDriver(tmp_path, lambda t_s: 3.0)
    driver.advance(0.0, 0.5)  # 1.5 J = 1.5e6 µJ → wraps once at 1e6
    assert int((tmp_path / "sys/class/powercap/intel-rapl:0/energy_uj").read_text()) == 500_000
