"""The bundled example experiments: listed, every key commented, loadable, copied without clobbering."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import tomllib

from testbed.examples import EXAMPLES_DIR, copy_example, list_examples
from testbed.experiment.config import load_experiment
from tests.conftest import CliResult


def test_the_three_examples_are_listed(cli: Callable[..., CliResult]) -> None:
    names = {e.name: e for e in list_examples()}
    assert {"pi4-um25c-hil", "replayed-dvfs-trace", "governor-policy"} <= set(names)
    assert names["pi4-um25c-hil"].mode == "hil" and names["replayed-dvfs-trace"].companions
    res = cli("examples", "list", "--json")
    assert res.code == 0 and {e["name"] for e in json.loads(res.out)} >= set(names)
    text = cli("examples", "list").out
    assert all(n in text for n in names) and "testbed examples copy" in text


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.toml")), ids=lambda p: p.stem)
def test_every_key_is_commented_and_the_example_loads(path: Path, tmp_path: Path) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    keys = [ln for ln in lines if re.match(r"^[a-z_0-9]+\s*=", ln)]
    assert keys and all("#" in ln for ln in keys), [ln for ln in keys if "#" not in ln]
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if data["mode"] == "hil":  # names files the user makes on the way (token, profile, model)
        for name in ("agent-token", "profile.csv", "model.rt3"):
            (tmp_path / name).write_text("x")
        copy_example(path.stem, tmp_path, force=True)
        cfg = load_experiment(tmp_path / path.name)
    else:
        cfg = load_experiment(path)
    assert cfg.name == data["name"] and cfg.policy.kind in ("soc", "trace", "governor")


def test_copy_refuses_to_overwrite(tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    res = cli("examples", "copy", "replayed-dvfs-trace", "--out", tmp_path / "ex")
    assert res.code == 0, res.err
    assert (tmp_path / "ex" / "replayed-dvfs-trace.toml").is_file()
    assert (tmp_path / "ex" / "dvfs-rpi4-throttling.synthetic.csv").is_file()
    (tmp_path / "ex" / "replayed-dvfs-trace.toml").write_text("mine")
    again = cli("examples", "copy", "replayed-dvfs-trace", "--out", tmp_path / "ex")
    assert again.code == 2 and "already exists" in again.err
    assert (tmp_path / "ex" / "replayed-dvfs-trace.toml").read_text() == "mine"
    bad = cli("examples", "show", "nosuch")
    assert bad.code == 2 and "governor-policy" in bad.err


@pytest.mark.slow
@pytest.mark.parametrize("name", ["replayed-dvfs-trace", "governor-policy"])
def test_sim_examples_run(name: str, tmp_path: Path, cli: Callable[..., CliResult]) -> None:
    res = cli("run", EXAMPLES_DIR / f"{name}.toml", "--out", tmp_path / "run", "--json")
    assert res.code == 0, res.err
    assert json.loads(res.out)["results"]
