"""Figures and tables from real (short, simulated) runs: files, sizes, numbers, and bad input."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis import figures
from analysis.report import build_report
from analysis.runs import load_run
from analysis.style import DOUBLE_COLUMN_IN, SINGLE_COLUMN_IN, parse_formats
from analysis.tables import battery_life_table, to_latex, to_markdown
from devices.errors import BadInputError
from testbed.demo import experiment_toml

PROFILE = Path(__file__).resolve().parents[2] / "testbed" / "data" / "profile-rpi4.csv"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    from testbed.cli.main import run

    base = tmp_path_factory.mktemp("runs")
    out = []
    for name in ("small-bucket",):
        toml = base / f"{name}.toml"
        toml.write_text(experiment_toml(name, PROFILE, 115.0, "bucket"))  # the demo's experiment, 600 J
        with pytest.raises(SystemExit) as e:
            run(["run", str(toml), "--out", str(base / name)])
        assert e.value.code == 0
        out.append(base / name)
    return out


def test_report_writes_every_figure_and_table(runs, tmp_path):
    rep = build_report(runs, tmp_path / "rep", ["pdf", "png", "svg"])
    expected = {"battery_life", "latency_vs_frequency", "accuracy_vs_sparsity", "profile_heatmap"}
    assert expected <= set(rep.figures)
    assert any(k.startswith("soc_voltage-") for k in rep.figures)
    assert any(k.startswith("power_trace-") for k in rep.figures)
    for paths in rep.figures.values():
        kinds = {p.suffix for p in paths}
        assert kinds == {".pdf", ".png", ".svg"}
        pdf = next(p for p in paths if p.suffix == ".pdf")
        assert pdf.read_bytes().startswith(b"%PDF")
        png = next(p for p in paths if p.suffix == ".png")
        width_in = Image.open(png).size[0] / 300.0  # saved at 300 dpi, tight bounding box
        assert width_in <= DOUBLE_COLUMN_IN + 0.05
    single = Image.open(rep.figures["latency_vs_frequency"][1]).size[0] / 300.0
    assert single <= SINGLE_COLUMN_IN + 0.05
    assert "search_reward" in rep.skipped
    index = (tmp_path / "rep" / "report.md").read_text()
    assert "figures/battery_life.png" in index and "| strategy |" in index


def test_battery_life_table_ratios_match_the_results(runs):
    run = load_run(runs[0])
    try:
        df = battery_life_table([run])
        res = run.results
    finally:
        run.close()
    assert list(df["strategy"]) == ["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]
    for row in df.itertuples():
        assert row.life_h == pytest.approx(res[row.strategy].life_h)
        assert row.life_vs_dense_max == pytest.approx(res[row.strategy].life_h / res["dense-max"].life_h)


def test_markdown_and_latex_writers():
    df = pd.DataFrame({"strategy": ["rt3", "dense_max"], "life_h": [1.23456, None], "ok": [True, False]})
    md = to_markdown(df, digits=2).splitlines()
    assert md[0] == "| strategy | life_h | ok |" and md[2] == "| rt3 | 1.23 | yes |" and "–" in md[3]
    tex = to_latex(df, "Life & death 50%", "tab:x")
    assert r"dense\_max" in tex and r"Life \& death 50\%" in tex and r"\toprule" in tex


def test_search_reward_plots_best_so_far():
    log = pd.DataFrame(
        {"algo": ["rl"] * 4 + ["random"] * 4, "seed": [0, 0, 1, 1] * 2, "evaluation": [1, 2] * 4,
         "reward": [1.0, 0.5, 2.0, 3.0, 0.2, 0.1, 0.4, 0.9]}
    )  # fmt: skip
    fig = figures.search_reward(log)
    lines = {ln.get_label().split(" ")[0]: ln.get_ydata() for ln in fig.axes[0].get_lines()}
    assert np.allclose(lines["rl"], [1.5, 2.0])  # mean over seeds of max-so-far: (1,1) and (2,3)
    assert np.allclose(lines["random"], [0.3, 0.55])  # (0.2, 0.2) and (0.4, 0.9)


def test_bad_input(tmp_path):
    with pytest.raises(BadInputError, match="not a run"):
        build_report([tmp_path], tmp_path / "out")
    with pytest.raises(BadInputError, match="unknown format"):
        parse_formats("pdf,gif")
    bogus = tmp_path / "run.sqlite"
    bogus.write_text("not sqlite")
    with pytest.raises(BadInputError, match="not a run store"):
        load_run(tmp_path)


def test_cli_report_exit_codes(runs, tmp_path, cli):
    r = cli("report", runs[0], "--out", tmp_path / "rep", "--format", "png", "--json")
    assert r.code == 0, r.err
    assert "battery_life" in json.loads(r.out)["figures"]
    r = cli("report", tmp_path, "--out", tmp_path / "x")
    assert r.code == 2 and r.err.startswith("error: ") and "not a run" in r.err


def _index_files(index: dict) -> set[str]:
    return {f for kind in ("figures", "tables") for entry in index[kind].values() for f in entry["files"]}


def test_report_json_indexes_every_figure_and_table_with_its_runs(runs, tmp_path):
    from testbed.runstore.reader import RunReader

    out = tmp_path / "rep"
    rep = build_report(runs, out, ["png"])
    index = json.loads((out / "report.json").read_text())
    on_disk = {str(p.relative_to(out)) for d in ("figures", "tables") for p in (out / d).iterdir()}
    assert _index_files(index) == on_disk  # every written file is named, every named file exists
    assert set(index["figures"]) == set(rep.figures) and set(index["tables"]) == set(rep.tables)
    with RunReader.open(runs[0]) as reader:
        expected = {"run_id": reader.run_id, "content_sha256": reader.content_sha256, "fidelity": "simulation"}
    assert [{k: r[k] for k in expected} for r in index["runs"]] == [expected]
    for kind in ("figures", "tables"):
        for name, entry in index[kind].items():
            assert entry["runs"], f"{kind} {name} names no run"
            assert all({k: r[k] for k in expected} == expected for r in entry["runs"])
    profile_inputs = index["figures"]["profile_heatmap"]["inputs"]
    assert [i["path"] for i in profile_inputs] == [str(PROFILE)]
    assert profile_inputs[0]["sha256"] == hashlib.sha256(PROFILE.read_bytes()).hexdigest()
    assert expected["content_sha256"][:16] in (out / "report.md").read_text()


def test_report_json_checksum_changes_when_the_run_changes(runs, tmp_path):
    run = shutil.copytree(runs[0], tmp_path / "run")
    build_report([run], tmp_path / "a", ["png"])
    conn = sqlite3.connect(run / "run.sqlite")
    conn.execute("UPDATE power_samples SET power_w = power_w * 1.5 WHERE rowid = 1")
    conn.commit()
    conn.close()
    build_report([run], tmp_path / "b", ["png"])
    a, b = (json.loads((tmp_path / d / "report.json").read_text()) for d in ("a", "b"))
    assert a["runs"][0]["run_id"] == b["runs"][0]["run_id"]
    assert a["runs"][0]["content_sha256"] != b["runs"][0]["content_sha256"]
    assert (
        a["figures"]["battery_life"]["runs"][0]["content_sha256"]
        != b["figures"]["battery_life"]["runs"][0]["content_sha256"]
    )


def test_cli_report_takes_a_bundled_profile_name(runs, tmp_path, cli):
    r = cli("report", runs[0], "--out", tmp_path / "rep", "--format", "png", "--profile", "rpi4", "--json")
    assert r.code == 0, r.err
    index = json.loads((tmp_path / "rep" / "report.json").read_text())
    heatmap = index["figures"]["profile_heatmap"]
    assert heatmap["runs"] == [] and [i["path"] for i in heatmap["inputs"]] == [str(PROFILE)]
    r = cli("report", runs[0], "--out", tmp_path / "x", "--profile", "no-such-board")
    assert r.code == 2 and "no profile table 'no-such-board'" in r.err


def test_a_search_run_as_search_log_is_indexed_by_its_run_id(runs, tmp_path):
    from testbed.runstore.manifest import base_manifest
    from testbed.runstore.reader import RunReader, SearchSummary
    from testbed.runstore.store import RunStore

    with RunStore.create(tmp_path / "search", base_manifest({}, "search", 0)) as store:
        for n, reward in enumerate([0.5, 0.7, 0.6]):
            store.log("search:rl", "candidate", {"evaluation": n, "reward": reward, "memo_hit": False})
        store.set_result("rl", SearchSummary("rl", 0.7, {}, [1], [], True, "test", 3, 3, 0, 0.1, "budget"))
    rep = build_report(runs, tmp_path / "rep", ["png"], search_log=tmp_path / "search")
    assert "search_reward" in rep.figures
    entry = json.loads((tmp_path / "rep" / "report.json").read_text())["figures"]["search_reward"]
    with RunReader.open(tmp_path / "search") as reader:
        assert [(r["run_id"], r["content_sha256"], r["fidelity"]) for r in entry["runs"]] == [
            (reader.run_id, reader.content_sha256, "search")
        ]
    with pytest.raises(BadInputError, match="a search run, not an experiment run"):
        load_run(tmp_path / "search")


def test_report_from_a_modelled_profile_says_so_first_and_gives_the_headline(runs, tmp_path):
    from testbed.cli.main import run

    with pytest.raises(SystemExit) as e:
        run(["report", str(runs[0]), "--out", str(tmp_path / "rep"), "--format", "png"])
    assert e.value.code == 0
    lines = (tmp_path / "rep" / "report.md").read_text().splitlines()
    assert "modelled profile" in lines[0]
    assert lines[2].startswith("rt3 lasted ") and "as long as dense-max" in lines[2]
    assert any(line.startswith("oracle: ") for line in lines[:6])
    index = json.loads((tmp_path / "rep" / "report.json").read_text())
    assert index["headline"] == lines[2] and "modelled" in index["warning"]
    assert "life_vs_accuracy" in index["figures"]
    tex = (tmp_path / "rep" / "tables" / "battery_life.tex").read_text()
    assert "end\\_reason" not in tex and "life\\_vs\\_dense\\_max" in tex  # narrow LaTeX, full CSV
    assert "end_reason" in (tmp_path / "rep" / "tables" / "battery_life.csv").read_text()
