"""Running board tools (``vcgencmd``, ``nvpmodel``, ``tegrastats``) with an injectable search path.

With the real root ``/`` tools are found on ``PATH``. With any other sysfs root they are looked up only
below that root (``usr/bin``, ``bin``, ``usr/sbin``), so an emulated board answers with its own fake
tools and never with the host's. A missing tool is not an error: :meth:`CommandRunner.run` returns
``None`` and callers report the value as unavailable.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from devices.errors import HardwareError


@dataclass(frozen=True)
class CommandResult:
    """Output of one tool invocation."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


def _timeout_scale() -> float:
    """``TESTBED_TOOL_TIMEOUT_SCALE`` (≥ 1, default 1) stretches every tool timeout: a board emulated under
    qemu (``make board-check``) starts each tool many times slower than real hardware does."""
    try:
        return max(1.0, float(os.environ.get("TESTBED_TOOL_TIMEOUT_SCALE", "1")))
    except ValueError:
        return 1.0


class CommandRunner:
    """Finds and runs board tools; ``timeout_s`` bounds every call."""

    def __init__(self, root: str | os.PathLike[str] = "/", timeout_s: float = 5.0) -> None:
        self.root = Path(root)
        self.timeout_s = timeout_s * _timeout_scale()

    def _search_path(self) -> str | None:
        if self.root.resolve() == Path("/"):
            return None  # the process PATH
        dirs = [self.root / d for d in ("usr/bin", "bin", "usr/sbin", "sbin")]
        return os.pathsep.join(str(d) for d in dirs)

    def which(self, tool: str) -> str | None:
        """Absolute path of ``tool`` or ``None``."""
        return shutil.which(tool, path=self._search_path())

    def run(self, tool: str, *args: str) -> CommandResult | None:
        """Run ``tool args…``; ``None`` when the tool does not exist.

        Raises :class:`HardwareError` when it exists but hangs past ``timeout_s``.
        """
        exe = self.which(tool)
        if exe is None:
            return None
        argv = (exe, *args)
        try:
            proc = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise HardwareError(f"{tool} {' '.join(args)}: no answer within {self.timeout_s:g} s") from None
        except OSError as exc:
            raise HardwareError(f"{exe}: cannot run: {exc.strerror}") from None
        return CommandResult(argv=argv, returncode=proc.returncode, stdout=proc.stdout, stderr=proc.stderr)
