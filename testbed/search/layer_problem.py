"""The layer-sparsity search on a checkpoint (``testbed search CKPT --space layer``).

Decisions as in :class:`~testbed.search.layerspace.LayerSparsitySpace`: a sparsity level per BP-masked tensor
per frequency level. Latency from a per-layer, per-level table — measured through an agent
(``--agent URL --latency-table per-layer``, :mod:`testbed.search.layer_profile`, cached in a file) or read
from a table file — so a candidate's latency is the measured fixed overhead plus the sum of what its
tensors cost at that level. Accuracy is NOT a proxy here: each level's pattern set (column strips, every
candidate allowed) is built on the backbone and evaluated with its masks on the frozen model, cached per
level, as the pattern-set search's ``mask`` mode does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI
from testbed.rt3.checkpoint import Checkpoint
from testbed.rt3.pp import PatternSet
from testbed.rt3.search_api import PatternSearchAPI
from testbed.search.layer_profile import level_pattern_set, load_or_measure
from testbed.search.layerspace import LayerAccuracyTable, LayerCostTable, TableEvaluator, load_cost_table
from testbed.search.reward import RewardConfig
from testbed.search.space import Candidate


class TableLatency:
    """A table-scored problem's latency source: level names and the table's source; ``close`` gives an agent's
    lease back (when the table was measured in this run)."""

    def __init__(self, table: LayerCostTable, client: AgentAPI | None = None, cached: bool = False) -> None:
        self.table = table
        self.client = client
        self.cached = cached
        self.source = table.source

    @property
    def level_names(self) -> list[str]:
        return list(self.table.level_names)

    def close(self) -> None:
        if self.client is None:
            return
        try:
            if self.client.lease_id is not None:
                self.client.release()
        finally:
            self.client.close()
            self.client = None


class CheckpointLayerEvaluator(TableEvaluator):
    """:class:`TableEvaluator` whose accuracy is each level's real pattern set on the frozen backbone."""

    def __init__(
        self,
        api: PatternSearchAPI,
        cost: LayerCostTable,
        deadlines_ms: Sequence[float],
        reward: RewardConfig,
        eval_batches: int | None,
        calibrate: bool = True,
    ) -> None:
        if list(cost.layers) != api.layers:
            raise BadInputError(f"latency table lists layers {list(cost.layers)}, the checkpoint {api.layers}")
        if [round(x, 9) for x in cost.sparsity_levels] != [round(x, 9) for x in api.space.levels]:
            have, want = list(cost.sparsity_levels), list(api.space.levels)
            raise BadInputError(f"latency table sparsities {have} differ from the search's {want}")
        self.api = api
        self.eval_batches = eval_batches
        self._sets: dict[tuple[int, ...], PatternSet] = {}
        self._acc: dict[tuple[int, ...], float] = {}
        dense = self._level_accuracy(0, (0,) * len(cost.layers))
        table = LayerAccuracyTable(
            cost.layers,
            cost.sparsity_levels,
            dense,
            tuple((0.0,) * len(cost.sparsity_levels) for _ in cost.layers),
            "real masked accuracy of each level's pattern set (frozen backbone), no table",
        )
        super().__init__(cost, table, deadlines_ms, reward, calibrate, accuracy_fn=self._level_accuracy)
        self.source = f"latency: {cost.source}; accuracy: {table.source}"

    def _set(self, levels: tuple[int, ...]) -> PatternSet:
        if levels not in self._sets:
            self._sets[levels] = level_pattern_set(self.api, levels, "s" + "-".join(map(str, levels)))
        return self._sets[levels]

    def _level_accuracy(self, k: int, levels: tuple[int, ...]) -> float:
        if levels not in self._acc:
            self._acc[levels] = self.api.accuracy(self._set(levels), max_batches=self.eval_batches)
        return self._acc[levels]

    def pattern_set(self, candidate: Candidate, k: int) -> PatternSet:
        """Level ``k``'s pattern set of ``candidate`` (what the best artifact exports)."""
        return self._set(self.space.per_level(self.space.validate(candidate))[k])


def layer_latency(
    checkpoint: Checkpoint,
    api: PatternSearchAPI,
    latency_table: str | None,
    client: AgentAPI | None,
    levels: Sequence[str] | None,
    inferences: int,
    cache: Path | None,
) -> TableLatency:
    """The latency table of a layer search: ``per-layer`` measures through ``client`` (cached in ``cache``),
    anything else is a table file written by :func:`testbed.search.layerspace.save_table`."""
    if latency_table == "per-layer":
        if client is None:
            raise BadInputError("--latency-table per-layer measures through an agent: give --agent URL")
        table, cached = load_or_measure(cache, client, checkpoint, api, levels, inferences)
        return TableLatency(table, client, cached)
    if latency_table is None:
        raise BadInputError("--space layer needs --latency-table per-layer (with --agent) or a table FILE")
    table = load_cost_table(Path(latency_table))
    if levels is not None:
        raise BadInputError("--levels selects board levels to measure; a table file has its own levels")
    return TableLatency(table)
