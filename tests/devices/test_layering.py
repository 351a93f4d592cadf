"""A board installs the device side without torch: nothing in `devices` (or the CLI entry) may import it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

HEAVY = ("torch", "transformers", "pandas", "matplotlib", "optuna")


def _imported_heavy(code: str) -> list[str]:
    probe = "import sys\n" + textwrap.dedent(code) + f"\nprint(','.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=120)
    return [m for m in res.stdout.strip().split(",") if m]


def test_every_devices_module_is_torch_free():
    code = """
import importlib, pkgutil, devices
for mod in pkgutil.walk_packages(devices.__path__, "devices."):
    importlib.import_module(mod.name)
"""
    assert _imported_heavy(code) == []


def test_cli_entry_and_board_commands_stay_light():
    assert _imported_heavy("import testbed.cli.main") == []
