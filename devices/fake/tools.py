"""Fake board tools for an emulated board: ``vcgencmd`` and ``nvpmodel``.

:func:`install_tools` writes small executable scripts into ``<root>/usr/bin``; each runs
``python -m devices.fake.tools --root ROOT TOOL ARGS…``, which answers from the fake kernel's state file
in the same text format as the real tool, so the real parsing code runs against them. Handlers read the
state JSON directly (no profile validation) so that a call costs little more than a Python start.

Handlers live in :data:`HANDLERS` keyed by ``(tool, subcommand)``; other modules may register more
(e.g. meters register ``vcgencmd pmic_read_adc``) with :func:`register`.
"""

from __future__ import annotations

import argparse
import json
import shlex
import stat
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devices.fake.marker import FAKE_KERNEL_MARKER


class ToolContext:
    """What a handler may read: the emulated root and its fake-kernel state (plain JSON)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state: dict[str, Any] = json.loads((root / FAKE_KERNEL_MARKER).read_text(encoding="utf-8"))

    @property
    def profile(self) -> dict[str, Any]:
        return dict(self.state["profile"])

    def hardware_khz(self, policy: str) -> int:
        """The emulated hardware clock of ``policy`` (request filtered by the lying modes)."""
        st = self.state["policies"][policy]
        f = int(st["cur_khz"])
        lying = st.get("lying", {})
        if lying.get("hw_floor_khz") is not None:
            f = max(f, int(lying["hw_floor_khz"]))
        if lying.get("hw_cap_khz") is not None:
            f = min(f, int(lying["hw_cap_khz"]))
        if lying.get("hw_override_khz") is not None:
            f = int(lying["hw_override_khz"])
        return f


#: ``fn(context, args) -> (exit_code, stdout)``.
Handler = Callable[[ToolContext, list[str]], tuple[int, str]]
HANDLERS: dict[tuple[str, str], Handler] = {}


def register(tool: str, subcommand: str) -> Callable[[Handler], Handler]:
    """Decorator: register a handler for ``tool subcommand``."""

    def deco(fn: Handler) -> Handler:
        HANDLERS[(tool, subcommand)] = fn
        return fn

    return deco


def install_tools(root: Path, tools: list[str]) -> None:
    """Write executable fake ``tools`` into ``root/usr/bin``."""
    bin_dir = root / "usr" / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    for tool in tools:
        script = bin_dir / tool
        script.write_text(
            "#!/bin/sh\n"
            "# Fake board tool written by `testbed board emulate`; answers from the emulated kernel.\n"
            f'exec "${{TESTBED_PYTHON:-{shlex.quote(sys.executable)}}}" -m devices.fake.tools '
            f'--root "$(dirname "$0")/../.." {tool} "$@"\n',
            encoding="utf-8",
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)


# ---- vcgencmd --------------------------------------------------------------------------------------
@register("vcgencmd", "measure_clock")
def _measure_clock(ctx: ToolContext, args: list[str]) -> tuple[int, str]:
    if not args or args[0] != "arm":
        return 0, "frequency(0)=0\n"
    policy = ctx.profile["policies"][0]["name"]
    return 0, f"frequency(48)={ctx.hardware_khz(policy) * 1000}\n"


@register("vcgencmd", "get_throttled")
def _get_throttled(ctx: ToolContext, args: list[str]) -> tuple[int, str]:
    return 0, f"throttled={int(ctx.state.get('throttled', 0)):#x}\n"


@register("vcgencmd", "measure_temp")
def _measure_temp(ctx: ToolContext, args: list[str]) -> tuple[int, str]:
    milli = int((ctx.root / "sys/class/thermal/thermal_zone0/temp").read_text().strip())
    return 0, f"temp={milli / 1000:.1f}'C\n"


# ---- nvpmodel ---------------------------------------------------------------------------------------
@register("nvpmodel", "-q")
def _nvpmodel_query(ctx: ToolContext, args: list[str]) -> tuple[int, str]:
    mode = ctx.state.get("nvpmodel", {"id": 0, "name": "MAXN"})
    return 0, f"NV Power Mode: {mode['name']}\n{mode['id']}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devices.fake.tools")
    parser.add_argument("--root", required=True)
    parser.add_argument("tool")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    try:
        ctx = ToolContext(Path(ns.root).resolve())
    except (OSError, ValueError) as exc:
        sys.stderr.write(f"{ns.tool}: emulated board state unreadable: {exc}\n")
        return 1
    args: list[str] = list(ns.args)
    handler = HANDLERS.get((ns.tool, args[0] if args else ""))
    if handler is None:
        sys.stderr.write(f"{ns.tool}: unsupported command {' '.join(args)!r} on this emulated board\n")
        return 255 if ns.tool == "vcgencmd" else 1
    code, out = handler(ctx, args[1:])
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    sys.exit(main())
