"""Every shell block of the README runs as written (see readme_blocks.py for the emulated environment).

The test is generic: any new block runs by default. ``PLANS`` is the small table of blocks that need
something else — a block to run first, files a user would have, lines that need real hardware (with the
reason), or a shorter duration — and of the few blocks run elsewhere. Long blocks are marked slow (they
run with ``-m slow``); ``test_every_block_is_planned_or_runs`` checks that nothing is left out.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.cli.readme_blocks import Block, Plan, copy_sample, run_block, sandbox, shell_blocks


def _cycler_csv(target: Path) -> None:
    rows = ["Test_Time (s),Voltage (V),Current (mA)"]
    rows += [f"{t},{4.1 - 0.0005 * t:.4f},{-500 if t % 600 < 590 else 0}" for t in range(0, 3600, 10)]
    target.write_text("\n".join(rows) + "\n", encoding="utf-8")


def _mlp_onnx(target: Path) -> None:
    from tests.agent.conftest import write_mlp_onnx

    write_mlp_onnx(target)


#: A laptop battery's power_supply attributes (kernel ABI units: µV, µA, %).
BATTERY = {"type": "Battery", "status": "Discharging", "voltage_now": "11800000", "current_now": "950000",
           "capacity": "73", "temp": "301"}  # fmt: skip


def _text(value: str) -> Callable[[Path], None]:
    def make(target: Path) -> None:
        target.write_text(value + "\n", encoding="utf-8")

    return make


HARDWARE_SETUP = ("bluetoothctl", "sudo rfcomm bind", "sudo usermod")
SLOW_MODEL = "testbed rt3 train --out runs/lm0"
RUN_STORE = "testbed run testbed/data/experiment-rpi4-bucket.toml"

#: key prefix of a block → how it runs. Blocks not listed run as they are.
PLANS: dict[str, Plan] = {
    "make test": Plan("skip", "`make test` is this suite; `make demo` is tests/analysis/test_demo.py"),
    "python3 -m venv .venv": Plan("skip", "installs from the network: `make install` does these steps"),
    'pip install -e ".[agent]"': Plan("skip", "installs from the network: `make board-check` runs it on arm64"),
    "bluetoothctl": Plan("slow", "40 s of sampling; pairing needs a real meter", hardware_lines=HARDWARE_SETUP),
    "testbed meter read um25c:///dev/rfcomm0 --seconds 300": Plan(
        "slow",
        "5 minutes shortened to 40 s; a fake meter's power does not follow the CPU (a fit to it is rightly "
        "refused), so the modelled meter stands in, and a 2 s busy / 2 s idle loop on one core is the varied "
        "workload the README asks for (an idle or erratically loaded host gives R² below the fit's floor)",
        rewrite=(
            (
                "testbed meter read um25c:///dev/rfcomm0 --seconds 300",
                "(for i in $(seq 10); do timeout 2 sh -c 'while :; do :; done' || true; sleep 2; done) & "
                "testbed meter read model://rpi4 --seconds 40",
            ),
        ),
    ),
    "testbed agent serve --token-file ~/.config": Plan(
        hardware_lines=("testbed agent serve --token-file ~/.config",),
        reason="the first line serves a real Pi's /sys; the emulated line beside it runs",
    ),
    "export TESTBED_AGENT_TOKEN": Plan(
        "slow",
        "starts the agent and releases 200 requests every 120 ms (about a minute)",
        needs=("testbed agent serve --token-file ~/.config",),
        files=(("model.onnx", _mlp_onnx),),
    ),
    "testbed reproduce rt3-paper": Plan("slow", "nine runs of RT3's accounting and their reports (minutes)"),
    "testbed trace convert trace.txt": Plan(
        files=(
            ("trace.txt", copy_sample("ftrace-cpu-frequency.synthetic.txt")),
            ("tis.log", copy_sample("time-in-state.synthetic.txt")),
            ("poll.log", copy_sample("polled-scaling-cur-freq.synthetic.txt")),
            ("bat.log", copy_sample("power-supply-uevent.synthetic.log")),
            ("cycler.csv", _cycler_csv),
        )
    ),
    "testbed trace record-dvfs": Plan(
        reason="a minute and an hour of recording shortened to seconds; the emulated Pi gets a battery (a Pi has none)",
        rewrite=(("--duration-s 60", "--duration-s 2"), ("--duration-s 3600", "--duration-s 3")),
        files=tuple((f"@board/sys/class/power_supply/BAT0/{k}", _text(v)) for k, v in BATTERY.items()),
    ),
    "testbed agent install-service": Plan(fake_meter=False, reason="the unit only names the meter's port"),
    SLOW_MODEL: Plan("slow", "trains, prunes and exports a model (minutes)"),
    "testbed search runs/": Plan(
        "slow",
        "the search budgets are cut to a few evaluations",
        needs=(SLOW_MODEL, RUN_STORE),
        rewrite=(("--budget 300", "--budget 4"), ("--budget 100", "--budget 4"), ("--budget 400", "--budget 6")),
    ),
    RUN_STORE: Plan("slow", "profiles the model of the RT3 section and sweeps a design space", needs=(SLOW_MODEL,)),
    "testbed report runs/": Plan("slow", "reports the runs of the sections above", needs=("testbed search runs/",)),
    "testbed sweep testbed/data/": Plan("slow", "16 experiments on Ray, their rerun and report: minutes on 2 cores"),
    "testbed examples list": Plan("slow", "simulates a whole discharge of the governor example (about 20 s)"),
    "testbed run testbed/data/experiment-rpi4-ecm.toml --out runs/watched": Plan(
        "slow", "simulates five strategies' discharges with the live view (a minute or more on 2 cores)"
    ),
    "make lint": Plan("skip", "`make lint`/`make test`/`make bench` run the whole tree's tools; not from a test"),
    ".venv/bin/python -m pytest tests/devices/test_hardware.py": Plan(
        "skip", "real-board tests by design; the same test bodies run on emulated boards in every default run"
    ),
    "testbed doctor --meter um25c:///dev/rfcomm0": Plan(
        "skip", "the walkthrough: tests/cli/test_walkthrough.py runs it on an emulated Pi with a fake UM25C"
    ),
}


def plan_for(block: Block) -> Plan:
    return next((p for k, p in PLANS.items() if block.key.startswith(k)), Plan())


def find_block(blocks: list[Block], key: str) -> Block:
    found = [b for b in blocks if b.key.startswith(key)]
    assert found, f"no README block starts with {key!r}: update PLANS"
    return found[0]


def _params() -> list[object]:
    out: list[object] = []
    for b in shell_blocks():
        plan = plan_for(b)
        marks = [pytest.mark.slow, pytest.mark.timeout(3600)] if plan.mark == "slow" else []
        if plan.mark == "skip":
            marks.append(pytest.mark.skip(reason=plan.reason))
        out.append(pytest.param(b, id=b.test_id, marks=marks))
    return out


@pytest.mark.parametrize("block", _params())
def test_readme_block_runs(block: Block, tmp_path: Path) -> None:
    blocks = shell_blocks()
    chain: list[Block] = []

    def add(b: Block) -> None:
        for key in plan_for(b).needs:
            add(find_block(blocks, key))
        if b not in chain:
            chain.append(b)

    add(block)
    with sandbox(tmp_path, um25c=any("rfcomm0" in b.text for b in chain)) as box:
        try:
            for b in chain:
                run_block(box, b, plan_for(b))
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n--- session ---\n" + "\n".join(box.log[-40:])) from None


def test_every_block_is_planned_or_runs() -> None:
    blocks = shell_blocks()
    assert len(blocks) >= 20
    for key, plan in PLANS.items():
        if key.startswith("testbed doctor --meter"):
            continue  # the walkthrough block may be renamed by its own test
        assert any(b.key.startswith(key) for b in blocks), f"PLANS names {key!r}, which no README block starts with"
        assert plan.mark in ("run", "slow", "skip")
        assert plan.mark == "run" or plan.reason, f"{key}: a skipped or slow block says why"
        for need in plan.needs:
            find_block(blocks, need)
    skipped = [b for b in blocks if plan_for(b).mark == "skip"]
    assert len(skipped) <= 7, [b.key for b in skipped]  # the table stays small: most blocks really run


def test_commands_are_parsed_like_a_shell() -> None:
    from tests.cli.readme_blocks import commands

    text = "# a comment\nfoo --a 1 \\\n    --b 2   # trailing\n\nbar\n"
    parsed = commands(text)
    assert [c.split() for c in parsed] == [["foo", "--a", "1", "--b", "2", "#", "trailing"], ["bar"]]
    readme = "# T\n```\ntestbed x\n```\n```python\nprint(1)\n```\n```text\nnot a command\n```\n"
    blocks = shell_blocks(readme)
    assert [b.key for b in blocks] == ["testbed x"] and blocks[0].section == "T"
