"""Per-layer latency tables measured on a board (or an emulated one) through its agent.

The layer-sparsity search needs ``T[g][s][k]``: what tensor ``g`` costs at sparsity level ``s`` and frequency
level ``k``, so that a candidate's latency at level ``k`` is ``fixed_k + Σ_g T[g][s_g][k]``. Measured as
EdgeTran/ProTran profile on the device, with the agent's existing API only (one upload, then measurement
windows):

* one ``.rt3`` artifact of the checkpoint's backbone holds ``1 + G·(S − 1)`` pattern sets: ``base`` (every
  tensor at the sparsest level) and, per tensor ``g`` and every other level ``s``, ``g`` at ``s`` with the rest
  at the sparsest level (column-strip patterns, "any" candidate per tile, :func:`testbed.rt3.pp.build_pattern_set`);
* at every frequency level (fastest first) the agent measures each set in a window of ``inferences`` timed
  inferences (after ``warmup``), switching sets inside the loaded model;
* ``fixed_ms[k]`` = p50 of ``base`` (the measured fixed overhead: embedding lookup, attention scores, norms,
  the other tensors at their sparsest), ``T[g][s][k]`` = p50(``g`` at ``s``) − ``fixed_ms[k]`` and
  ``T[g][sparsest][k]`` = 0; ``power_w[k]`` = the meter's mean power over that level's windows;
* ``base`` is measured again after the level's other sets: the difference of the two is the level's
  ``noise_ms`` in the provenance. A tensor never costs less when it is denser, so the stored table is made
  monotone — ``T[g][s][k]`` = max(0, T[g][s][k], T[g][s+1][k]) from the sparsest level down — and the raw
  differences are kept in the provenance (``raw_latency_ms``). On a small model or a loaded host many raw
  differences are below the noise; the provenance shows how many (``deltas_below_noise``).

So a candidate's latency is exact for every set measured and additive in between (interactions between
tensors — caches, threads — are what the sum leaves out). p50 is used because medians add up better than
tails; the table's ``provenance`` records the agent, the board profile, whether it is emulated, the meter, the
host's load per core before and after, the time and the number of windows. :func:`load_or_measure` caches
the table in a file and reuses it while the backbone's masks, levels, sparsities and settings match.

Failure modes: an unreachable agent → AgentUnavailable (exit 1); a level the board does not have, or an agent
without a meter and no fallback powers → BadInputError; a cache file of another problem is re-measured, a
broken one is a ParseError naming the file.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from devices.errors import BadInputError
from testbed.agent.api import AgentAPI
from testbed.rt3.checkpoint import Checkpoint
from testbed.rt3.pp import LayerChoice, PatternSet
from testbed.rt3.search_api import PatternSearchAPI
from testbed.search.agent_latency import masks_digest
from testbed.search.layerspace import LayerCostTable, load_cost_table, save_table

BASE = "base"


def _load_per_core() -> float:
    try:
        return round(os.getloadavg()[0] / (os.cpu_count() or 1), 3)
    except OSError:  # pragma: no cover - platforms without a load average
        return 0.0


def level_pattern_set(api: PatternSearchAPI, levels: Sequence[int], name: str) -> PatternSet:
    """The pattern set with ``api.layers[g]`` at sparsity index ``levels[g]`` (every candidate allowed)."""
    layers = api.layers
    if len(levels) != len(layers):
        raise BadInputError(f"{len(levels)} sparsity indices for {len(layers)} layers")
    return api.build({n: LayerChoice(int(s)) for n, s in zip(layers, levels, strict=True)}, name)


def profile_sets(api: PatternSearchAPI) -> list[PatternSet]:
    """``base`` (all at the sparsest level) and one set per tensor and other level (see the module text)."""
    n_layers, last = len(api.layers), len(api.space.levels) - 1
    sets = [level_pattern_set(api, [last] * n_layers, BASE)]
    for g in range(n_layers):
        for s in range(last):
            levels = [last] * n_layers
            levels[g] = s
            sets.append(level_pattern_set(api, levels, f"g{g}-s{s}"))
    return sets


def cache_key(api: PatternSearchAPI, levels: Sequence[str], inferences: int, warmup: int, agent: str) -> dict[str, Any]:
    """What a cached table must match to be reused."""
    return {
        "backbone_masks": masks_digest(PatternSet("bp", dict(api.bp_masks), {})),
        "layers": list(api.layers),
        "sparsity_levels": [float(x) for x in api.space.levels],
        "pattern_mode": api.space.mode,
        "levels": list(levels),
        "inferences": inferences,
        "warmup": warmup,
        "agent": agent,
    }


def measure_layer_table(
    client: AgentAPI,
    checkpoint: Checkpoint,
    api: PatternSearchAPI,
    levels: Sequence[str] | None = None,
    inferences: int = 20,
    warmup: int = 3,
    fallback_power_w: Sequence[float] | None = None,
    progress: Callable[[str], None] | None = None,
) -> LayerCostTable:
    """Measure the per-layer table of ``checkpoint``'s layers through ``client`` (which holds the lease)."""
    from testbed.rt3.export import build_artifact
    from testbed.search.agent_latency import agent_levels

    info = client.info()
    names = agent_levels(client, info, levels)
    if inferences < 1 or warmup < 0:
        raise BadInputError(f"inferences must be ≥ 1 and warmup ≥ 0, got {inferences} and {warmup}")
    sets = profile_sets(api)
    ck = checkpoint
    one = Checkpoint(
        model=ck.model, description=ck.description, data=ck.data, vocab=ck.vocab, stage="pp", results={},
        bp_masks=ck.bp_masks, bp_config=ck.bp_config, space=api.space, sets=sets,
    )  # fmt: skip
    load_before = _load_per_core()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="rt3-layers-") as tmp:
        path = build_artifact(one, Path(tmp) / "layer-profile.rt3")
        model = client.upload_model(path)
    p50: dict[tuple[str, int], float] = {}
    powers: list[list[float]] = [[] for _ in names]
    try:
        for k, level in enumerate(names):
            client.set_frequency(level=level)
            for ps in [*sets, sets[0]]:  # base again at the end: the level's noise
                m = client.measure(
                    model["model_id"], level=level, pattern_set=ps.name, inferences=inferences, warmup=warmup
                )
                key = (ps.name, k) if (ps.name, k) not in p50 else ("base-again", k)
                p50[key] = float(m["latency"]["p50_ms"])
                power = (m.get("energy") or {}).get("mean_power_w")
                if power is not None:
                    powers[k].append(float(power))
            if progress is not None:
                progress(f"level {level}: {len(sets)} sets measured")
    finally:
        client.unload_model(model["model_id"])
    if any(not p for p in powers):
        if fallback_power_w is None:
            raise BadInputError(f"agent {client.url} has no meter; give fallback powers per level")
        power_w = [float(x) for x in fallback_power_w]
    else:
        power_w = [sum(p) / len(p) for p in powers]
    n_layers, n_sp = len(api.layers), len(api.space.levels)
    n_lv = len(names)
    fixed = [p50[(BASE, k)] for k in range(n_lv)]
    noise = [abs(p50[("base-again", k)] - fixed[k]) for k in range(n_lv)]
    raw = [
        [[0.0 if s == n_sp - 1 else p50[(f"g{g}-s{s}", k)] - fixed[k] for k in range(n_lv)] for s in range(n_sp)]
        for g in range(n_layers)
    ]
    below = sum(abs(raw[g][s][k]) <= noise[k] for g in range(n_layers) for s in range(n_sp - 1) for k in range(n_lv))
    mono = [[row[:] for row in layer] for layer in raw]
    for layer in mono:
        for k in range(n_lv):
            for s in range(n_sp - 2, -1, -1):
                layer[s][k] = max(0.0, layer[s][k], layer[s + 1][k])
    lat = tuple(tuple(tuple(row) for row in layer) for layer in mono)
    kind = "emulated board" if info.get("emulated") else "board"
    meter = (info.get("meter") or {}).get("uri", "no meter")
    load_after = _load_per_core()
    provenance = {
        **cache_key(api, names, inferences, warmup, client.url),
        "board_profile": info.get("profile"),
        "emulated": bool(info.get("emulated")),
        "meter": meter,
        "host_load_per_core_before": load_before,
        "host_load_per_core_after": load_after,
        "measured_at_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "pattern_sets": len(sets),
        "windows": (len(sets) + 1) * n_lv,
        "noise_ms": noise,
        "deltas_below_noise": f"{below} of {n_layers * (n_sp - 1) * n_lv}",
        "raw_latency_ms": raw,
        "wall_s": round(time.monotonic() - t0, 2),
        "statistic": f"p50 of {inferences} inferences after {warmup} warm-up",
    }
    source = (
        f"measured per layer: agent {client.url} ({kind} {info.get('profile', '?')}, meter {meter}, "
        f"host load {load_before:.2f}/core), p50 of {inferences}, {len(sets)} sets × {n_lv} levels, "
        f"{below} of {n_layers * (n_sp - 1) * n_lv} differences within the noise"
    )
    return LayerCostTable(
        tuple(api.layers),
        tuple(float(x) for x in api.space.levels),
        tuple(names),
        lat,
        tuple(fixed),
        tuple(power_w),
        source,
        provenance,
    )


def load_or_measure(
    path: Path | None,
    client: AgentAPI,
    checkpoint: Checkpoint,
    api: PatternSearchAPI,
    levels: Sequence[str] | None = None,
    inferences: int = 20,
    warmup: int = 3,
    progress: Callable[[str], None] | None = None,
) -> tuple[LayerCostTable, bool]:
    """The table cached in ``path`` when it was measured for this problem, else a fresh measurement (written to
    ``path``). Returns the table and whether it came from the cache."""
    names = list(levels) if levels is not None else [lv["name"] for lv in client.info().get("levels", [])]
    want = cache_key(api, names, inferences, warmup, client.url)
    if path is not None and path.is_file():
        cached = load_cost_table(path)
        if {k: cached.provenance.get(k) for k in want} == want:
            return replace(cached, source=f"{cached.source} (cached in {path})"), True
    table = measure_layer_table(client, checkpoint, api, names, inferences, warmup, progress=progress)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        save_table(path, table)
    return table, False
