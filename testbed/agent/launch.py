"""Start a local agent process (an emulated board on loopback) — for tests, benchmarks and demos.

The agent runs as a real separate process (``python -m testbed agent serve --port 0 --emulate …``);
:func:`start_local_agent` waits for its ``listening on`` line and returns the URL and token.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from devices.errors import HardwareError


@dataclass
class LocalAgent:
    url: str
    token: str
    root: Path
    state_dir: Path
    proc: subprocess.Popen[str]

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        """Signal the agent and wait; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout_s)

    def __enter__(self) -> LocalAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_local_agent(workdir: Path, profile: str = "rpi4", *extra: str, threads: int = 1) -> LocalAgent:
    """Start an emulated ``profile`` agent with its tree, token and state below ``workdir``."""
    state_dir = workdir / "state"
    root = workdir / f"emulated-{profile}"
    token_file = workdir / "token"
    env = {**os.environ, "TESTBED_STATE_DIR": str(state_dir), "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable, "-m", "testbed", "agent", "serve", "--port", "0", "--emulate", profile,
        "--sysfs-root", str(root), "--token-file", str(token_file), "--threads", str(threads), *extra,
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert proc.stdout is not None
    for _ in range(5):
        m = re.search(r"listening on (http://\S+)", proc.stdout.readline())
        if m:
            return LocalAgent(m.group(1), token_file.read_text().strip(), root, state_dir, proc)
    proc.kill()
    err = proc.stderr.read() if proc.stderr else ""
    raise HardwareError(f"the agent did not start: {err.strip()[-500:]}")
