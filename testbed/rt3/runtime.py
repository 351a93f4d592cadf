"""The reconfigurable runtime (torch backend): one backbone, K pre-packed pattern sets, O(1) switching.

``switch(k)`` replaces one reference (the active packed module) under a lock; it copies no weights. An
inference reads the reference once when it starts, so a switch issued while an inference runs takes effect at
the next inference and never mixes two pattern sets inside one forward pass.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from devices.errors import BadInputError
from testbed.rt3.masking import Masks
from testbed.rt3.packed_model import pack_model, packed_nbytes


class ReconfigurableModel:
    """K packed variants of one backbone; ``switch(k)`` selects which one runs.

    Thread safety: concurrent ``switch`` calls are serialised by a lock; ``__call__`` is lock-free and uses the
    variant that was active when it started.
    """

    def __init__(self, variants: Sequence[nn.Module], names: Sequence[str] | None = None) -> None:
        if not variants:
            raise BadInputError("a reconfigurable model needs at least one pattern set")
        self.variants = list(variants)
        self.names = list(names) if names is not None else [f"set{i}" for i in range(len(variants))]
        if len(self.names) != len(self.variants):
            raise BadInputError(f"{len(self.variants)} variants but {len(self.names)} names")
        self._lock = threading.Lock()
        self._index = 0
        self._active = self.variants[0]

    @classmethod
    def from_backbone(
        cls, backbone: nn.Module, mask_sets: Sequence[Masks], names: Sequence[str] | None = None
    ) -> ReconfigurableModel:
        """Pack every mask set over ``backbone`` (all packing happens here, none at switch time)."""
        return cls([pack_model(backbone, m) for m in mask_sets], names)

    @property
    def k(self) -> int:
        """Number of pattern sets."""
        return len(self.variants)

    @property
    def active_index(self) -> int:
        return self._index

    @property
    def active(self) -> nn.Module:
        return self._active

    def switch(self, k: int) -> float:
        """Make pattern set ``k`` the active one; returns the time the swap took in ms.

        Raises BadInputError for an index outside 0…K−1.
        """
        if not 0 <= k < len(self.variants):
            raise BadInputError(f"pattern set {k} does not exist (0…{len(self.variants) - 1})")
        t0 = time.perf_counter_ns()
        with self._lock:
            self._active = self.variants[k]
            self._index = k
        return (time.perf_counter_ns() - t0) / 1e6

    def __call__(self, *args: Tensor, **kwargs: Any) -> Tensor:
        model = self._active  # one read: the whole forward uses this variant
        with torch.inference_mode():
            out: Tensor = model(*args, **kwargs)
        return out

    def memory_per_set_bytes(self) -> list[int]:
        """Bytes of packed weights held for each pattern set (shared backbone parts not counted)."""
        return [packed_nbytes(v) for v in self.variants]

    def resident_bytes(self) -> int:
        """Bytes of every tensor the K sets hold, each storage counted once: the shared backbone parts
        (embeddings, norms, heads) once plus every set's packed weights."""
        return unique_tensor_bytes(self.variants)


def unique_tensor_bytes(modules: Sequence[nn.Module]) -> int:
    """Bytes of the parameters and buffers of ``modules``, each underlying storage counted once."""
    seen: dict[int, int] = {}
    for m in modules:
        for t in list(m.parameters()) + list(m.buffers()):
            st = t.untyped_storage()
            seen[st.data_ptr()] = max(seen.get(st.data_ptr(), 0), st.nbytes())
    return sum(seen.values())
