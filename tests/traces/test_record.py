"""Recorders against an emulated board (the fake kernel) and a fake power_supply tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.cpufreq import get_policy
from devices.errors import BadInputError
from devices.record import DvfsRecorder, FreqEvent, Schedule, SupplyRecorder
from devices.sysfs import Sysfs
from traces.battery import read_battery
from traces.dvfs import DvfsEvent, read_dvfs
from traces.record import record_battery, record_dvfs


class SimClock:
    """Simulated time: ``sleep_until`` jumps forward; nothing really sleeps."""

    def __init__(self) -> None:
        self.t = 1000.0

    def now(self) -> float:
        return self.t

    def sleep_until(self, t: float) -> None:
        self.t = max(self.t, t)


def test_record_dvfs_on_fake_kernel(make_board, tmp_path):
    kernel = make_board("rpi4")
    sysfs = kernel.sysfs()
    policy = get_policy(sysfs, "policy0")
    policy.set_frequency(1500000)
    plan = {2: 600000, 5: 1000000}  # after sample k, the "governor" changes the clock

    def on_sample(k: int, t: float) -> None:
        if k in plan:
            policy.set_frequency(plan[k])

    out = tmp_path / "dvfs.csv"
    res = record_dvfs(DvfsRecorder(sysfs), out, Schedule(0.5, max_samples=8), clock=SimClock(), on_sample=on_sample)
    assert (res.samples, res.rows, res.duration_s, res.interrupted) == (8, 3, 3.5, False)
    d = read_dvfs(out)
    assert d.events == [
        DvfsEvent(0.0, "policy0", 1500000),
        DvfsEvent(1.0, "policy0", 600000),
        DvfsEvent(2.5, "policy0", 1000000),
    ]
    assert d.duration_s == 3.5
    assert d.domains is not None and d.domains.domains["policy0"] == (0, 1, 2, 3)


def test_record_dvfs_duration_bounds_the_samples(make_board, tmp_path):
    sysfs = make_board("rpi4").sysfs()
    res = record_dvfs(DvfsRecorder(sysfs), tmp_path / "d.csv", Schedule(0.25, duration_s=1.0), clock=SimClock())
    assert res.samples == 5  # t = 0, 0.25, 0.5, 0.75, 1.0


def test_record_dvfs_bad_arguments(make_board, tmp_path):
    sysfs = make_board("rpi4").sysfs()
    with pytest.raises(BadInputError, match="period"):
        Schedule(0, max_samples=1)
    with pytest.raises(BadInputError, match="--duration-s or --samples"):
        Schedule(1)
    with pytest.raises(BadInputError, match="unknown frequency source"):
        DvfsRecorder(sysfs, source="bogus")
    with pytest.raises(BadInputError, match="does not exist"):
        record_dvfs(DvfsRecorder(sysfs), tmp_path / "nodir" / "d.csv", Schedule(1, max_samples=1))


def _battery_tree(root: Path, current_ua: int) -> Path:
    bat = root / "sys/class/power_supply/BAT0"
    bat.mkdir(parents=True)
    ac = root / "sys/class/power_supply/AC"
    ac.mkdir(parents=True)
    (ac / "type").write_text("Mains\n")
    files = {
        "type": "Battery",
        "status": "Discharging",
        "voltage_now": "3900000",
        "current_now": str(current_ua),
        "capacity": "81",
        "temp": "312",
        "charge_now": "2000000",
    }
    for k, v in files.items():
        (bat / k).write_text(v + "\n")
    return bat


def test_record_battery_from_power_supply_tree(tmp_path):
    bat = _battery_tree(tmp_path / "root", -800000)  # kernel ABI: negative while discharging

    def on_sample(k: int, t: float) -> None:
        (bat / "current_now").write_text("-400000\n")
        (bat / "capacity").write_text("80\n")

    out = tmp_path / "b.csv"
    res = record_battery(
        SupplyRecorder(Sysfs(tmp_path / "root")),
        out,
        Schedule(2.0, max_samples=3),
        clock=SimClock(),
        on_sample=on_sample,
    )
    assert res.rows == 3
    b = read_battery(out)
    assert b.t_s.tolist() == [0.0, 2.0, 4.0]
    assert b.current_a.tolist() == [0.8, 0.4, 0.4]
    assert b.voltage_v.tolist() == [3.9, 3.9, 3.9]
    assert b.soc.tolist() == [0.81, 0.8, 0.8]
    assert b.temp_c.tolist() == [31.2, 31.2, 31.2]
    assert b.charge_ah is not None and b.charge_ah.tolist() == [2.0, 2.0, 2.0]
    assert b.status == ["Discharging"] * 3
    assert b.meta["supply"] == "BAT0"


def test_record_battery_errors(tmp_path):
    root = tmp_path / "root"
    (root / "sys/class/power_supply/AC").mkdir(parents=True)
    (root / "sys/class/power_supply/AC/type").write_text("Mains\n")
    with pytest.raises(BadInputError, match="no power_supply of type Battery"):
        SupplyRecorder(Sysfs(root))
    with pytest.raises(BadInputError, match="no such power_supply"):
        SupplyRecorder(Sysfs(root), supply="BAT9")
    _battery_tree(tmp_path / "bat", -800000)  # the sign rule is the writer's: it needs a supply to write
    with pytest.raises(BadInputError, match="unknown current sign rule"):
        record_battery(
            SupplyRecorder(Sysfs(tmp_path / "bat")), tmp_path / "b.csv", Schedule(1.0, max_samples=1), sign="up"
        )


def test_record_cli_on_emulated_board(make_board, tmp_path, cli):
    kernel = make_board("rpi4")
    out = tmp_path / "d.csv"
    r = cli(
        "trace",
        "record-dvfs",
        "--sysfs-root",
        kernel.root,
        "--out",
        out,
        "--period-s",
        "0.01",
        "--samples",
        "3",
        "--json",
    )
    assert r.code == 0, r.err
    assert '"samples": 3' in r.out
    assert read_dvfs(out).domain_names() == ["policy0"]
    _battery_tree(tmp_path / "bat", -1000000)
    r = cli(
        "trace",
        "record-battery",
        "--sysfs-root",
        tmp_path / "bat",
        "--out",
        tmp_path / "b.csv",
        "--period-s",
        "0.01",
        "--samples",
        "2",
    )
    assert r.code == 0, r.err
    assert read_battery(tmp_path / "b.csv").current_a.tolist() == [1.0, 1.0]
    r = cli("trace", "record-dvfs", "--sysfs-root", tmp_path / "bat", "--out", out, "--samples", "1")
    assert r.code == 2 and "no cpufreq directory" in r.err


def test_record_dvfs_with_gpu_devfreq(make_board, tmp_path):
    from devices.devfreq import find_gpu

    kernel = make_board("jetson-nano")
    sysfs = kernel.sysfs()
    gpu = find_gpu(sysfs)
    assert gpu is not None
    low, high = gpu.available_hz[0], gpu.available_hz[-1]
    gpu.set_frequency(high)

    def on_sample(k: int, t: float) -> None:
        if k == 1:
            gpu.set_frequency(low)

    out = tmp_path / "d.csv"
    record_dvfs(DvfsRecorder(sysfs, gpu=True), out, Schedule(1.0, max_samples=3), clock=SimClock(), on_sample=on_sample)
    d = read_dvfs(out)
    assert [e for e in d.events if e.domain == "gpu"] == [
        DvfsEvent(0.0, "gpu", round(high / 1000)),
        DvfsEvent(1.0, "gpu", round(low / 1000)),
    ]
    assert d.meta["gpu_device"] == gpu.name
    with pytest.raises(BadInputError, match="no GPU devfreq"):
        DvfsRecorder(make_board("rpi4").sysfs(), gpu=True)


def test_dvfs_recorder_reports_changes_as_typed_events(make_board):
    """The board-side recorder alone: frequency changes as FreqEvents, no file involved."""
    sysfs = make_board("rpi4").sysfs()
    policy = get_policy(sysfs, "policy0")
    policy.set_frequency(1500000)
    recorder = DvfsRecorder(sysfs)
    assert recorder.domains == {"policy0": (0, 1, 2, 3)} and recorder.gpu_device is None
    assert recorder.sample(0.0) == [FreqEvent(0.0, "policy0", 1500000)]
    assert recorder.sample(0.5) == []  # unchanged: no event
    policy.set_frequency(600000)
    assert recorder.sample(1.0) == [FreqEvent(1.0, "policy0", 600000)]
