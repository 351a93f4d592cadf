"""Run the README's shell blocks as a user pastes them, against emulated hardware (used by test_readme.py).

Every fenced block without a language (or ``sh``/``bash``/``console``) is a shell block. Its commands run
in a fresh sandbox directory that looks like a fresh clone (``testbed/``, ``traces/``, ``devices/``,
``analysis/``, ``tests/`` and ``.venv`` linked in), with the installed ``testbed`` first on ``PATH``:

* ``TESTBED_SYSFS_ROOT`` points at an emulated Raspberry Pi 4, so board commands act on it;
* ``sudo`` is dropped (the emulated tree needs no root), ``/tmp/`` becomes the sandbox's ``tmp/`` and ``~``
  its ``home/``;
* ``um25c:///dev/rfcomm0`` becomes a fake UM25C on a pty speaking the real protocol;
* ``8765`` (the agent's default port) becomes a free port, so parallel runs do not collide;
* a command that serves (``testbed agent serve``) is started in the background until ``listening``;
* a plan (``PLANS`` in test_readme.py) may name blocks to run first in the same sandbox, files to provide,
  and lines that only make sense on real hardware (each with its reason).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SHELL_LANGS = {"", "sh", "bash", "shell", "console"}
LINKED = ("testbed", "traces", "devices", "analysis", "tests", ".venv", "pyproject.toml", "Makefile")


@dataclass(frozen=True)
class Block:
    """One shell block: where it is and its text."""

    index: int
    section: str
    line: int
    text: str

    @property
    def key(self) -> str:
        """The block's first command, which names it in plans and test ids."""
        return next(c for c in commands(self.text))

    @property
    def test_id(self) -> str:
        words = re.sub(r"[^a-z0-9]+", "-", self.key.lower()).strip("-")
        return f"L{self.line}-{words[:48]}"


def shell_blocks(text: str | None = None) -> list[Block]:
    """Every shell block of the README, in order."""
    lines = (README.read_text(encoding="utf-8") if text is None else text).splitlines()
    out: list[Block] = []
    section = ""
    i = 0
    while i < len(lines):
        ln = lines[i]
        heading = re.match(r"#+\s+(.*)", ln)
        if heading:
            section = heading.group(1)
        if ln.startswith("```"):
            lang = ln[3:].strip().lower()
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body = "\n".join(lines[i + 1 : j])
            if lang in SHELL_LANGS and commands(body):
                out.append(Block(len(out), section, i + 1, body))
            i = j
        i += 1
    return out


def commands(text: str) -> list[str]:
    """The commands of a block: continuation lines joined, comment-only and blank lines dropped."""
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.rstrip()
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append((pending + line).strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


@dataclass(frozen=True)
class Plan:
    """How one block runs (see the module docstring). ``reason`` says why anything differs from the default."""

    mark: str = "run"  # run | slow | skip
    reason: str = ""
    needs: tuple[str, ...] = ()  # keys (prefixes) of blocks to run first, in the same sandbox
    hardware_lines: tuple[str, ...] = ()  # command prefixes that need real hardware: not run
    files: tuple[tuple[str, Callable[[Path], None]], ...] = ()  # (name, maker) provided in the sandbox first
    rewrite: tuple[tuple[str, str], ...] = ()  # exact text replacements (e.g. an hour-long duration → seconds)
    fake_meter: bool = True  # False: keep um25c:///dev/rfcomm0 as written (the command only names it)
    timeout_s: float = 600.0


@dataclass
class Sandbox:
    """A fresh-clone-like directory with an emulated Pi 4, a fake UM25C and the environment for the commands."""

    path: Path
    env: dict[str, str]
    port: int
    board: Path
    um25c_port: str | None = None
    servers: list[subprocess.Popen[str]] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def rewrite(self, cmd: str, fake_meter: bool = True) -> str:
        cmd = re.sub(r"(^|&& |; )sudo ", r"\1", cmd)
        cmd = cmd.replace("/tmp/", f"{self.path}/tmp/").replace("~/", f"{self.path}/home/")
        cmd = cmd.replace("8765", str(self.port))
        if "testbed agent serve" in cmd and "--port" not in cmd:  # its default port is 8765 too
            cmd = cmd.replace("testbed agent serve", f"testbed agent serve --port {self.port}", 1)
        if self.um25c_port is not None and fake_meter:
            cmd = cmd.replace("um25c:///dev/rfcomm0", f"um25c://{self.um25c_port}")
        return cmd

    def run(self, cmd: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        self.log.append(f"$ {cmd}")
        print(f"[{time.strftime('%H:%M:%S')}] $ {cmd}", file=sys.stderr, flush=True)  # shown with -s
        res = subprocess.run(
            ["bash", "-e", "-o", "pipefail", "-c", cmd], cwd=self.path, env=self.env, capture_output=True,
            text=True, timeout=timeout_s, check=False,
        )  # fmt: skip
        self.log.append(res.stdout[-3000:] + res.stderr[-3000:])
        return res

    def serve(self, cmd: str, timeout_s: float = 120.0) -> None:
        """Start a serving command in the background and wait until it prints ``listening``."""
        log = self.path / f"server-{len(self.servers)}.log"
        fh = open(log, "w")  # noqa: SIM115 - the server owns it until stop()
        proc = subprocess.Popen(
            ["bash", "-c", f"exec {cmd}"], cwd=self.path, env=self.env, stdout=fh, stderr=subprocess.STDOUT, text=True
        )
        self.servers.append(proc)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            text = log.read_text(encoding="utf-8", errors="replace")
            if "listening on" in text:
                self.log.append(f"$ {cmd} &   # {text.strip().splitlines()[-1]}")
                return
            if proc.poll() is not None:
                raise AssertionError(f"{cmd} exited {proc.returncode}: {text[-2000:]}")
            time.sleep(0.2)
        raise AssertionError(f"{cmd}: not listening after {timeout_s:g} s")

    def stop(self) -> None:
        for proc in self.servers:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def sandbox(tmp: Path, um25c: bool) -> Iterator[Sandbox]:
    """A sandbox below ``tmp``; with ``um25c`` a fake UM25C runs on a pty for its lifetime."""
    from devices.fake.kernel import FakeKernel

    path = tmp / "clone"
    path.mkdir()
    for name in LINKED:
        if (ROOT / name).exists():
            (path / name).symlink_to(ROOT / name)
    for d in ("tmp", "home", "state"):
        (path / d).mkdir()
    board = tmp / "board"
    FakeKernel.create(board, "rpi4")
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TESTBED_", "PYTEST_", "COV_"))} | {
        "PATH": f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(path / "home"),
        "TESTBED_SYSFS_ROOT": str(board),
        "TESTBED_STATE_DIR": str(path / "state"),
        "TESTBED_COMMIT_INTERVAL_S": "0.2",
        "COLUMNS": "160",
        "VIRTUAL_ENV": str(Path(sys.executable).parents[1]),
    }
    box = Sandbox(path, env, free_port(), board)
    with ExitStack() as stack:
        if um25c:
            from devices.fake.meters.um_device import FakeUMDevice
            from devices.fake.meters.waveform import Waveform

            dev = FakeUMDevice("um25c", Waveform("square", 2.5, 4.5, 2.0)).start()
            stack.callback(dev.stop)
            box.um25c_port = str(dev.port)
        try:
            yield box
        finally:
            box.stop()


def is_server(cmd: str) -> bool:
    return bool(re.search(r"\btestbed agent serve\b", cmd)) or cmd.startswith("testbed meter fake ")


def run_block(box: Sandbox, block: Block, plan: Plan) -> None:
    """Run every command of ``block`` in ``box``; AssertionError naming the command when one fails."""
    for name, make in plan.files:  # "@board/…" names a file of the emulated board's tree
        target = box.board / name.removeprefix("@board/") if name.startswith("@board/") else box.path / name
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            make(target)
    text = block.text
    for old, new in plan.rewrite:
        assert old in text, f"README block at line {block.line} no longer contains {old!r}: update its plan"
        text = text.replace(old, new)
    for cmd in commands(text):
        if any(cmd.startswith(p) for p in plan.hardware_lines):
            box.log.append(f"# not run (needs real hardware): {cmd}")
            continue
        actual = box.rewrite(cmd, plan.fake_meter)
        exported = re.match(r"export (\w+)=", actual)
        if exported:  # later commands (separate shells) see it, as they would in the user's shell
            res = box.run(f'{actual}; printf "%s" "${exported.group(1)}"', plan.timeout_s)
            assert res.returncode == 0, f"README line {block.line}: `{cmd}` failed: {res.stderr[-2000:]}"
            box.env[exported.group(1)] = res.stdout
            continue
        if is_server(actual):
            box.serve(actual)
            continue
        res = box.run(actual, plan.timeout_s)
        assert res.returncode == 0, (
            f"README line {block.line} ({block.section}): `{cmd}` exited {res.returncode}\n"
            f"stdout: {res.stdout[-2000:]}\nstderr: {res.stderr[-2000:]}"
        )


def copy_sample(name: str) -> Callable[[Path], None]:
    """A file maker copying a bundled sample trace."""

    def make(target: Path) -> None:
        shutil.copyfile(ROOT / "traces" / "samples" / name, target)

    return make
