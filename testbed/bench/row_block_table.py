"""Measure the row-block table (``testbed/rt3/tables/row_block.json``) that ``row_block="auto"`` reads.

``python -m testbed.bench.row_block_table [--out FILE] [--rounds N] [--passes N] [--quick]``

For every BP row block of ``BP_ROW_BLOCKS`` (3072 = the whole weight for every shape of the model), the
bench's own masks (:func:`testbed.bench.bench_runtime._mask_sets`: balanced block-column BP at that block,
PP pattern sets at 50 / 75 / 90.6 % on top) are built on the bench's DistilBERT-sized encoder, and one layer of
each distinct linear shape (q_lin 768→768 for q/k/v/out, FFN-1 768→3072, FFN-2 3072→768) is timed packed
against dense ``F.linear`` — 1 thread, the calling thread's CPU time, 128 tokens, interleaved in the same
rounds by the bench's ``_interleaved``. All cells are packed first, then timed in ``passes`` passes over all of
them (so a load change on the shared host spreads over every cell instead of hitting one block); a cell is the
median of the same-round ratios of all passes, with each pass's median beside it. A block taller than a
weight is the whole weight; a shape already measured at that effective block is not measured again.
Host, load before/after, date and torch version go into the file. Progress on stderr.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from testbed.bench.bench_runtime import SEQ, _interleaved, _load, _mask_sets, _progress, _ratio, _sparsity

BP_ROW_BLOCKS = (64, 128, 256, 512, 768, 3072)
#: One layer per distinct linear shape of the DistilBERT-sized encoder.
LAYERS = (
    "distilbert.transformer.layer.0.attention.q_lin",
    "distilbert.transformer.layer.0.ffn.lin1",
    "distilbert.transformer.layer.0.ffn.lin2",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


@dataclass
class _Cell:
    """One (shape, effective block, sparsity) cell: its packed layer, input and same-round ratios so far."""

    name: str
    out_f: int
    in_f: int
    block: int
    bp_block: int
    sparsity: float
    packed: Any
    x: Any
    ratios: list[float] = field(default_factory=list)
    pass_medians: list[float] = field(default_factory=list)
    dense_ms: list[float] = field(default_factory=list)
    packed_ms: list[float] = field(default_factory=list)


def _cells(model: Any, row_blocks: tuple[int, ...], progress: Callable[[str], None]) -> list[_Cell]:
    """Pack every layer of ``LAYERS`` at every block and sparsity (masks from the bench's BP + PP)."""
    import torch

    from testbed.rt3.packing import PackedLinear

    mods = dict(model.named_modules())
    cells: list[_Cell] = []
    done: set[tuple[int, int, int]] = set()
    for bp_block in row_blocks:
        progress(f"row block {bp_block}: building BP + PP masks")
        _, sets = _mask_sets(model, bp_block)
        for name in LAYERS:
            lin = mods[name]
            out_f, in_f = int(lin.out_features), int(lin.in_features)
            eff = min(bp_block, out_f)
            if (out_f, in_f, eff) in done:
                continue
            done.add((out_f, in_f, eff))
            x = torch.randn(SEQ, in_f)
            for masks in sets:
                mask = masks[f"{name}.weight"]
                packed = PackedLinear(lin.weight, mask, lin.bias)
                cells.append(_Cell(name, out_f, in_f, eff, bp_block, _sparsity({name: mask}), packed, x))
        del sets
    return cells


def measure(
    rounds: int = 40,
    row_blocks: tuple[int, ...] = BP_ROW_BLOCKS,
    passes: int = 3,
    progress: Callable[[str], None] = _progress,
) -> dict[str, Any]:
    """The table as a JSON-ready dict (see the module docstring): ``passes`` passes over all cells, ``rounds``
    interleaved rounds per cell and pass; a cell's speed-up is the median of all its same-round ratios, with
    the per-pass medians beside it (their spread shows what the host's load did)."""
    import torch
    import torch.nn.functional as F

    from testbed.bench.bench_runtime import _distilbert

    torch.set_num_threads(1)
    load_before = _load()
    model = _distilbert()
    mods = dict(model.named_modules())
    with torch.inference_mode():
        cells = _cells(model, row_blocks, progress)
        for k in range(passes):
            progress(f"pass {k + 1}/{passes}: {len(cells)} cells, {rounds} rounds each")
            for c in cells:
                lin = mods[c.name]
                fns: dict[str, Callable[[], object]] = {
                    "dense": lambda lin=lin, x=c.x: F.linear(x, lin.weight, lin.bias),  # type: ignore[misc]
                    "packed": lambda p=c.packed, x=c.x: p(x),  # type: ignore[misc]
                }
                cpu: dict[str, list[float]] = {}
                _interleaved(fns, rounds, warmup=2, cpu=cpu)
                c.ratios += [a / b for a, b in zip(cpu["dense"], cpu["packed"], strict=True)]
                c.pass_medians.append(_ratio(cpu, "dense", "packed"))
                c.dense_ms += cpu["dense"]
                c.packed_ms += cpu["packed"]
    entries = []
    for c in cells:
        speedup = statistics.median(c.ratios)
        entries.append(
            {
                "out_features": c.out_f,
                "in_features": c.in_f,
                "layer": c.name,
                "row_block": c.block,
                "bp_row_block": c.bp_block,
                "sparsity": round(c.sparsity, 4),
                "ideal": round(1 / (1 - c.sparsity), 4),
                "speedup": round(speedup, 4),
                "fraction_of_ideal": round(speedup * (1 - c.sparsity), 4),
                "fraction_per_pass": [round(r * (1 - c.sparsity), 4) for r in c.pass_medians],
                "dense_cpu_ms": round(statistics.median(c.dense_ms), 4),
                "packed_cpu_ms": round(statistics.median(c.packed_ms), 4),
                "plan": c.packed.extra_repr(),
            }
        )
        progress(
            f"  {c.out_f}x{c.in_f} block {c.block} sparsity {c.sparsity:.3f}: {speedup:.2f}x "
            f"({entries[-1]['fraction_of_ideal']:.2f} of ideal; passes {entries[-1]['fraction_per_pass']})"
        )
    return {
        "what": "packed layer / dense F.linear per shape, BP row block and sparsity (testbed.bench.row_block_table)",
        "model": "distilbert-sized encoder (6×768, FFN 3072), random weights; masks as in bench_runtime",
        "tokens": SEQ,
        "threads": 1,
        "timing": "calling thread's CPU time, dense and packed interleaved in the same rounds; median of the "
        "same-round ratios of all passes",
        "rounds": rounds,
        "passes": passes,
        "bp_row_blocks": list(row_blocks),
        "host": {"node": platform.node(), "cpu": _cpu_model(), "cpus": os.cpu_count()},
        "host_load_1min": {"before": load_before, "after": _load()},
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "torch": torch.__version__,
        "entries": entries,
    }


def main(argv: list[str] | None = None) -> int:
    from testbed.rt3.row_blocks import TABLE_PATH

    ap = argparse.ArgumentParser(prog="python -m testbed.bench.row_block_table")
    ap.add_argument("--out", type=Path, default=TABLE_PATH, help=f"table file (default {TABLE_PATH})")
    ap.add_argument("--rounds", type=int, default=40, help="interleaved rounds per cell and pass")
    ap.add_argument("--passes", type=int, default=3, help="passes over all cells")
    ap.add_argument("--quick", action="store_true", help="3 rounds, row blocks 128 and 256 (smoke run)")
    args = ap.parse_args(argv)
    if args.rounds < 1 or args.passes < 1:
        sys.stderr.write("error: --rounds and --passes must be ≥ 1\n")
        return 2
    table = measure(3, (128, 256), 1) if args.quick else measure(args.rounds, passes=args.passes)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(table, indent=1) + "\n")
    sys.stderr.write(f"wrote {args.out}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
