"""The optional memory term of the layer-sparsity search: resident bytes of the union of the K levels' weights.

RT3's runtime keeps every level's pattern set packed in memory, so that a switch is a reference swap. A
tensor that two levels prune to the SAME sparsity is one packed tensor (same pattern, stored once — as
:func:`testbed.rt3.runtime.unique_tensor_bytes` counts the runtime's sets), a tensor at three different
sparsities is three. So the resident memory of a candidate is::

    resident_bytes = Σ_g Σ_{s ∈ {s_1g, …, s_Kg}} bytes[g][s]          (distinct sparsities of tensor g)

which couples the levels: a denser tensor at a slow level costs nothing extra when a faster level already
holds it at that sparsity. ``bytes[g][s]`` is the column-strip packed size of tensor ``g`` at sparsity ``s``:
``rows·cols·(1 − s)`` kept fp32 values (4 B each) plus one int64 column index per kept column of every group
of ``group_rows`` rows, i.e. ``8 / group_rows`` bytes per kept value (:mod:`testbed.rt3.packing`'s layout;
padding and kept-row indices left out, so it is a slight underestimate).

The reward term (added to RT3's reward when the weight is positive)::

    memory_term = −weight · resident_bytes / dense_bytes

in units of "dense copies of the counted tensors" (``dense_bytes`` = every tensor packed once at sparsity 0).
A switch cost between levels is not modelled: with every set pre-packed a switch is a reference swap
(``testbed rt3 bench switch`` measures it), so what sharing saves is memory, not time.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from devices.errors import BadInputError
from testbed.rt3.opcount import RT3_LM, LMShape, op_tensors
from testbed.rt3.pp import RT3_LEVELS

FP32_BYTES = 4
INDEX_BYTES = 8


@dataclass(frozen=True)
class MemoryTerm:
    """Packed bytes per tensor and sparsity level (``bytes_per_layer[g][s]``) and the term's ``weight``."""

    layers: tuple[str, ...]
    sparsity_levels: tuple[float, ...]
    bytes_per_layer: tuple[tuple[float, ...], ...]
    weight: float
    source: str

    def __post_init__(self) -> None:
        if len(self.bytes_per_layer) != len(self.layers) or any(
            len(row) != len(self.sparsity_levels) for row in self.bytes_per_layer
        ):
            raise BadInputError("memory table needs one byte count per layer and sparsity level")
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise BadInputError(f"memory weight must be ≥ 0, got {self.weight}")

    @property
    def dense_bytes(self) -> float:
        """Every tensor once at the densest level (the term's unit)."""
        return math.fsum(row[0] for row in self.bytes_per_layer)

    def resident_bytes(self, per_level: Sequence[Sequence[int]]) -> float:
        """Bytes of the union of the levels' packed tensors (sparsity indices per level, per layer)."""
        total = 0.0
        for g, row in enumerate(self.bytes_per_layer):
            total += math.fsum(row[s] for s in {lv[g] for lv in per_level})
        return total

    def term(self, per_level: Sequence[Sequence[int]]) -> float:
        """``−weight · resident / dense`` (0 when the weight is 0)."""
        if self.weight == 0:
            return 0.0
        return -self.weight * self.resident_bytes(per_level) / self.dense_bytes

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "dense_bytes": self.dense_bytes}


def packed_memory_term(
    weight: float,
    shape: LMShape = RT3_LM,
    sparsity_levels: Sequence[float] = RT3_LEVELS,
    group_rows: int = 16,
) -> MemoryTerm:
    """The memory term for the counted tensors of ``shape`` (see the module text for the byte model)."""
    if group_rows < 1:
        raise BadInputError(f"group rows must be ≥ 1, got {group_rows}")
    per_value = FP32_BYTES + INDEX_BYTES / group_rows
    rows = tuple(
        tuple(t.rows * t.cols * (1.0 - float(s)) * per_value for s in sparsity_levels) for t in op_tensors(shape)
    )
    return MemoryTerm(
        tuple(t.name for t in op_tensors(shape)),
        tuple(float(s) for s in sparsity_levels),
        rows,
        float(weight),
        f"modelled: column-strip packed bytes (fp32 + int64 index per {group_rows}-row group) of {shape}",
    )
