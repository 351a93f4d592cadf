"""Run every ``bench_*`` module and print one JSON object: ``python -m testbed.bench [--quick] [NAME…]``."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import platform
import sys
import time

import testbed.bench as pkg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m testbed.bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (smoke run)")
    args = parser.parse_args(argv)
    modules = sorted(m.name for m in pkgutil.iter_modules(pkg.__path__) if m.name.startswith("bench_"))
    wanted = [f"bench_{n}" if not n.startswith("bench_") else n for n in args.names] or modules
    unknown = sorted(set(wanted) - set(modules))
    if unknown:
        sys.stderr.write(f"error: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(modules)}\n")
        return 2
    results: dict[str, object] = {
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cpus": _cpus()},
    }
    for name in wanted:
        mod = importlib.import_module(f"testbed.bench.{name}")
        t0 = time.perf_counter()
        sys.stderr.write(f"bench: {name} …\n")
        out = mod.run(quick=args.quick)
        out["bench_wall_s"] = round(time.perf_counter() - t0, 3)
        results[name.removeprefix("bench_")] = out
    sys.stdout.write(json.dumps(results, indent=2) + "\n")
    return 0


def _cpus() -> int:
    import os

    return os.cpu_count() or 1


if __name__ == "__main__":
    sys.exit(main())
