"""A fake ``vcgencmd pmic_read_adc`` for an emulated Raspberry Pi 5.

:func:`install_fake_pmic` writes the rail state to ``<root>/.testbed-fake-pmic.json`` and a
``<root>/usr/bin/vcgencmd`` script that answers ``pmic_read_adc [CHANNEL]`` from it in the real output
format (``<RAIL>_A current(<n>)=…A`` / ``<RAIL>_V volt(<n>)=…V``, channel numbers differing between a
rail's A and V lines) and hands every other subcommand to the board fake (:mod:`devices.fake.tools`).
:func:`set_pmic_rail` changes a rail between reads. ``nan`` values and voltage-only channels
(``EXT5V``, ``BATT``) are reproduced as on the real board.
"""

from __future__ import annotations

import argparse
import json
import shlex
import stat
import sys
from pathlib import Path

STATE_FILE = ".testbed-fake-pmic.json"

#: Rails with (volts, amps) as captured on an idle Pi 5 (§2b of the reference, rounded).
PI5_RAILS: dict[str, tuple[float, float]] = {
    "3V7_WL_SW": (3.71, 0.0078),
    "3V3_SYS": (3.31, 0.0720),
    "1V8_SYS": (1.80, 0.1900),
    "DDR_VDD2": (1.11, 0.0400),
    "DDR_VDDQ": (0.60, 0.0012),
    "1V1_SYS": (1.10, 0.1900),
    "0V8_SW": (0.80, 0.3000),
    "VDD_CORE": (0.7218, 0.7501),
    "3V3_DAC": (3.30, 0.0001),
    "3V3_ADC": (3.30, 0.0003),
    "0V8_AON": (0.80, 0.0030),
    "HDMI": (5.08, 0.0020),
}
VOLT_ONLY = {"EXT5V": 5.09066, "BATT": 0.0}


def render(state: dict[str, dict[str, float | None]], channel: str | None = None) -> str:
    """The tool's output for ``state`` (``{"amps": {rail: A}, "volts": {rail: V}}``)."""
    lines: list[str] = []
    n = 0
    for rail, a in state["amps"].items():
        lines.append(f"{rail + '_A':>14} current({n})={_fmt(a)}A")
        n += 1
    for rail, v in state["volts"].items():
        lines.append(f"{rail + '_V':>14} volt({n})={_fmt(v)}V")
        n += 1
    if channel:
        lines = [ln for ln in lines if ln.split()[0] == channel]
    return "\n".join(lines) + "\n"


def _fmt(x: float | None) -> str:
    return "nan" if x is None else f"{x:.8f}"


def default_state() -> dict[str, dict[str, float | None]]:
    amps: dict[str, float | None] = {r: a for r, (_v, a) in PI5_RAILS.items()}
    volts: dict[str, float | None] = {r: v for r, (v, _a) in PI5_RAILS.items()}
    volts.update(VOLT_ONLY)
    return {"amps": amps, "volts": volts}


def install_fake_pmic(root: Path, state: dict[str, dict[str, float | None]] | None = None) -> Path:
    """Write the PMIC state and the ``vcgencmd`` script under ``root``; returns the script path."""
    (root / STATE_FILE).write_text(json.dumps(state or default_state()), encoding="utf-8")
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    script = bin_dir / "vcgencmd"
    py = shlex.quote(sys.executable)
    script.write_text(
        "#!/bin/sh\n"
        "# Fake vcgencmd: pmic_read_adc from the fake PMIC state, everything else from the board fake.\n"
        'root="$(dirname "$0")/../.."\n'
        'if [ "$1" = "pmic_read_adc" ]; then\n'
        f'  exec "${{TESTBED_PYTHON:-{py}}}" -m devices.fake.meters.pmic --root "$root" "$@"\n'
        "fi\n"
        f'exec "${{TESTBED_PYTHON:-{py}}}" -m devices.fake.tools --root "$root" vcgencmd "$@"\n',
        encoding="utf-8",
    )
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return script


def set_pmic_rail(root: Path, rail: str, volts: float | None = None, amps: float | None = None) -> None:
    """Change a rail's volts and/or amps in the fake state (``float('nan')`` prints ``nan``)."""
    path = root / STATE_FILE
    state = json.loads(path.read_text(encoding="utf-8"))
    if volts is not None:
        state["volts"][rail] = None if volts != volts else volts
    if amps is not None:
        state["amps"][rail] = None if amps != amps else amps
    path.write_text(json.dumps(state), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devices.fake.meters.pmic")
    parser.add_argument("--root", required=True)
    parser.add_argument("command")
    parser.add_argument("channel", nargs="?")
    ns = parser.parse_args(argv)
    state = json.loads((Path(ns.root) / STATE_FILE).read_text(encoding="utf-8"))
    sys.stdout.write(render(state, ns.channel))
    return 0


if __name__ == "__main__":
    sys.exit(main())
