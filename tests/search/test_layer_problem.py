"""``testbed search --space layer``: a sparsity per tensor per level, latency from a per-layer table (a file,
or measured through a real agent process on loopback with an emulated board)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from devices.errors import BadInputError
from testbed.agent.launch import start_local_agent
from testbed.rt3.artifact import Artifact
from testbed.rt3.checkpoint import Checkpoint
from testbed.search.layerspace import LayerCostTable, load_cost_table, save_table
from testbed.search.problem import SearchConfig
from testbed.search.runner import search_run

from .conftest import SMALL

LEVELS = (0.0, 0.25, 0.5, 0.75)
LAYER = {**SMALL, "space": "layer", "deadlines_ms": (1e6,), "runs_range": (0.0, 1e9), "acc_range": (0.0, 1.0)}


def _table(layers: list[str], source: str = "test: hand-made table") -> LayerCostTable:
    g = len(layers)
    lat = tuple(tuple(tuple((3 - s) * (gi + 1) * f for f in (1.0, 2.0)) for s in range(len(LEVELS))) for gi in range(g))
    return LayerCostTable(tuple(layers), LEVELS, ("hi", "lo"), lat, (1.0, 2.0), (2.0, 1.0), source)


def test_a_layer_search_from_a_table_file_sums_its_layers_and_exports_the_best(
    bp_checkpoint_dir: Path, tmp_path: Path
) -> None:
    layers = list(Checkpoint.load(bp_checkpoint_dir).bp_masks or {})
    table = _table(layers)
    save_table(tmp_path / "lat.json", table)
    cfg = SearchConfig(**{**LAYER, "algo": "structured", "budget": 8, "latency_table": str(tmp_path / "lat.json")})  # type: ignore[arg-type]
    out = search_run(tmp_path / "s", ckpt=bp_checkpoint_dir, cfg=cfg)
    s = out.summary
    assert s.latency_source == table.source and s.evaluations == 8
    g = len(layers)
    arr = table.array()
    for k, level in enumerate(s.levels):
        per_layer = s.candidate[k * g : (k + 1) * g]
        want = table.fixed_ms[k] + sum(arr[i, opt, k] for i, opt in enumerate(per_layer))
        assert level["latency_ms"] == pytest.approx(want)
    assert out.artifact is not None
    art = Artifact.open(out.artifact)
    assert [p["freq_level"] for p in art.pattern_sets] == [0, 1]
    assert [p["accuracy"] for p in art.pattern_sets] == [lv["accuracy"] for lv in s.levels]


def test_layer_space_input_errors_are_one_line(bp_checkpoint_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="--latency-table belongs to --space layer"):
        SearchConfig(latency_table="per-layer")
    with pytest.raises(BadInputError, match="--space 'tiles'"):
        SearchConfig(space="tiles")
    cfg = SearchConfig(**{**LAYER, "budget": 2})  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="needs --latency-table"):
        search_run(tmp_path / "a", ckpt=bp_checkpoint_dir, cfg=cfg)
    save_table(tmp_path / "other.json", _table(["x", "y"]))
    cfg = SearchConfig(**{**LAYER, "budget": 2, "latency_table": str(tmp_path / "other.json")})  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="latency table lists layers"):
        search_run(tmp_path / "b", ckpt=bp_checkpoint_dir, cfg=cfg)
    cfg = SearchConfig(**{**LAYER, "budget": 2, "latency_table": "per-layer"})  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="through an agent"):
        search_run(tmp_path / "c", ckpt=bp_checkpoint_dir, cfg=cfg)


def test_cli_layer_space_without_a_table_exits_2(
    cli: Callable[..., Any], bp_checkpoint_dir: Path, tmp_path: Path
) -> None:
    res = cli("search", bp_checkpoint_dir, "--out", tmp_path / "s", "--space", "layer", "--no-progress")
    assert res.code == 2 and "needs --latency-table" in res.err and "Traceback" not in res.err


@pytest.mark.slow
def test_agent_per_layer_table_is_measured_once_cached_and_used(bp_checkpoint_dir: Path, tmp_path: Path) -> None:
    with start_local_agent(tmp_path / "agent") as agent:
        cache = tmp_path / "layer_latency.json"
        over = {
            **LAYER,
            "sparsity_levels": (0.25, 0.75),
            "algo": "structured",
            "budget": 4,
            "agent": agent.url,
            "agent_token_file": str(tmp_path / "agent" / "token"),
            "agent_inferences": 3,
            "profile_levels": ("f1500", "f600"),
            "latency_table": "per-layer",
            "latency_cache": str(cache),
        }
        out = search_run(tmp_path / "s", ckpt=bp_checkpoint_dir, cfg=SearchConfig(**over), artifact=False)  # type: ignore[arg-type]
        src = out.summary.latency_source
        assert src.startswith("measured per layer: agent http://127.0.0.1") and "emulated board rpi4" in src
        table = load_cost_table(cache)
        prov = table.provenance
        n_layers = len(table.layers)
        assert prov["emulated"] is True and prov["board_profile"] == "rpi4" and prov["levels"] == ["f1500", "f600"]
        assert prov["pattern_sets"] == 1 + n_layers and prov["windows"] == 2 * (2 + n_layers)  # base twice
        assert len(prov["noise_ms"]) == 2 and len(prov["raw_latency_ms"]) == n_layers
        for g in range(n_layers):  # monotone: a denser tensor never costs less, never below 0
            for k in range(2):
                assert table.latency_ms[g][0][k] >= table.latency_ms[g][1][k] >= 0.0
                assert table.latency_ms[g][0][k] >= prov["raw_latency_ms"][g][0][k]
        assert "host_load_per_core_before" in prov and prov["measured_at_utc"]
        assert all(x > 0 for x in table.fixed_ms) and all(p > 0 for p in table.power_w)
        assert all(table.latency_ms[g][-1] == (0.0, 0.0) for g in range(n_layers))  # the sparsest level: base
        before = cache.stat().st_mtime_ns
        resumed = search_run(tmp_path / "s", resume=True, budget=6, artifact=False)
        assert resumed.summary.evaluations == 6
        assert "(cached in" in resumed.summary.latency_source and cache.stat().st_mtime_ns == before
        summary = json.loads((tmp_path / "s" / "summary.json").read_text())
        assert summary  # the run finished through the run executor


def test_cli_layer_search_with_the_tuned_rl(cli: Callable[..., Any], bp_checkpoint_dir: Path, tmp_path: Path) -> None:
    layers = list(Checkpoint.load(bp_checkpoint_dir).bp_masks or {})
    save_table(tmp_path / "lat.json", _table(layers))
    out = tmp_path / "s"
    res = cli(
        "search", bp_checkpoint_dir, "--out", out, "--space", "layer", "--latency-table", tmp_path / "lat.json",
        "--sparsity", "0,0.25,0.5,0.75", "--candidates", "2", "--eval-batches", "1", "--deadline-ms", "1e6",
        "--runs-range", "0,1e9", "--acc-range", "0,1", "--algo", "rl", "--rl-tuned", "--budget", "6",
        "--no-artifact", "--no-progress", "--json",
    )  # fmt: skip
    assert res.code == 0, res.err
    summary = json.loads(res.out)
    assert summary["evaluations"] == 6 and summary["latency_source"] == "test: hand-made table"
    stored = json.loads((out / "search_config.json").read_text())["config"]
    assert stored["space"] == "layer" and stored["rl"]["policy"] == "ordinal" and stored["rl"]["batch"] == 5
