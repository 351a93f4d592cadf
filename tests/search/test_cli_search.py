from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from testbed.rt3.artifact import Artifact
from testbed.runstore import RunStore
from testbed.runstore.executor import FINISHED_MANIFEST
from testbed.runstore.results import SearchSummary

SMALL = ["--sparsity", "0,0.25,0.5,0.75", "--candidates", "2", "--eval-batches", "1", "--no-progress", "--json"]


def _json(res: Any) -> dict[str, Any]:
    assert res.code == 0, res.err
    out: dict[str, Any] = json.loads(res.out)
    return out


def test_search_writes_log_and_artifact_then_resumes(
    cli: Callable[..., Any], bp_checkpoint_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "s"
    args = ["search", bp_checkpoint_dir, "--out", out, "--algo", "random", "--deadline-ms", "0.7", *SMALL]
    first = _json(cli(*args, "--budget", "4"))
    assert first["evaluations"] == 4 and first["latency_source"].startswith(
        "predicted: op-count (RT3), reference counting"
    )
    assert [lv["level"] for lv in first["levels"]] == ["1.4GHz", "1GHz", "0.8GHz"]
    art = Artifact.open(out / "best.rt3")
    assert [s["freq_level"] for s in art.pattern_sets] == [0, 1, 2]
    assert [s["accuracy"] for s in art.pattern_sets] == [lv["accuracy"] for lv in first["levels"]]
    assert art.pattern_sets[0]["latency_source"].startswith("predicted: op-count (RT3), reference counting")
    resumed = _json(
        cli("search", bp_checkpoint_dir, "--out", out, "--resume", "--budget", "7", "--no-artifact", "--json")
    )
    assert resumed["evaluations"] == 7
    with RunStore.open(out) as store:
        rows = [json.loads(r[3]) for r in store.rows("log")]
        assert store.manifest()["latency_source"].startswith("predicted: op-count (RT3), reference counting")
        assert "search:random" in store.results()
        assert set(FINISHED_MANIFEST) <= set(store.manifest())  # the same keys as sim and hil runs
        assert store.results()["search:random"] == SearchSummary.from_dict(json.loads((out / "best.json").read_text()))
    assert json.loads((out / "summary.json").read_text())["search:random"]["evaluations"] == 7
    assert sum(not r["memo_hit"] for r in rows) == 7
    assert cli(*args).code == 2  # the directory holds a search already


def test_search_with_a_profile_table(cli: Callable[..., Any], bp_checkpoint_dir: Path, tmp_path: Path) -> None:
    res = _json(
        cli(
            "search", bp_checkpoint_dir, "--out", tmp_path / "p", "--algo", "tpe", "--budget", "3",
            "--profile", "rpi4", "--levels", "f1500,f1000,f600", "--deadline-ms", "115,115,115",
            "--no-artifact", *SMALL,
        )
    )  # fmt: skip
    assert res["latency_source"].startswith("profile:")
    assert [lv["level"] for lv in res["levels"]] == ["f1500", "f1000", "f600"]


def test_bad_input_exits_2(cli: Callable[..., Any], bp_checkpoint_dir: Path, tmp_path: Path) -> None:
    bad = [
        ["--algo", "sa"],
        ["--deadline-ms", "1,2"],
        ["--runs-range", "5,1"],
        ["--freq-ghz", "0.8,1.4", "--volt", "1,1"],
        ["--resume"],
    ]
    for extra in bad:
        res = cli("search", bp_checkpoint_dir, "--out", tmp_path / "x", "--budget", "2", *SMALL, *extra)
        assert res.code == 2, (extra, res.err)
        assert res.err.startswith("error:") and len(res.err.strip().splitlines()) == 1
