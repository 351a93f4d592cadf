"""`testbed meter …` as a user runs it: JSON summaries, CSV output, fakes, detection, exit codes."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest

from devices.fake.meters.pmic import install_fake_pmic
from devices.fake.meters.sysfs_trees import build_ina3221_jp5, build_rapl
from devices.fake.meters.um_device import FakeUMDevice
from devices.fake.meters.waveform import Waveform
from devices.meters import read_samples_csv


def run_cli(*args: object) -> tuple[int, str, str]:
    """Run the real CLI entry point in-process (so monkeypatches apply); returns (code, stdout, stderr)."""
    from testbed.cli.main import run

    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err):
        try:
            run([str(a) for a in args])
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def run_subprocess(*args: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testbed", *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
        timeout=120,
    )


def one_line_error(code: int, err: str, expected_code: int, fragment: str) -> None:
    lines = err.strip().splitlines()
    assert code == expected_code, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and fragment in lines[0], err


def test_read_json_has_the_contract_fields(tmp_path: Path) -> None:
    csv = tmp_path / "s.csv"
    code, out, err = run_cli("meter", "read", "wave://const?power_w=3&rate_hz=100", "--seconds", "0.5", "--json",
                             "--csv", csv)  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    for key in (
        "samples",
        "mean_power_w",
        "peak_power_w",
        "energy_j",
        "duration_s",
        "mean_voltage_v",
        "mean_current_a",
    ):
        assert key in data
    assert data["mean_power_w"] == pytest.approx(3.0)
    assert data["energy_j"] == pytest.approx(3.0 * data["duration_s"], rel=1e-6)
    samples, meta = read_samples_csv(csv)
    assert len(samples) >= data["samples"] and meta["meter"].startswith("wave://")


def test_read_a_fake_um25c_over_a_pty_in_a_separate_process(tmp_path: Path) -> None:
    with FakeUMDevice("um25c", Waveform("const", 4.5, 4.5), voltage_v=5.05, link=tmp_path / "rfcomm0") as dev:
        res = run_subprocess("meter", "read", f"um25c://{dev.port}", "--seconds", "1.5", "--json")
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["mean_power_w"] == pytest.approx(4.5, abs=0.002)
    assert data["mean_voltage_v"] == pytest.approx(5.05, abs=0.002)
    assert data["samples"] >= 2
    assert dev.requests >= 3


def test_read_replays_a_recorded_csv_and_the_human_table(tmp_path: Path) -> None:
    csv = tmp_path / "rec.csv"
    assert run_cli("meter", "read", "wave://square?rate_hz=100&period_s=0.2", "-s", "0.4", "--csv", csv)[0] == 0
    code, out, err = run_cli("meter", "read", f"replay://{csv}?speed=4", "--seconds", "5")
    assert code == 0, err
    assert "energy" in out and "mean power" in out


@pytest.mark.parametrize(
    ("uri", "code", "fragment"),
    [
        ("nonsense", 2, "expected SCHEME://TARGET"),
        ("foo://bar", 2, "unknown scheme 'foo'"),
        ("um25c://", 2, "no port"),
        ("um25c:///dev/does-not-exist-42", 2, "no such serial port"),
        ("rapl://?domain=package&bogus=1", 2, "unknown parameter(s) bogus=1"),
        ("wave://square?rate_hz=-3", 2, "rate_hz must be in"),
        ("model://nosuch", 2, "unknown board profile"),
        ("replay:///nonexistent.csv", 2, "file not found"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(uri: str, code: int, fragment: str) -> None:
    c, _out, err = run_cli("meter", "read", uri, "--seconds", "0.2")
    one_line_error(c, err, code, fragment)


def test_bad_seconds_and_missing_output_directory(tmp_path: Path) -> None:
    c, _o, err = run_cli("meter", "read", "wave://const", "--seconds", "0")
    one_line_error(c, err, 2, "--seconds must be positive")
    c, _o, err = run_cli("meter", "read", "wave://const", "--csv", tmp_path / "no" / "x.csv")
    one_line_error(c, err, 2, "does not exist")


def test_rapl_permission_denied_is_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.meters.test_sysfs_meters import deny_energy_uj

    build_rapl(tmp_path)
    deny_energy_uj(monkeypatch)
    c, _o, err = run_cli("meter", "read", "rapl://", "--sysfs-root", tmp_path, "--seconds", "0.2")
    one_line_error(c, err, 2, "root-only since CVE-2020-8694")


def test_sysfs_meters_and_pmic_read_and_are_detected(tmp_path: Path) -> None:
    build_ina3221_jp5(tmp_path)
    build_rapl(tmp_path)
    install_fake_pmic(tmp_path)
    code, out, err = run_cli("meter", "list", "--json", "--sysfs-root", tmp_path)
    assert code == 0, err
    data = json.loads(out)
    uris = [d["uri"] for d in data["detected"]]
    assert {"ina3221://", "rapl://", "pmic://"} <= set(uris)
    assert {s["scheme"] for s in data["schemes"]} >= {"um24c", "um25c", "um34c", "ina219+serial", "model", "replay"}
    code, out, err = run_cli("meter", "read", "ina3221://", "--sysfs-root", tmp_path, "-s", "0.3", "--json")
    assert code == 0, err
    assert json.loads(out)["mean_power_w"] == pytest.approx(5.056 * 1.280)
    code, out, err = run_cli("meter", "read", "pmic://", "--sysfs-root", tmp_path, "-s", "0.5", "--json")
    assert code == 0, err
    pm = json.loads(out)
    assert pm["samples"] >= 1 and any("NOT the 5 V input power" in n for n in pm["notes"])


def test_fake_command_builds_sysfs_trees(tmp_path: Path) -> None:
    for kind, uri in (("ina3221-jp4", "ina3221://"), ("rapl", "rapl://")):
        root = tmp_path / kind
        code, out, err = run_cli("meter", "fake", kind, "--root", root, "--build-only")
        assert code == 0 and uri in out, err
        code, out, err = run_cli("meter", "read", uri, "--sysfs-root", root, "-s", "0.2", "--json")
        assert code == 0, err
    c, _o, err = run_cli("meter", "fake", "nosuch")
    one_line_error(c, err, 2, "unknown fake meter")


def test_model_meter_read_with_activity_csv(tmp_path: Path) -> None:
    from devices.fake.kernel import FakeKernel

    kernel = FakeKernel.create(tmp_path / "pi", "rpi4")
    act = tmp_path / "act.csv"
    code, out, err = run_cli("meter", "read", "model://rpi4", "--sysfs-root", kernel.root, "-s", "1.2",
                             "--activity-csv", act, "--json", "--idle-seconds", "0.3")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["mean_power_w"] >= 2.7  # at least the profile's idle power
    assert "net_energy_j" in data and "idle_power_w" in data
    header = act.read_text().splitlines()[0]
    assert header.startswith("t_ns,t_s,policy0_khz,cpu0_util")


@pytest.mark.parametrize("model", ["um24c", "um34c"])
def test_read_other_um_models(tmp_path: Path, model: str) -> None:
    with FakeUMDevice(model, Waveform("const", 2.2, 2.2), link=tmp_path / "port") as dev:
        code, out, err = run_cli("meter", "read", f"{model}://{dev.port}", "-s", "0.8", "--json")
    assert code == 0, err
    assert json.loads(out)["mean_power_w"] == pytest.approx(2.2, abs=0.002)


@pytest.mark.parametrize("chip", ["ina219", "ina226"])
def test_read_an_arduino_stream(tmp_path: Path, chip: str) -> None:
    from devices.fake.meters.ina_stream import FakeInaStream

    with FakeInaStream(Waveform("const", 1.8, 1.8), chip=chip, rate_hz=100, link=tmp_path / "acm") as dev:
        code, out, err = run_cli("meter", "read", f"{chip}+serial://{dev.port}?baud=115200", "-s", "0.5", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["mean_power_w"] == pytest.approx(1.8, rel=0.01)
    assert data["samples"] >= 20 and data["complete"]


def test_a_meter_that_never_answers_is_a_runtime_failure(tmp_path: Path) -> None:
    from devices.fake.meters.ptyport import PtyPort

    port = PtyPort(tmp_path / "silent")  # a port with nothing behind it
    try:
        c, _o, err = run_cli("meter", "read", f"um25c://{port.path}?timeout_s=0.2", "-s", "0.2")
    finally:
        port.close()
    one_line_error(c, err, 1, "no sample within")


def test_fake_serial_meter_command_serves_until_terminated(tmp_path: Path) -> None:
    import signal

    link = tmp_path / "um34c"
    proc = subprocess.Popen(
        [sys.executable, "-m", "testbed", "meter", "fake", "um34c", "--link", str(link), "--shape", "const"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"testbed meter read um34c://{link}" in first
        code, out, err = run_cli("meter", "read", f"um34c://{link}", "-s", "0.5", "--json")
        assert code == 0, err
        assert json.loads(out)["mean_power_w"] == pytest.approx(6.0, abs=0.002)  # const at --high-w
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0
    assert not link.exists() and not link.is_symlink()
