"""The layer-sparsity space: latency is the sum of its layers, deadlines bind, the structured baseline, tables."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devices.errors import BadInputError, ParseError
from testbed.rt3.opcount import RT3_LM, opcount_latency_ms
from testbed.rt3.pp import RT3_LEVELS
from testbed.search.algorithms import SearcherOptions, make_searcher, searcher_names
from testbed.search.compare import BUNDLED_ACCURACY_TABLE, compare_tables
from testbed.search.layerspace import (
    RT3_DEADLINES_MS,
    LayerAccuracyTable,
    LayerCostTable,
    TableEvaluator,
    load_accuracy_table,
    load_cost_table,
    opcount_cost_table,
    save_table,
)
from testbed.search.problem import Problem
from testbed.search.runner import run_search
from testbed.search.signal import spearman
from testbed.search.structured import StructuredSearch


def _acc_table(n_layers: int, levels: tuple[float, ...], drops: list[list[float]] | None = None) -> LayerAccuracyTable:
    rows = drops or [[0.001 * i * (g + 1) for i in range(len(levels))] for g in range(n_layers)]
    return LayerAccuracyTable(
        tuple(f"l{g}" for g in range(n_layers)), levels, 0.9, tuple(tuple(r) for r in rows), "test table"
    )


def test_per_tensor_opcount_latencies_sum_to_the_whole_model() -> None:
    table = opcount_cost_table()
    acc = _acc_table(len(table.layers), RT3_LEVELS)
    ev = TableEvaluator(table, acc, RT3_DEADLINES_MS)
    g = len(table.layers)
    per_layer = [3, 5, 9, 0, 2, 7, 7, 1, 4, 6]
    cand = tuple(per_layer) * 3
    res, hit = ev.evaluate(cand)
    assert not hit
    for k, f in enumerate((1.4, 1.0, 0.8)):
        want = opcount_latency_ms(RT3_LM, [RT3_LEVELS[i] for i in per_layer], f)
        assert res.latency_ms[k] == pytest.approx(want, rel=1e-12)
    assert len(ev.space.decisions) == 3 * g
    assert ev.evaluate(cand)[1]  # memo hit


def test_rt3_deadlines_bind_dense_fails_and_the_layers_trade_against_each_other() -> None:
    table = opcount_cost_table()
    ev = TableEvaluator(table, _acc_table(10, RT3_LEVELS), RT3_DEADLINES_MS)
    dense, _ = ev.evaluate((0,) * 30)
    assert not any(dense.terms.deadline_met) and dense.terms.accuracy_term == -1.0
    sparse, _ = ev.evaluate((9,) * 30)
    assert all(sparse.terms.deadline_met)
    # embedding + decoder carry most ops: the layers alone at 0.99 cannot meet 115 ms at 1.4 GHz
    layers_only = (0, 9, 9, 9, 9, 9, 9, 9, 9, 0) * 3
    assert not ev.evaluate(layers_only)[0].terms.deadline_met[0]


def test_structured_tries_every_triple_then_improves_greedily() -> None:
    levels = (0.0, 0.25, 0.5, 0.75)
    # two layers, two frequency levels; layer 0 is cheap to prune, layer 1 costly to prune but slow
    lat = (
        ((1.0, 2.0), (0.8, 1.6), (0.6, 1.2), (0.4, 0.8)),
        ((4.0, 8.0), (3.0, 6.0), (2.0, 4.0), (1.0, 2.0)),
    )
    cost = LayerCostTable(("a", "b"), levels, ("hi", "lo"), lat, (0.0, 0.0), (2.0, 1.0), "test")
    acc = _acc_table(2, levels, [[0.0, 0.001, 0.002, 0.003], [0.0, 0.01, 0.05, 0.2]])
    ev = TableEvaluator(cost, acc, (4.0, 6.0))
    s = StructuredSearch(ev.space, seed=0)
    seeds = ev.space.structured_seeds()
    assert len(seeds) == 6  # C(4, 2) increasing pairs, each layer of a level at its level
    proposed = []
    for _ in range(40):
        c = s.ask()
        proposed.append(c)
        s.tell(c, ev.evaluate(c)[0].reward)
    assert proposed[:6] == seeds
    best_seed = max(ev.evaluate(c)[0].reward for c in seeds)
    assert s.best_reward > best_seed
    # resume: a copy from the state proposes what the original proposes
    twin = StructuredSearch(ev.space, seed=0)
    twin.load_state_dict(s.state_dict())
    for _ in range(5):
        a, b = s.ask(), twin.ask()
        assert a == b
        r = ev.evaluate(a)[0].reward
        s.tell(a, r)
        twin.tell(b, r)


def test_structured_is_registered_and_runs_through_the_runner() -> None:
    assert "structured" in searcher_names()
    cost = opcount_cost_table()
    ev = TableEvaluator(cost, load_accuracy_table(BUNDLED_ACCURACY_TABLE), RT3_DEADLINES_MS)
    searcher = make_searcher("structured", ev.space, SearcherOptions(seed=0))
    res = run_search(searcher, ev, 130)
    assert res.evaluations == 130 and res.best.terms.all_deadlines_met


def test_compare_tables_reports_every_algorithm_and_seed() -> None:
    acc = load_accuracy_table(BUNDLED_ACCURACY_TABLE)
    out = compare_tables(opcount_cost_table(), acc, ["random", "structured"], [0, 1], budget=20)
    assert set(out["summary"]) == {"random", "structured"}
    assert len(out["runs"]) == 4 and all(len(r["curve"]) == 20 for r in out["runs"])
    assert out["space"]["decisions"] == 30
    assert "op-count" in out["source"] and "proxy" in out["source"]


def test_tables_round_trip_and_bad_files_are_named(tmp_path: Path) -> None:
    cost = opcount_cost_table()
    save_table(tmp_path / "c.json", cost)
    assert load_cost_table(tmp_path / "c.json") == cost
    acc = _acc_table(10, RT3_LEVELS)
    save_table(tmp_path / "a.json", acc)
    assert load_accuracy_table(tmp_path / "a.json") == acc
    with pytest.raises(ParseError, match=r"c\.json.*accuracy table"):
        load_accuracy_table(tmp_path / "c.json")
    (tmp_path / "bad.json").write_text("{nope")
    with pytest.raises(ParseError, match=r"bad\.json:1"):
        load_cost_table(tmp_path / "bad.json")
    with pytest.raises(BadInputError, match="shape"):
        LayerCostTable(("a",), (0.0,), ("hi",), (((1.0, 2.0),),), (0.0,), (1.0,), "x")
    data = json.loads((tmp_path / "a.json").read_text())
    assert data["kind"] == "accuracy"


def test_the_bundled_accuracy_table_matches_the_op_count_layers() -> None:
    acc = load_accuracy_table(BUNDLED_ACCURACY_TABLE)
    assert len(acc.layers) == len(opcount_cost_table().layers)
    assert acc.layers[0] == "encoder.weight" and acc.layers[-1] == "decoder.weight"
    assert "fortune" in acc.source


def test_spearman_by_hand() -> None:
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ranks with a tie: a = [1, 2.5, 2.5, 4], b = [1, 2, 3, 4] → Pearson of ranks
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)
    with pytest.raises(BadInputError):
        spearman([1], [1])


def test_python_m_compare_runs_the_layer_problem_by_default(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from testbed.search.compare import main

    out = tmp_path / "c.json"
    assert main(["--budget", "12", "--seeds", "0", "--algos", "structured,random", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["space"]["kind"].startswith("layer") and data["deadlines_ms"] == list(RT3_DEADLINES_MS)
    assert set(json.loads(capsys.readouterr().out)) == {"structured", "random"}
    assert main(["--accuracy-table", str(tmp_path / "missing.json"), "--budget", "5", "--seeds", "0"]) == 2


def test_structured_on_the_pattern_space_tries_every_assignment_with_patterns_any(problem: Problem) -> None:
    space = problem.space
    seeds = space.structured_seeds()
    assert len(seeds) == len(space.assignments)
    assert all(space.choices(c)[0][layer].allowed is None for c in seeds[:2] for layer in space.layers)
    s = StructuredSearch(space)
    res = run_search(s, problem.evaluator, len(seeds) + 2)
    assert res.evaluations == len(seeds) + 2
