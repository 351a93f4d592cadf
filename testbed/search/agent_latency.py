"""Hardware in the loop for the search: each new pattern set's latency and power measured on a board's agent.

As EdgeTran/ProTran profile candidates on the device: the first time the search needs a pattern set's cost,
:class:`AgentLatency` exports that one set as an ``.rt3`` artifact of the search's backbone, uploads it to the
agent, and at every frequency level of the board profile (fastest first, or the ``levels`` given) measures a
window of ``inferences`` timed inferences (p50 → the battery term, p99 → the deadline) and the meter's mean
power; then unloads it. Results are cached per pattern set (digest of its masks) and level, so a set shared
by many candidates is measured once. On an emulated board the latency is the agent's emulation (CPU time of
the real inference scaled to the board); the source string says which (``measured: agent …``).

Failure modes: an unreachable agent → AgentUnavailable (exit 1); a level the board does not have →
BadInputError naming it.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI
from testbed.rt3.checkpoint import Checkpoint
from testbed.rt3.pp import PatternSet
from testbed.search.latency import LevelCost


def masks_digest(pattern_set: PatternSet) -> str:
    """SHA-256 of a set's masks (names and bits, sorted by name): the cache key of a measured set."""
    h = hashlib.sha256()
    for name in sorted(pattern_set.masks):
        h.update(name.encode())
        h.update(pattern_set.masks[name].to(dtype=torch.bool).contiguous().numpy().tobytes())
    return h.hexdigest()


def agent_levels(client: AgentAPI, info: Mapping[str, Any], levels: Sequence[str] | None) -> list[str]:
    """``levels`` (default: all the agent's, in its order) checked against the agent's ``info``;
    BadInputError naming the agent for a level it does not have or an empty list."""
    board_levels = [lv["name"] for lv in info.get("levels", [])]
    names = list(levels) if levels is not None else board_levels
    unknown = [n for n in names if n not in board_levels]
    if unknown or not names:
        raise BadInputError(f"agent {client.url}: no level(s) {', '.join(unknown) or '(none)'}; has {board_levels}")
    return names


class AgentLatency:
    """A :class:`~testbed.search.latency.LatencyModel` that measures through an agent (see the module text).

    ``client`` must hold the board's lease for the whole search. ``fallback_power_w`` is used per level when
    the agent has no meter (then the source says so).
    """

    def __init__(
        self,
        client: AgentAPI,
        checkpoint: Checkpoint,
        levels: Sequence[str] | None = None,
        inferences: int = 20,
        warmup: int = 3,
        fallback_power_w: Sequence[float] | None = None,
    ) -> None:
        info = client.info()
        names = agent_levels(client, info, levels)
        self.client = client
        self.checkpoint = checkpoint
        self._names = names
        self.inferences = inferences
        self.warmup = warmup
        self.fallback_power_w = list(fallback_power_w) if fallback_power_w is not None else None
        self.cache: dict[tuple[str, int], LevelCost] = {}
        self.measured_sets = 0
        kind = "emulated board" if info.get("emulated") else "board"
        meter = (info.get("meter") or {}).get("uri", "no meter")
        self.source = f"measured: agent {client.url} ({kind} {info.get('profile', '?')}, meter {meter})"

    @property
    def level_names(self) -> list[str]:
        return list(self._names)

    def close(self) -> None:
        """Give the lease back (the agent restores the board) and close the client."""
        try:
            if self.client.lease_id is not None:
                self.client.release()
        finally:
            self.client.close()

    def cost(self, pattern_set: PatternSet, level: int) -> LevelCost:
        key = (masks_digest(pattern_set), level)
        if key not in self.cache:
            self._measure(pattern_set, key[0])
        return self.cache[key]

    def _measure(self, pattern_set: PatternSet, digest: str) -> None:
        from testbed.rt3.export import build_artifact

        ck = self.checkpoint
        one = Checkpoint(
            model=ck.model,
            description=ck.description,
            data=ck.data,
            vocab=ck.vocab,
            stage="pp",
            results={},
            bp_masks=ck.bp_masks,
            bp_config=ck.bp_config,
            sets=[pattern_set],
        )
        with tempfile.TemporaryDirectory(prefix="rt3-agent-") as tmp:
            path = build_artifact(one, Path(tmp) / f"set-{digest[:12]}.rt3")
            model = self.client.upload_model(path)
        try:
            for k, name in enumerate(self._names):
                self.client.set_frequency(level=name)
                m = self.client.measure(model["model_id"], level=name, inferences=self.inferences, warmup=self.warmup)
                power = (m.get("energy") or {}).get("mean_power_w")
                if power is None:
                    if self.fallback_power_w is None:
                        raise BadInputError(f"agent {self.client.url} has no meter; give fallback powers per level")
                    power = self.fallback_power_w[k]
                lat = m["latency"]
                self.cache[(digest, k)] = LevelCost(float(lat["p50_ms"]), float(lat["p99_ms"]), float(power))
        finally:
            self.client.unload_model(model["model_id"])
        self.measured_sets += 1
