"""The one registry implementation behind meter schemes, battery models, strategies and search algorithms."""

from __future__ import annotations

import pytest

from devices.errors import BadInputError
from devices.meters.registry import SCHEMES
from devices.registry import Registry
from testbed.battery.registry import MODELS
from testbed.experiment.strategy import STRATEGIES
from testbed.search.algorithms import SEARCHERS


def test_names_keep_registration_order_and_aliases_resolve() -> None:
    reg: Registry[int] = Registry("widget", aliases={"old": "b"})
    reg.register("b", 2, "the second")
    reg.register("a", 1)
    assert reg.names() == ("b", "a") and list(reg) == ["b", "a"] and len(reg) == 2
    assert reg.get("old") == 2 and "old" in reg and reg.canonical("old") == "b"
    assert reg.entry("b").summary == "the second" and reg.aliases_of("b") == ["old"]
    assert reg.known() == "b, a (alias old = b)"


def test_unknown_duplicate_and_missing_names_are_one_line_errors() -> None:
    reg: Registry[int] = Registry("widget", aliases={"old": "b"})
    reg.register("b", 2)
    with pytest.raises(BadInputError, match=r"^unknown widget 'c'; known: b \(alias old = b\)$"):
        reg.get("c")
    with pytest.raises(BadInputError, match="widget 'b' is already registered"):
        reg.register("b", 3)
    with pytest.raises(BadInputError, match="widget 'old' is already registered"):
        reg.register("old", 3)  # an alias is taken too
    with pytest.raises(BadInputError, match="no widget 'c' is registered"):
        reg.unregister("c")
    assert 3 not in reg  # only names are members


def test_the_decorator_registers_and_returns_the_value() -> None:
    reg: Registry[object] = Registry("planner")

    @reg.add("p", "a planner")
    def planner() -> str:
        return "planned"

    assert reg.get("p") is planner and planner() == "planned"
    reg.unregister("p")
    assert "p" not in reg


def test_every_extension_seam_is_a_registry() -> None:
    assert {"um25c", "rapl", "model", "none"} <= set(SCHEMES)
    assert {"ecm", "energy-bucket", "rt3-accounting"} <= set(MODELS) and "bucket" in MODELS
    assert STRATEGIES.names()[:5] == ("dense-max", "dvfs-dense", "static-sparse", "rt3", "oracle")
    assert SEARCHERS.names()[:3] == ("rl", "random", "tpe")
