"""Figures and tables from real (short, simulated) runs: files, sizes, numbers, and bad input."""

from __future__ import annotations

import json
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
        assert row.life_h == pytest.approx(res[row.strategy]["life_h"])
        assert row.life_vs_dense_max == pytest.approx(res[row.strategy]["life_h"] / res["dense-max"]["life_h"])


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
