from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from testbed.cli.main import app

runner = CliRunner()


def _ok(args: list[str]) -> dict[str, Any]:
    res = runner.invoke(app, args)
    assert res.exit_code == 0, (res.output, res.exception)
    return json.loads(res.stdout) if "--json" in args else {}


def test_train_prune_export_run_from_the_command_line(tmp_path: Path) -> None:
    c0, c1, c2, art = tmp_path / "c0", tmp_path / "c1", tmp_path / "c2", tmp_path / "m.rt3"
    small = ["--max-steps", "8", "--no-progress", "--json"]
    dense = _ok(
        [
            "rt3",
            "train",
            "--out",
            str(c0),
            "--emsize",
            "32",
            "--nhid",
            "32",
            "--nlayers",
            "1",
            "--nhead",
            "2",
            "--epochs",
            "1",
            *small,
        ]
    )
    assert "proxy" in dense["data"] and 0 <= dense["dense"]["accuracy"] <= 1
    bp = _ok(["rt3", "prune", "bp", str(c0), "--out", str(c1), "--ratio", "0.5", "--row-block", "8", *small])
    assert abs(bp["density"] - 0.5) < 0.02
    pp = _ok(["rt3", "prune", "pp", str(c1), "--out", str(c2), "--levels", "0.25,0.75", "--freq-levels", "1,0", *small])
    sp = [s["sparsity"] for s in pp["pattern_sets"]]
    assert sp[0] < sp[1]
    _ok(["rt3", "export", str(c2), "--out", str(art), "--seq", "12", "--json"])
    info = _ok(["rt3", "info", str(art), "--json"])
    assert [s["freq_level"] for s in info["pattern_sets"]] == [1, 0]
    ran = _ok(["rt3", "run", str(art), "--backend", "ort", "--repeats", "2", "--seq", "10", "--json"])
    assert len(ran["pattern_sets"]) == 2 and all(r["latency_ms_p50"] > 0 for r in ran["pattern_sets"])


def test_bad_input_exits_2_with_one_line(tmp_path: Path) -> None:
    res = subprocess.run(
        [sys.executable, "-m", "testbed", "rt3", "info", str(tmp_path / "missing.rt3")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert res.returncode == 2
    assert res.stderr.strip().count("\n") == 0 and "no such artifact" in res.stderr


def test_pp_requires_a_bp_checkpoint(tmp_path: Path) -> None:
    c0 = tmp_path / "c0"
    _ok(
        [
            "rt3",
            "train",
            "--out",
            str(c0),
            "--emsize",
            "16",
            "--nhid",
            "16",
            "--nlayers",
            "1",
            "--nhead",
            "2",
            "--epochs",
            "1",
            "--max-steps",
            "2",
            "--no-progress",
        ]
    )
    res = runner.invoke(app, ["rt3", "prune", "pp", str(c0), "--out", str(tmp_path / "c1")])
    assert res.exit_code != 0 and "run `testbed rt3 prune bp` first" in str(res.exception)


@pytest.mark.slow
def test_prune_bp_with_the_proximal_lasso_empties_the_pruned_groups(tmp_path: Path) -> None:
    c0, c1 = tmp_path / "c0", tmp_path / "c1"
    small = ["--max-steps", "10", "--no-progress", "--json"]
    lm = ["--emsize", "32", "--nhid", "32", "--nlayers", "1", "--nhead", "2", "--epochs", "1"]
    _ok(["rt3", "train", "--out", str(c0), *lm, *small])
    args = ["rt3", "prune", "bp", str(c0), "--out", str(c1), "--ratio", "0.75", "--row-block", "8"]
    lasso = ["--lasso", "proximal", "--lambda", "1", "--lambda-max", "100", "--lam-schedule", "exp"]
    bp = _ok([*args, *lasso, "--lambda-ramp", "0.5", "--reweight", "prune-set", "--reweight-every", "2", *small])
    assert bp["norm_stats_before_prune"]["pruned_mass_fraction"] < 0.01
    c2 = tmp_path / "c2"
    res = runner.invoke(app, ["rt3", "prune", "bp", str(c0), "--out", str(c2), "--lasso", "l0", "--no-progress"])
    assert res.exit_code != 0 and "lasso 'l0'" in str(res.exception) and not c2.exists()
