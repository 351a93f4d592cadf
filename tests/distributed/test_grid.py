"""The grid of a sweep: ``--vary`` parsing, the Cartesian product with seeds, and validation before anything runs."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from devices.errors import BadInputError
from testbed.distributed.grid import build_grid, get_dotted, parse_scalar, parse_vary, set_dotted

EXP = """
name = "grid"
seed = 5
strategies = ["dense-max", "rt3"]
[requests]
period_ms = 200.0
deadline_ms = 115.0
[battery]
model = "bucket"
energy_j = 500.0
"""


@pytest.fixture
def exp(tmp_path: Path) -> Path:
    p = tmp_path / "exp.toml"
    p.write_text(EXP)
    return p


def test_values_are_toml_scalars() -> None:
    assert parse_vary("requests.period_ms=100,200.5").values == (100, 200.5)
    assert parse_vary("battery.cell=nmc-18650,phone-lco").values == ("nmc-18650", "phone-lco")
    assert parse_vary("hil.compress=true,false").values == (True, False)
    assert parse_vary('name="a b",c').values == ("a b", "c")


@given(st.one_of(st.integers(-(10**9), 10**9), st.floats(allow_nan=False, allow_infinity=False), st.booleans()))
def test_scalar_round_trip(value: int | float | bool) -> None:
    text = str(value).lower() if isinstance(value, bool) else repr(value)
    assert parse_scalar(text) == value


@given(st.text(alphabet=st.characters(blacklist_characters=",", blacklist_categories=["Cs"]), min_size=1))
def test_any_text_parses_to_a_scalar(text: str) -> None:
    """Whatever the user types, a value is a scalar or a one-line error — never a traceback."""
    try:
        parsed = parse_vary(f"k={text}")
    except BadInputError as exc:
        assert "\n" not in str(exc)
    else:
        assert len(parsed.values) == 1


@pytest.mark.parametrize(
    ("option", "fragment"),
    [("requests.period_ms", "expected KEY=V1"), ("9x=1", "not a dotted key"), ("a.b=1,,2", "empty value"),
     ("a.b=1,1", "listed twice")],
)  # fmt: skip
def test_bad_vary_options_are_one_line(option: str, fragment: str) -> None:
    with pytest.raises(BadInputError, match=fragment):
        parse_vary(option)


def test_dotted_set_copies_and_creates_tables() -> None:
    data = {"requests": {"period_ms": 1.0}}
    out = set_dotted(data, "policy.kind", "trace")
    assert out == {"requests": {"period_ms": 1.0}, "policy": {"kind": "trace"}} and "policy" not in data
    assert get_dotted(out, "requests.period_ms") == 1.0 and get_dotted(out, "x.y") is None
    with pytest.raises(BadInputError, match="is a value, not a table"):
        set_dotted(data, "requests.period_ms.x", 1)


def test_grid_is_the_product_last_key_fastest_with_seeds(exp: Path) -> None:
    g = build_grid(exp, ["requests.period_ms=100,200", "battery.energy_j=300,400,500"], seeds=2)
    assert len(g.cells) == 12 and g.keys == ["requests.period_ms", "battery.energy_j", "seed"]
    first, second, last = g.cells[0], g.cells[1], g.cells[-1]
    assert first.values == {"requests.period_ms": 100, "battery.energy_j": 300, "seed": 5}
    assert second.values["seed"] == 6 and second.config.seed == 6
    assert last.config.requests.period_ms == 200 and last.config.battery.energy_j == 500
    assert len({c.name for c in g.cells}) == 12 and first.name == "c000-period_ms=100-energy_j=300-seed=5"


def test_paths_in_values_resolve_against_the_experiment_file(exp: Path, tmp_path: Path) -> None:
    g = build_grid(exp, ["profile.table=rpi4,tables/mine.csv"])
    assert Path(g.cells[1].config.profile.table) == (tmp_path / "tables" / "mine.csv").resolve()
    assert g.cells[1].name == "c001-table=tables_mine.csv"


@pytest.mark.parametrize(
    ("varies", "seeds", "fragment"),
    [(["requests.perod_ms=1,2"], None, r"cell 0 \(requests.perod_ms=1\).*requests.perod_ms: Extra inputs"),
     (["requests.period_ms=100,-1"], None, r"cell 1 .*greater than 0"),
     (["battery.model=bucket,nope"], None, "unknown battery model"),
     (["seed=1,2"], 2, "either --seeds"),
     ([], None, "at least one --vary"),
     (["a.b=1", "a.b=2"], None, "given twice"),
     ([], 0, "--seeds must be")],
)  # fmt: skip
def test_every_cell_is_validated_up_front(exp: Path, varies: list[str], seeds: int | None, fragment: str) -> None:
    with pytest.raises(BadInputError, match=fragment):
        build_grid(exp, varies, seeds)


def test_missing_experiment_file(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="no such experiment file"):
        build_grid(tmp_path / "nope.toml", ["seed=1"])
