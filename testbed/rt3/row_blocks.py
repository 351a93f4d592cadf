"""The BP row block chosen from a measured table: how close to ideal a packed layer runs, per shape and block.

The row block is a property of the BP mask (every ``row_block`` rows keep one column set), and it sets the
size of the packed layer's group GEMMs: taller blocks mean bigger GEMMs (nearer the dense GEMM's rate) and a
coarser pruning structure (possibly lower accuracy). ``tables/row_block.json`` holds, per linear shape
``out × in``, BP row block and sparsity, the packed layer's speed-up over dense ``F.linear`` and its fraction
of the ideal 1 / (1 − sparsity), measured by ``python -m testbed.bench.row_block_table`` (1 thread, CPU
time, interleaved with dense in the same rounds; host, load, date and torch version are in the file).

:func:`pick_row_block` chooses ONE row block per model (BP's ``row_block`` and PP's tile height are one
integer per model; a per-layer block would need per-layer PP spaces): the smallest measured block at which the
model's linears, weighted by their multiply-adds, reach every target fraction of ideal; if none does, the
block with the best worst-case ratio to the targets (the fastest). A weight whose shape is not in the table
is judged by the nearest measured shape (log distance of out and in); the choice says which stood in.
A block taller than a weight means the whole weight (BP already caps the block at ``out``).

Failure modes: a missing or malformed table raises BadInputError naming the file and field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from devices.errors import BadInputError

TABLE_PATH = Path(__file__).parent / "tables" / "row_block.json"
#: Issue 17's targets: packed layer speed-up / ideal ≥ 0.8 at 75 % sparsity and ≥ 0.6 at 90 %.
ISSUE_TARGETS: Mapping[float, float] = {0.75: 0.8, 0.9: 0.6}
AUTO = "auto"


@dataclass(frozen=True)
class RowBlockEntry:
    """One measured cell: a packed ``out × in`` layer at ``row_block`` (effective, ≤ out) and ``sparsity``."""

    out_features: int
    in_features: int
    row_block: int
    sparsity: float
    speedup: float  # dense F.linear time / packed time (median of same-round ratios, CPU time)
    fraction_of_ideal: float  # speedup · (1 − sparsity)


@dataclass(frozen=True)
class RowBlockTable:
    """The measured cells and how they were measured (host, load, date, torch version, rounds)."""

    entries: tuple[RowBlockEntry, ...]
    meta: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @property
    def shapes(self) -> list[tuple[int, int]]:
        return sorted({(e.out_features, e.in_features) for e in self.entries})

    @property
    def row_blocks(self) -> list[int]:
        """Nominal blocks measured (BP ``row_block`` values), ascending."""
        return sorted({int(b) for b in self.meta.get("bp_row_blocks", [e.row_block for e in self.entries])})

    def fraction(self, shape: tuple[int, int], row_block: int, sparsity: float) -> float:
        """Measured fraction of ideal of ``shape`` (a measured shape) at BP ``row_block`` (capped at out), at
        the measured sparsity nearest ``sparsity``; BadInputError if that block was not measured."""
        out_f, in_f = shape
        eff = min(row_block, out_f)
        cells = [e for e in self.entries if (e.out_features, e.in_features) == shape and e.row_block == eff]
        if not cells:
            raise BadInputError(f"{self.source}: no entry for {out_f}×{in_f} at row block {eff}")
        return min(cells, key=lambda e: abs(e.sparsity - sparsity)).fraction_of_ideal

    def stand_in(self, shape: tuple[int, int]) -> tuple[int, int]:
        """The measured shape nearest ``shape`` (itself when measured)."""
        return min(self.shapes, key=lambda s: (math.log(s[0] / shape[0]) ** 2 + math.log(s[1] / shape[1]) ** 2, s))

    @classmethod
    def load(cls, path: Path | str = TABLE_PATH) -> RowBlockTable:
        p = Path(path)
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise BadInputError(f"{p}: cannot read the row-block table ({e})") from e
        rows = data.get("entries") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not rows:
            raise BadInputError(f"{p}: field 'entries' must be a non-empty list")
        entries = []
        for i, r in enumerate(rows):
            try:
                entries.append(
                    RowBlockEntry(
                        int(r["out_features"]),
                        int(r["in_features"]),
                        int(r["row_block"]),
                        float(r["sparsity"]),
                        float(r["speedup"]),
                        float(r["fraction_of_ideal"]),
                    )
                )
            except (KeyError, TypeError, ValueError) as e:
                raise BadInputError(f"{p}: entries[{i}]: missing or bad field ({e})") from e
        meta = {k: v for k, v in data.items() if k != "entries"}
        return cls(tuple(entries), meta, str(p))


@dataclass(frozen=True)
class RowBlockChoice:
    """The chosen BP row block, the model's MAC-weighted fraction of ideal at every candidate and target
    sparsity, whether the targets were reached, and which measured shape stood in for each model shape."""

    row_block: int
    reached: bool
    targets: dict[float, float]
    fractions: dict[int, dict[float, float]]  # candidate block → {target sparsity: model fraction of ideal}
    stand_ins: dict[str, str]
    table: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "row_block": self.row_block,
            "reached": self.reached,
            "targets": {str(s): f for s, f in self.targets.items()},
            "fractions": {str(b): {str(s): round(f, 4) for s, f in fr.items()} for b, fr in self.fractions.items()},
            "stand_ins": self.stand_ins,
            "table": self.table,
        }


def _stand_in_block(table: RowBlockTable, shape: tuple[int, int], stand: tuple[int, int], row_block: int) -> int:
    """The measured block of ``stand`` that plays ``row_block`` on ``shape``: the whole weight when the block
    covers ``shape``, else the measured block nearest ``row_block`` (log distance), capped at the stand-in."""
    if row_block >= shape[0]:
        return stand[0]
    measured = sorted({e.row_block for e in table.entries if (e.out_features, e.in_features) == stand})
    return min(measured, key=lambda b: (abs(math.log(b / row_block)), b))


def model_fraction(table: RowBlockTable, shapes: Sequence[tuple[int, int]], row_block: int, sparsity: float) -> float:
    """Fraction of ideal of all ``shapes`` together (time-weighted: dense work / Σ packed work at the measured
    fractions), every weight at ``sparsity`` and BP ``row_block``."""
    dense = 0.0
    packed = 0.0
    for shape in shapes:
        macs = float(shape[0] * shape[1])
        stand = table.stand_in(shape)
        frac = table.fraction(stand, _stand_in_block(table, shape, stand, row_block), sparsity)
        dense += macs
        packed += macs / frac
    return dense / packed if packed else 0.0


def pick_row_block(
    shapes: Sequence[tuple[int, int]],
    targets: Mapping[float, float] = ISSUE_TARGETS,
    table: RowBlockTable | None = None,
) -> RowBlockChoice:
    """The smallest measured row block at which ``shapes`` (a model's prunable weights, out × in) reach every
    target fraction of ideal (``{sparsity: fraction}``); if none, the one with the best worst ratio to the
    targets. BadInputError for no shapes or no targets."""
    if not shapes:
        raise BadInputError("no prunable weights to choose a row block for")
    if not targets:
        raise BadInputError("no target sparsities to choose a row block for")
    tab = table or RowBlockTable.load()
    fractions: dict[int, dict[float, float]] = {}
    for b in tab.row_blocks:
        fractions[b] = {s: model_fraction(tab, shapes, b, s) for s in targets}
    reaching = [b for b, fr in fractions.items() if all(fr[s] >= t for s, t in targets.items())]
    if reaching:
        chosen, reached = min(reaching), True
    else:
        chosen = max(fractions, key=lambda b: (min(fractions[b][s] / t for s, t in targets.items()), -b))
        reached = False
    stand = {f"{o}x{i}": "{}x{}".format(*tab.stand_in((o, i))) for o, i in sorted(set(shapes))}
    return RowBlockChoice(chosen, reached, dict(targets), fractions, stand, tab.source)


def resolve_row_block(row_block: int | str, shapes: Sequence[tuple[int, int]]) -> tuple[int, RowBlockChoice | None]:
    """An integer row block as given, or ``"auto"`` resolved by :func:`pick_row_block` on the default table
    and issue 17's targets; BadInputError for anything else."""
    if isinstance(row_block, int) and not isinstance(row_block, bool):
        return row_block, None
    if isinstance(row_block, str):
        if row_block.strip().lower() == AUTO:
            choice = pick_row_block(shapes)
            return choice.row_block, choice
        try:
            return int(row_block), None
        except ValueError:
            pass
    raise BadInputError(f"row block must be a positive integer or 'auto', got {row_block!r}")
