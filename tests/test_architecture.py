"""The layering of the four packages, checked from the source: imports point down only.

Every ``import`` statement counts, including those inside functions and under ``TYPE_CHECKING``, because
an import inside a function is still a dependency (it only hides the cycle until the function runs).

The order is ``devices`` < ``traces`` < ``testbed`` < ``analysis``: a board installs ``devices`` alone, trace
formats may use the board side's error types, the controller uses both, and analysis reads run stores through
the read-only reader only.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("devices", "traces", "testbed", "analysis")
RANK = {name: i for i, name in enumerate(PACKAGES)}
# The one module of analysis' view into testbed: the read-only run-store reader.
ANALYSIS_MAY_IMPORT = ("testbed.runstore.reader",)
ENTRY_POINTS = ("testbed.__main__",)
# The application layer on top of all four: the one CLI (`testbed report` draws figures through analysis). It may
# import anything; nothing but the entry point imports it.
APP_LAYER = ("testbed.cli", *ENTRY_POINTS)


@dataclass(frozen=True)
class Edge:
    """``importer`` imports ``imported`` at ``line`` (both module names of this repository)."""

    importer: str
    imported: str
    line: int


def _modules() -> dict[str, Path]:
    mods: dict[str, Path] = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            mods[".".join(parts)] = path
    return mods


def _targets(module: str, path: Path, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]) -> Iterator[str]:
    names: list[str] = []
    if isinstance(node, ast.Import):
        names = [a.name for a in node.names]
    else:
        base = node.module or ""
        if node.level:
            here = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
            here = here[: len(here) - (node.level - 1)]
            base = ".".join([*here, base] if base else here)
        names = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
    for name in names:
        while name and name not in mods:
            name = name.rpartition(".")[0]
        if name and name != module:
            yield name


def _edges() -> list[Edge]:
    mods = _modules()
    edges: list[Edge] = []
    for module, path in mods.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                edges.extend(Edge(module, t, node.lineno) for t in _targets(module, path, node, mods))
    return edges


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.importer, set()).add(e.imported)
        graph.setdefault(e.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for start in graph:
        if start in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, it = work[-1]
            for w in it:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp: list[str] = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    return _edges()


def _show(bad: list[Edge]) -> str:
    return "\n".join(f"{e.importer}:{e.line} imports {e.imported}" for e in bad)


def test_the_checker_sees_imports_inside_functions() -> None:
    """The parser must count a function-local import (the way cycles used to hide)."""
    mods = {"a": Path("a.py"), "b": Path("b.py")}
    tree = ast.parse("def f():\n    from b import x\n")
    found = [t for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for t in _targets("a", Path("a.py"), n, mods)]
    assert found == ["b"]
    assert _cycles([Edge("a", "b", 1), Edge("b", "a", 1), Edge("b", "c", 2)]) == [["a", "b"]]


def test_no_module_import_cycles(edges: list[Edge]) -> None:
    assert _cycles(edges) == []


def _rank(module: str) -> int:
    if any(module == app or module.startswith(app + ".") for app in APP_LAYER):
        return len(PACKAGES)
    return RANK[module.split(".")[0]]


def test_packages_point_down_only(edges: list[Edge]) -> None:
    up = [e for e in edges if _rank(e.imported) > _rank(e.importer)]
    assert up == [], "imports that point up the layers:\n" + _show(up)


def test_only_the_entry_point_imports_the_cli(edges: list[Edge]) -> None:
    bad = [
        e
        for e in edges
        if e.imported.startswith("testbed.cli")
        and not e.importer.startswith("testbed.cli")
        and e.importer not in ENTRY_POINTS
    ]
    assert bad == [], _show(bad)


def test_analysis_reads_testbed_only_through_the_run_store_reader(edges: list[Edge]) -> None:
    bad = [
        e
        for e in edges
        if e.importer.startswith("analysis")
        and e.imported.startswith("testbed")
        and e.imported not in ANALYSIS_MAY_IMPORT
    ]
    assert bad == [], _show(bad)


#: Packages a board never installs: nothing in ``devices`` may import them (imports inside functions count).
BOARD_FORBIDDEN = ("ray",)


def _external_imports(path: Path) -> Iterator[tuple[str, int]]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module, node.lineno


def test_the_board_side_never_imports_ray() -> None:
    """Ray is the controller's (sweeps, Tune, board farms); a board runs the HTTP agent without it."""
    bad = [
        f"{path.relative_to(ROOT)}:{line} imports {name}"
        for path in sorted((ROOT / "devices").rglob("*.py"))
        for name, line in _external_imports(path)
        if name.split(".")[0] in BOARD_FORBIDDEN
    ]
    assert bad == [], "\n".join(bad)
    probe = ast.parse("def f():\n    import ray.tune\n")  # the checker sees a function-local import
    assert [n.names[0].name for n in ast.walk(probe) if isinstance(n, ast.Import)] == ["ray.tune"]
