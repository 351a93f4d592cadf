"""Experiment files and profile tables: validation errors name the file, the line or the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from devices.errors import BadInputError, ParseError
from testbed.experiment.config import load_experiment
from testbed.paths import profile_table_path
from traces.profile import load_profile_table, parse_profile

GOOD = """
name = "t"
[requests]
period_ms = 200.0
deadline_ms = 115.0
[battery]
model = "bucket"
energy_j = 100.0
"""


def test_good_file_defaults(tmp_path: Path) -> None:
    p = tmp_path / "e.toml"
    p.write_text(GOOD)
    cfg = load_experiment(p)
    assert cfg.mode == "sim"
    assert cfg.strategies == ["dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle"]
    assert cfg.policy.thresholds == [0.5, 0.2]


@pytest.mark.parametrize(
    ("edit", "field"),
    [
        (("period_ms = 200.0", "period_ms = -1"), "requests.period_ms"),
        (("energy_j = 100.0", "energy_j = 0"), "battery.energy_j"),
        (('model = "bucket"', 'model = "lead-acid"'), "battery.model"),
        (('name = "t"', 'name = "t"\nstrategies = ["rt4"]'), "strategies"),
        (('name = "t"', 'name = "t"\nbogus = 1'), "bogus"),
        (("period_ms = 200.0", 'period_ms = 200.0\ntrace = "r.csv"'), "requests"),
        (('name = "t"', 'name = "t"\nmode = "hil"'), "(top level)"),
        (("energy_j = 100.0", "energy_j = 100.0\n[policy]\nthresholds = [0.2, 0.5]"), "policy"),
    ],
)
def test_bad_field_is_named(tmp_path: Path, edit: tuple[str, str], field: str) -> None:
    p = tmp_path / "e.toml"
    p.write_text(GOOD.replace(*edit))
    with pytest.raises(ParseError) as err:
        load_experiment(p)
    msg = str(err.value)
    assert msg.startswith(str(p)) and f": {field}" in msg
    assert "\n" not in msg


def test_bad_toml_and_missing_file(tmp_path: Path) -> None:
    p = tmp_path / "e.toml"
    p.write_text("name = \n")
    with pytest.raises(ParseError, match="not valid TOML"):
        load_experiment(p)
    with pytest.raises(BadInputError, match="no such experiment file"):
        load_experiment(tmp_path / "missing.toml")


def test_bundled_rpi4_profile_is_complete_and_labelled() -> None:
    t = load_profile_table(profile_table_path("rpi4"))
    assert t.levels == ["f1500", "f1000", "f750", "f600"]
    assert t.pattern_sets[0] == "dense"
    assert "model" in t.meta["source"]
    for ps in t.pattern_sets:
        lat = [t.get(ps, lv).latency_p50_ms for lv in t.levels]
        assert lat == sorted(lat)  # slower at lower frequency
    for lv in t.levels:
        e = [t.get(ps, lv).energy_per_inference_j for ps in t.pattern_sets]
        assert e == sorted(e, reverse=True)  # sparser is cheaper
    # the text round-trips
    again = parse_profile(t.to_csv())
    assert again.rows == t.rows


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ("dense,f1500,1500000,0,0.913,88,", "dense,f1500,1500000,0,0.913,abc,", "latency_p50_ms='abc'"),
        ("dense,f1500,1500000,0,0.913,88,91.52", "dense,f1500,1500000,0,0.913,88,80", "p50 ≤ p90"),
        ("dense,f1500,1500000,0,0.913,", "dense,f1500,1500000,0,1.913,", "accuracy"),
    ],
)
def test_profile_errors_name_line(old: str, new: str, problem: str) -> None:
    text = load_profile_table(profile_table_path("rpi4")).to_csv()
    assert old in text
    with pytest.raises(ParseError) as err:
        parse_profile(text.replace(old, new, 1), "p.csv")
    assert str(err.value).startswith("p.csv:3:")
    assert problem in str(err.value)


def test_profile_with_a_hole_is_rejected() -> None:
    lines = load_profile_table(profile_table_path("rpi4")).to_csv().splitlines()
    with pytest.raises(ParseError, match="has no row for level"):
        parse_profile("\n".join(lines[:4] + lines[5:]), "p.csv")


def test_paths_are_resolved_once_when_the_file_is_loaded(tmp_path: Path) -> None:
    import json

    from testbed.paths import data_dir

    (tmp_path / "sub").mkdir()
    p = tmp_path / "sub" / "e.toml"
    body = GOOD.replace('model = "bucket"\nenergy_j = 100.0', 'model = "ecm"\ncell = "nmc-18650"')
    p.write_text(body + '[policy]\nkind = "trace"\ntrace = "../dvfs.csv"\n')
    cfg = load_experiment(p)
    assert cfg.profile.table == str(data_dir() / "profile-rpi4.csv")  # the bundled name, resolved
    assert cfg.battery.cell == str(data_dir() / "cell-nmc-18650.toml")
    assert cfg.policy.trace == str(tmp_path / "dvfs.csv")  # relative to the experiment file, not the cwd
    recorded = json.loads(cfg.model_dump_json())  # what a run's manifest records
    assert recorded["profile"]["table"] == cfg.profile.table and recorded["policy"]["trace"] == cfg.policy.trace


def test_an_unknown_bundled_name_is_named_at_load(tmp_path: Path) -> None:
    p = tmp_path / "e.toml"
    p.write_text(GOOD + '[profile]\ntable = "rpi9"\n')
    with pytest.raises(ParseError) as err:
        load_experiment(p)
    msg = str(err.value)
    assert msg.startswith(str(p)) and ": profile.table: no profile table 'rpi9'" in msg and "rpi4" in msg


def test_the_profile_format_reads_files_only(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such profile table"):
        load_profile_table("rpi4")  # a bundled name is the testbed's business (testbed.paths)
