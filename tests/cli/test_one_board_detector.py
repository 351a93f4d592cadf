"""`board info` and `meter list` name the same board: both ask the one detector (devices/detect.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from devices.fake.kernel import FakeKernel
from tests.conftest import CliResult


def _board_and_modelled_meter(cli: Callable[..., CliResult], root: Path) -> tuple[str | None, list[str]]:
    r = cli("board", "info", "--sysfs-root", root, "--json")
    assert r.code == 0, r.err
    board = json.loads(r.out)["board"]
    r = cli("meter", "list", "--sysfs-root", root, "--json")
    assert r.code == 0, r.err
    models = [
        d["uri"].removeprefix("model://") for d in json.loads(r.out)["detected"] if d["uri"].startswith("model://")
    ]
    return board, models


def test_model_and_compatible_that_disagree_name_one_board(
    make_board: Callable[[str], FakeKernel], cli: Callable[..., CliResult]
) -> None:
    # A Pi 5 whose device tree also claims the Pi 4's SoC: the model string says rpi5, `compatible` says
    # rpi4. The old meter detector went profile by profile (model OR compatible) and named rpi4.
    kernel = make_board("rpi5")
    (kernel.root / "proc/device-tree/compatible").write_bytes(b"raspberrypi,5-model-b\x00brcm,bcm2711\x00")
    board, models = _board_and_modelled_meter(cli, kernel.root)
    assert board == "rpi5"
    assert models == [board]


@pytest.mark.parametrize("profile", ["rpi4", "jetson-nano", "jetson-orin-nano"])
def test_every_emulated_board_is_named_alike(
    profile: str, make_board: Callable[[str], FakeKernel], cli: Callable[..., CliResult]
) -> None:
    board, models = _board_and_modelled_meter(cli, make_board(profile).root)
    assert board == profile and models == [profile]


def test_an_emulated_laptop_is_a_laptop_for_both(
    make_board: Callable[[str], FakeKernel], cli: Callable[..., CliResult]
) -> None:
    # No device tree: the board detector's laptop rule (scaling driver / RAPL); the old meter detector
    # knew only device-tree strings and named no board at all.
    board, models = _board_and_modelled_meter(cli, make_board("laptop").root)
    assert board == "laptop" and models == ["laptop"]
