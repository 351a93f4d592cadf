"""Fixtures for the meter tests: a manual clock and a sampler over a synthetic waveform meter."""

from __future__ import annotations

import pytest

from devices.meters.clock import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(start_ns=5_000_000_000)
