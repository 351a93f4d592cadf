"""The measured row-block table and ``row_block="auto"``: the choice follows the table, BP and PP resolve
"auto" to the same block, and the CLI records it. No timing assertions (the bundled table is data)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from devices.errors import BadInputError
from testbed.rt3.bp import BPConfig, hard_prune
from testbed.rt3.models import LMConfig, TransformerLM, prunable_names
from testbed.rt3.packing import PackedLinear
from testbed.rt3.pp import build_pattern_set, build_space, uniform_choices
from testbed.rt3.row_blocks import (
    ISSUE_TARGETS,
    RowBlockTable,
    model_fraction,
    pick_row_block,
    resolve_row_block,
)


def _table(tmp_path: Path, cells: dict[tuple[int, int, int], dict[float, float]]) -> RowBlockTable:
    """A table file of fractions {(out, in, block): {sparsity: fraction}}."""
    entries = [
        {
            "out_features": o,
            "in_features": i,
            "row_block": b,
            "sparsity": s,
            "speedup": f / (1 - s),
            "fraction_of_ideal": f,
        }
        for (o, i, b), fr in cells.items()
        for s, f in fr.items()
    ]
    blocks = sorted({b for _, _, b in cells})
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"bp_row_blocks": blocks, "entries": entries}))
    return RowBlockTable.load(path)


def test_bundled_table_covers_every_shape_block_and_sparsity() -> None:
    tab = RowBlockTable.load()
    assert tab.shapes == [(768, 768), (768, 3072), (3072, 768)]
    assert tab.row_blocks == [64, 128, 256, 512, 768, 3072]
    for o, i in tab.shapes:
        for b in tab.row_blocks:
            for s in (0.5, 0.75, 0.906):
                assert 0 < tab.fraction((o, i), b, s) <= 1.2
    for e in tab.entries:
        assert e.fraction_of_ideal == pytest.approx(e.speedup * (1 - e.sparsity), abs=2e-3)
    for key in ("host", "host_load_1min", "date_utc", "torch", "rounds"):
        assert key in tab.meta


def test_pick_is_the_smallest_block_that_reaches_every_target(tmp_path: Path) -> None:
    tab = _table(
        tmp_path,
        {
            (256, 64, 64): {0.75: 0.5, 0.9: 0.4},
            (256, 64, 128): {0.75: 0.82, 0.9: 0.55},  # 75 % reached, 90 % not
            (256, 64, 256): {0.75: 0.85, 0.9: 0.65},
        },
    )
    choice = pick_row_block([(256, 64)], ISSUE_TARGETS, tab)
    assert choice.row_block == 256 and choice.reached
    assert choice.fractions[128][0.9] == pytest.approx(0.55)
    easy = pick_row_block([(256, 64)], {0.75: 0.8}, tab)
    assert easy.row_block == 128 and easy.reached


def test_pick_falls_back_to_the_best_worst_ratio_when_no_block_reaches(tmp_path: Path) -> None:
    tab = _table(
        tmp_path,
        {
            (256, 64, 64): {0.75: 0.5, 0.9: 0.5},
            (256, 64, 128): {0.75: 0.7, 0.9: 0.3},
            (256, 64, 256): {0.75: 0.6, 0.9: 0.45},
        },
    )
    choice = pick_row_block([(256, 64)], ISSUE_TARGETS, tab)
    assert not choice.reached and choice.row_block == 256  # worst ratio 0.75 (at 90 %) beats 0.625 and 0.5


def test_model_fraction_weighs_layers_by_their_work_and_uses_stand_ins(tmp_path: Path) -> None:
    tab = _table(
        tmp_path,
        {
            (100, 100, 50): {0.75: 0.5},
            (100, 100, 100): {0.75: 0.9},
            (400, 100, 50): {0.75: 0.8},
            (400, 100, 100): {0.75: 0.8},
        },
    )
    # 100×100 (1 unit of work at 0.5) and 400×100 (4 units at 0.8): 5 / (1/0.5 + 4/0.8) = 5/7
    assert model_fraction(tab, [(100, 100), (400, 100)], 50, 0.75) == pytest.approx(5 / 7)
    # a 60×60 weight is judged by the 100×100 cells; a block covering it is its whole weight (100 there)
    assert tab.stand_in((60, 60)) == (100, 100)
    assert model_fraction(tab, [(60, 60)], 64, 0.75) == pytest.approx(0.9)
    assert model_fraction(tab, [(60, 60)], 50, 0.75) == pytest.approx(0.5)
    choice = pick_row_block([(60, 60)], {0.75: 0.8}, tab)
    assert choice.row_block == 100 and choice.stand_ins == {"60x60": "100x100"}


def test_malformed_tables_and_row_blocks_are_bad_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"entries": [{"out_features": 8}]}))
    with pytest.raises(BadInputError, match=r"entries\[0\]"):
        RowBlockTable.load(bad)
    with pytest.raises(BadInputError, match="cannot read"):
        RowBlockTable.load(tmp_path / "missing.json")
    with pytest.raises(BadInputError, match="'auto'"):
        resolve_row_block("tall", [(8, 8)])
    assert resolve_row_block(64, [(8, 8)]) == (64, None)
    with pytest.raises(BadInputError, match="row_block"):
        BPConfig(row_block="tall")


def _lm() -> TransformerLM:
    torch.manual_seed(0)
    return TransformerLM(LMConfig(300, 32, 48, 1, 2, 0.0))


def test_bp_and_pp_resolve_auto_to_the_tables_block() -> None:
    model = _lm()
    names = prunable_names(model)
    params = dict(model.named_parameters())
    expect = pick_row_block([tuple(params[n].shape) for n in names]).row_block  # type: ignore[misc]
    cfg = BPConfig(row_block="auto", ratio=0.5).resolved(model, names)
    assert cfg.row_block == expect and cfg.row_block_choice is not None
    assert cfg.row_block_choice["row_block"] == expect and cfg.to_dict()["row_block"] == expect
    auto = hard_prune(model, names, BPConfig(row_block="auto", ratio=0.5))
    fixed = hard_prune(model, names, BPConfig(row_block=expect, ratio=0.5))
    assert all(torch.equal(auto[n], fixed[n]) for n in names)
    assert build_space(model, auto, "auto", 8, (0.5,), 2).row_block == expect


def test_cli_prune_bp_auto_records_the_resolved_block(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from typer.testing import CliRunner

    from testbed.cli.main import app, run

    runner = CliRunner()
    c0, c1 = tmp_path / "c0", tmp_path / "c1"
    small = ["--max-steps", "1", "--no-progress", "--json"]
    args = ["rt3", "train", "--out", str(c0), "--emsize", "16", "--nhid", "16", "--nlayers", "1", "--nhead", "2"]
    res = runner.invoke(app, [*args, "--epochs", "1", *small])
    assert res.exit_code == 0, res.output
    res = runner.invoke(app, ["rt3", "prune", "bp", str(c0), "--out", str(c1), "--row-block", "auto", *small])
    assert res.exit_code == 0, res.output
    out: dict[str, Any] = json.loads(res.stdout)
    meta = json.loads((c1 / "checkpoint.json").read_text())
    assert isinstance(meta["bp"]["row_block"], int) and meta["bp"]["row_block"] == out["row_block"]
    assert meta["bp"]["row_block_choice"]["row_block"] == out["row_block"]
    with pytest.raises(SystemExit) as exc:
        run(["rt3", "prune", "bp", str(c0), "--out", str(tmp_path / "c2"), "--row-block", "x"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.strip().count("\n") == 0 and "--row-block" in err
    assert not (tmp_path / "c2").exists()


@settings(max_examples=30, deadline=None)
@given(
    out=st.integers(8, 200),
    inn=st.integers(8, 64),
    row_block=st.sampled_from([8, 24, 64, 96, 512]),  # ≥ out: the whole weight; others leave a short last block
    ratio=st.floats(0.0, 0.9),
    level=st.sampled_from([0.0, 0.5, 0.75]),
    tokens=st.sampled_from([1, 8, 33]),
    seed=st.integers(0, 2**16),
)
def test_bp_pp_masks_at_any_row_block_pack_exactly(
    out: int, inn: int, row_block: int, ratio: float, level: float, tokens: int, seed: int
) -> None:
    """BP at tall or non-dividing row blocks with PP on top: packed == F.linear(x, W ⊙ M, b)."""
    torch.manual_seed(seed)
    lin = torch.nn.Linear(inn, out)
    model = torch.nn.Sequential(lin)
    bp = hard_prune(model, ["0.weight"], BPConfig(row_block=row_block, ratio=ratio))
    space = build_space(model, bp, row_block, 4, (level,), 2, seed=seed)
    mask = build_pattern_set(model, bp, space, uniform_choices(space, 0)).masks["0.weight"]
    layer = PackedLinear(lin.weight, mask, lin.bias)
    x = torch.randn(tokens, inn)
    with torch.inference_mode():
        assert torch.allclose(layer(x), F.linear(x, lin.weight * mask, lin.bias), atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_table_measurement_writes_a_table_the_picker_reads(tmp_path: Path) -> None:
    from testbed.bench.row_block_table import main

    out = tmp_path / "t.json"
    assert main(["--quick", "--out", str(out)]) == 0
    tab = RowBlockTable.load(out)
    assert tab.row_blocks == [128, 256] and tab.shapes == [(768, 768), (768, 3072), (3072, 768)]
    assert len(tab.entries) == 2 * 3 * 3 and all(e.speedup > 0 for e in tab.entries)
    assert pick_row_block([(3072, 768)], table=tab).row_block in (128, 256)
