"""Shared fixtures: every test gets its own state directory and can build emulated boards."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from devices.fake.kernel import FakeKernel


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
