"""Shared fixtures: every test gets its own state directory and can build emulated boards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices.fake.kernel import FakeKernel
from testbed.cli.main import run

#: The bundled sample traces.
SAMPLES = Path(__file__).resolve().parents[1] / "traces" / "samples"


@pytest.fixture(autouse=True)
def _isolated_state_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never read or write the user's real board state file from a test."""
    state = tmp_path_factory.mktemp("state")
    monkeypatch.setenv("TESTBED_STATE_DIR", str(state))
    monkeypatch.delenv("TESTBED_SYSFS_ROOT", raising=False)
    return state


@pytest.fixture
def make_board(tmp_path: Path) -> Callable[[str], FakeKernel]:
    """Factory: ``make_board("rpi4")`` lays out an emulated board in a fresh directory."""
    counter = {"n": 0}

    def _make(profile: str) -> FakeKernel:
        counter["n"] += 1
        return FakeKernel.create(tmp_path / f"board{counter['n']}-{profile}", profile)

    return _make


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """``cli("trace", "info", path)`` → exit code, stdout, stderr of ``testbed …``."""

    def _run(*args: object) -> CliResult:
        capsys.readouterr()
        try:
            run([str(a) for a in args])
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return _run


@pytest.fixture
def write(tmp_path: Path) -> Callable[[str, str], Path]:
    """``write("name.csv", text)`` → a file in the test's directory."""

    def _write(name: str, text: str) -> Path:
        p = tmp_path / name
        p.write_text(text, encoding="utf-8")
        return p

    return _write
