"""Shared fixtures: every test gets its own state directory and can build emulated boards.

The ``hardware`` opt-in (like pyserial's loopback-or-real-port switch): tests marked ``hardware`` are
skipped unless pytest runs with ``--hardware``, which points them at the real ``/sys`` (read-only);
``--hardware-writes`` also allows set-and-restore round trips on the real board, and ``--meter-uri URI``
names a real meter. The fixtures :func:`board_under_test` and :func:`meter_under_test` give the same test
bodies an emulated board / a fake meter in every default run and the real ones when asked for.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from devices.fake.kernel import FakeKernel
from devices.sysfs import Sysfs
from devices.sysroot import open_sysfs
from testbed.cli.main import run

#: The bundled sample traces.
SAMPLES = Path(__file__).resolve().parents[1] / "traces" / "samples"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("hardware", "device tests against a real board (opt-in)")
    group.addoption(
        "--hardware",
        action="store_true",
        default=False,
        help="also run the hardware-safe device tests against the real /sys (read-only)",
    )
    group.addoption(
        "--hardware-writes",
        action="store_true",
        default=False,
        help="with --hardware: allow set-and-restore frequency round trips on the real board (needs write access)",
    )
    group.addoption(
        "--meter-uri",
        default=None,
        metavar="URI",
        help="with --hardware: a real meter (e.g. um25c:///dev/rfcomm0) for the meter-window test",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Without ``--hardware``, every ``hardware``-marked test (or parameter) is skipped."""
    if config.getoption("--hardware"):
        return
    skip = pytest.mark.skip(reason="needs a real board: run pytest with --hardware (and --meter-uri URI)")
    for item in items:
        if item.get_closest_marker("hardware") is not None:
            item.add_marker(skip)


@dataclass(frozen=True)
class BoardUnderTest:
    """A board for the hardware-safe tests: an emulated one, or the real ``/sys`` under ``--hardware``."""

    sysfs: Sysfs
    real: bool
    #: Whether a test may change frequencies (always on an emulated board; ``--hardware-writes`` on a real one).
    writes_allowed: bool
    #: The emulated profile, ``None`` on the real board.
    profile: str | None


@pytest.fixture(
    params=[
        "emulated-rpi4",
        "emulated-jetson-nano",
        pytest.param("hardware", marks=pytest.mark.hardware),
    ]
)
def board_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> BoardUnderTest:
    """The same test body against emulated boards (every run) and the real board (``--hardware``)."""
    if request.param == "hardware":
        writes = bool(request.config.getoption("--hardware-writes"))
        return BoardUnderTest(open_sysfs("/"), real=True, writes_allowed=writes, profile=None)
    profile = str(request.param).removeprefix("emulated-")
    kernel = FakeKernel.create(tmp_path / f"board-{profile}", profile)
    return BoardUnderTest(kernel.sysfs(), real=False, writes_allowed=True, profile=profile)


@dataclass(frozen=True)
class MeterUnderTest:
    """A meter URI and the root it is opened against; ``real`` under ``--hardware --meter-uri``."""

    uri: str
    sysfs_root: Path
    real: bool
    #: The mean power (W) the fake meter draws; ``None`` for a real meter.
    expected_power_w: float | None


@pytest.fixture(params=["fake", pytest.param("hardware", marks=pytest.mark.hardware)])
def meter_under_test(request: pytest.FixtureRequest, tmp_path: Path) -> MeterUnderTest:
    """A fake meter in every run; the ``--meter-uri`` meter with ``--hardware`` (skipped when none is given)."""
    if request.param == "hardware":
        uri = request.config.getoption("--meter-uri")
        if not uri:
            pytest.skip("no real meter: pass --meter-uri URI")
        return MeterUnderTest(str(uri), Path("/"), real=True, expected_power_w=None)
    return MeterUnderTest("wave://const?power_w=3&rate_hz=200", tmp_path, real=False, expected_power_w=3.0)


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
