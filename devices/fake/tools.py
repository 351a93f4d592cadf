"""Fake board tools for an emulated board: ``vcgencmd`` and ``nvpmodel``.

:func:`install_tools` writes small executable scripts into ``<root>/usr/bin``; each runs
``python -m devices.fake.tools TOOL --root ROOT ARGS…``, which answers from the fake kernel's state in
the same text format as the real tool, so the real parsing code runs against them.

Handlers live in :data:`HANDLERS` keyed by ``(tool, subcommand)``; other modules may register more
(e.g. meters register ``vcgencmd pmic_read_adc``) with :func:`register`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import stat
import sys
from collections.abc import Callable
from pathlib import Path

#: ``fn(kernel, args) -> (exit_code, stdout)``; ``kernel`` is a :class:`devices.fake.kernel.FakeKernel`.
Handler = Callable[..., tuple[int, str]]
HANDLERS: dict[tuple[str, str], Handler] = {}


def register(tool: str, subcommand: str) -> Callable[[Callable[..., tuple[int, str]]], Callable[..., tuple[int, str]]]:
    """Decorator: register ``fn(kernel, args) -> (exit_code, stdout)`` for ``tool subcommand``."""

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
def _measure_clock(kernel: object, args: list[str]) -> tuple[int, str]:
    from devices.fake.kernel import FakeKernel

    assert isinstance(kernel, FakeKernel)
    clock = args[0] if args else ""
    if clock != "arm":
        return 0, "frequency(0)=0\n"
    policy = kernel.profile.policies[0].name
    return 0, f"frequency(48)={kernel.hardware_khz(policy) * 1000}\n"


@register("vcgencmd", "get_throttled")
def _get_throttled(kernel: object, args: list[str]) -> tuple[int, str]:
    from devices.fake.kernel import FakeKernel

    assert isinstance(kernel, FakeKernel)
    return 0, f"throttled={int(kernel.state.get('throttled', 0)):#x}\n"


@register("vcgencmd", "measure_temp")
def _measure_temp(kernel: object, args: list[str]) -> tuple[int, str]:
    from devices.fake.kernel import THERMAL_DIR, FakeKernel

    assert isinstance(kernel, FakeKernel)
    milli = int((kernel.root / THERMAL_DIR / "thermal_zone0" / "temp").read_text().strip())
    return 0, f"temp={milli / 1000:.1f}'C\n"


# ---- nvpmodel ---------------------------------------------------------------------------------------
@register("nvpmodel", "-q")
def _nvpmodel_query(kernel: object, args: list[str]) -> tuple[int, str]:
    from devices.fake.kernel import FakeKernel

    assert isinstance(kernel, FakeKernel)
    mode = kernel.state.get("nvpmodel", {"id": 0, "name": "MAXN"})
    return 0, f"NV Power Mode: {mode['name']}\n{mode['id']}\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="devices.fake.tools")
    parser.add_argument("--root", required=True)
    parser.add_argument("tool")
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args(argv)
    from devices.fake.kernel import FakeKernel

    kernel = FakeKernel.load(Path(ns.root).resolve())
    args: list[str] = list(ns.args)
    sub = args[0] if args else ""
    handler = HANDLERS.get((ns.tool, sub))
    if handler is None:
        sys.stderr.write(f"{ns.tool}: unsupported command {' '.join(args)!r} on this emulated board\n")
        return 1 if ns.tool != "vcgencmd" else 255
    code, out = handler(kernel, args[1:])
    sys.stdout.write(out)
    return code


if __name__ == "__main__":
    os.environ.setdefault("PYTHONDONTWRITEBYTECODE", "1")
    sys.exit(main())
