"""The comparison's figure and table come from the curves it stored."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from testbed.search.compare import BUNDLED_ACCURACY_TABLE, compare_tables, main
from testbed.search.compare_report import curves, markdown_table
from testbed.search.layerspace import load_accuracy_table, opcount_cost_table


def test_table_rows_are_the_mean_and_sd_of_the_stored_curves() -> None:
    acc = load_accuracy_table(BUNDLED_ACCURACY_TABLE)
    out = compare_tables(opcount_cost_table(), acc, ["random", "structured"], [0, 1], budget=60)
    arr = curves(out, "random")
    assert arr.shape == (2, 60)
    table = markdown_table(out)
    head, rule, *rows = table.strip().splitlines()
    assert head.startswith("| algorithm | best @50 |") and rule.startswith("|---")
    first = [r["curve"][49] for r in out["runs"] if r["algo"] == "random"]
    mean = sum(first) / 2
    assert rows[0].startswith(f"| random | {mean:+.3f} ± ")
    assert [r.split("|")[1].strip() for r in rows] == ["random", "structured"]
    assert out["rl"]["policy"] == "ordinal"  # the tuned RL is the comparison's default


def test_python_m_compare_writes_figure_and_table_with_the_memory_term(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fig, tab, js = tmp_path / "f.png", tmp_path / "t.md", tmp_path / "c.json"
    args = ["--budget", "8", "--seeds", "0,1", "--algos", "structured,rl-lstm", "--memory-weight", "0.5"]
    assert main([*args, "--figure", str(fig), "--table", str(tab), "--out", str(js)]) == 0
    assert fig.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| rl-lstm |" in tab.read_text()
    data = json.loads(js.read_text())
    assert data["memory"]["weight"] == 0.5 and data["rl_variants"]["rl-lstm"]["policy"] == "lstm"
    assert "memory term weight 0.5" in data["source"]
    assert set(json.loads(capsys.readouterr().out)) == {"structured", "rl-lstm"}
