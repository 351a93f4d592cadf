"""The README walkthrough "From a Pi and a USB meter to a paper figure", run as written.

The Pi is an emulated Raspberry Pi 4 (a fake kernel tree) and the UM25C a fake meter on a pty speaking the
real protocol; Pi and laptop are this machine, so ``raspberrypi.local`` is loopback, the agent binds
loopback, and ``scp`` of the token is a copy; the profile takes at most 3 repetitions per cell (time only).
The model the walkthrough exports (``runs/lm2``, from the RT3 section) is trained here at a tiny size
first. Everything else runs exactly as the README says.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.readme_blocks import Sandbox, commands, is_server, sandbox, shell_blocks

SECTION = "From a Pi and a USB meter to a paper figure"
#: What differs between a Pi + laptop and this one machine (see the module docstring).
PI_IS_LOCAL = (
    ("scp pi@raspberrypi.local:agent-token", "cp ~/agent-token"),
    ("raspberrypi.local", "127.0.0.1"),
    ("testbed agent serve --host 0.0.0.0", 'testbed agent serve --emulate rpi4 --sysfs-root "$TESTBED_SYSFS_ROOT"'),
    # time, not behaviour: at most 3 repetitions per cell instead of up to 10 (the CI target is the same)
    ("--levels f1500,f1000,f600 --out", "--levels f1500,f1000,f600 --max-reps 3 --out"),
)


def walkthrough() -> list[str]:
    blocks = [b for b in shell_blocks() if b.section == SECTION]
    assert len(blocks) == 1, "the walkthrough is one shell block"
    return commands(blocks[0].text)


def test_walkthrough_is_at_most_eight_commands() -> None:
    cmds = walkthrough()
    assert 1 <= len(cmds) <= 8
    assert cmds[0].startswith("testbed doctor") and cmds[-1].startswith("testbed report")
    assert any("agent serve" in c for c in cmds) and any(c.startswith("testbed profile") for c in cmds)
    assert any(c.startswith("testbed run") for c in cmds)


def _tiny_model(box: Sandbox) -> None:
    """``runs/lm2``: the RT3 section's train → BP → PP, at a size that trains in seconds."""
    small = "--max-steps 8 --no-progress"
    for cmd in (
        f"testbed rt3 train --out runs/lm0 --emsize 32 --nhid 32 --nlayers 1 --nhead 2 --epochs 1 {small}",
        f"testbed rt3 prune bp runs/lm0 --out runs/lm1 --ratio 0.5 --row-block 8 {small}",
        f"testbed rt3 prune pp runs/lm1 --out runs/lm2 --levels 0.25,0.5,0.75 --freq-levels 0,1,2 {small}",
    ):
        res = box.run(cmd, 600)
        assert res.returncode == 0, res.stderr


@pytest.mark.slow
@pytest.mark.timeout(2400)
def test_walkthrough_from_a_pi_to_a_paper_figure(tmp_path: Path) -> None:
    with sandbox(tmp_path, um25c=True) as box:
        _tiny_model(box)
        for cmd in walkthrough():
            actual = cmd
            for old, new in PI_IS_LOCAL:
                actual = actual.replace(old, new)
            actual = box.rewrite(actual)
            if is_server(actual):
                box.serve(actual)
                continue
            res = box.run(actual, 900)
            assert res.returncode == 0, f"`{cmd}` exited {res.returncode}: {res.stdout[-2000:]} {res.stderr[-2000:]}"
            if cmd.startswith("testbed examples copy"):
                exp = box.path / "pi4" / "pi4-um25c-hil.toml"
                text = exp.read_text(encoding="utf-8")
                exp.write_text(re.sub(r"http://raspberrypi\.local:8765", f"http://127.0.0.1:{box.port}", text))
            if cmd.startswith("testbed doctor"):
                assert "FAIL" not in res.stdout and "um25c://" in res.stdout, res.stdout
        report = json.loads((box.path / "paper" / "report.json").read_text(encoding="utf-8"))
        assert report["figures"], report
        figures = list((box.path / "paper" / "figures").glob("*.pdf"))
        assert figures
        # the run was hardware-in-the-loop through the agent, on the emulated board, with the UM25C's energy
        from testbed.runstore.reader import RunReader

        with RunReader.open(box.path / "runs" / "pi4") as reader:
            assert "hardware-in-the-loop" in reader.fidelity
            assert set(reader.finished_units()) == {"dense-max", "dvfs-dense", "rt3"}
            assert "um25c" in json.dumps(reader.manifest)


def test_walkthrough_rewrites_only_the_machine() -> None:
    """The walkthrough's commands are run verbatim except for the three Pi-is-this-machine substitutions."""
    cmds = walkthrough()
    touched = [c for c in cmds if any(old in c for old, _ in PI_IS_LOCAL)]
    assert all("raspberrypi.local" in c or "agent serve --host 0.0.0.0" in c or "--levels" in c for c in touched)
    shown = subprocess.run(
        [sys.executable, "-m", "testbed", "examples", "show", "pi4-um25c-hil"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "raspberrypi.local" in shown.stdout
