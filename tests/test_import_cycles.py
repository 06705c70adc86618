"""No import cycle inside distrib/: every module can be read bottom-up.

A small AST walk (no third-party tool): every ``import`` and ``from ... import`` of a
distrib module, at the top of a file or inside a function, is an edge, and so is one
under ``if TYPE_CHECKING:`` (a type-only cycle still means two modules must be read
together).  The test fails naming each cycle.
"""

from __future__ import annotations

import ast
from pathlib import Path

import distrib

ROOT = Path(distrib.__file__).parent


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in ROOT.rglob("*.py"):
        parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _imports(module: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The distrib modules ``module`` imports (the closest module for a name inside one)."""
    is_package = path.name == "__init__.py"
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            for alias in node.names:
                name = f"{prefix}.{alias.name}"
                names.append(name if name in modules else prefix)
    found: set[str] = set()
    for name in names:
        while name and name not in modules:
            name = name.rpartition(".")[0]
        if name and name != module:
            found.add(name)
    return found


def import_cycles() -> list[list[str]]:
    """Every strongly connected set of two or more modules (Tarjan's algorithm)."""
    modules = _modules()
    graph = {m: _imports(m, p, modules) for m, p in modules.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component: list[str] = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return cycles


def test_no_import_cycle_inside_distrib() -> None:
    assert len(_modules()) > 40  # the walk found the package
    assert import_cycles() == []


def test_the_walk_finds_a_cycle(tmp_path: Path, monkeypatch) -> None:
    """The check itself: two modules that import each other are reported."""
    pkg = tmp_path / "distrib"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from . import b\n")
    (pkg / "b.py").write_text("def f():\n    from .a import x\n")
    (pkg / "c.py").write_text("from .a import b\n")
    monkeypatch.setitem(globals(), "ROOT", pkg)
    assert import_cycles() == [["distrib.a", "distrib.b"]]


def test_the_schema_toolkit_is_a_leaf() -> None:
    """What every adapter imports reaches nothing of distrib but errors and the address rule."""
    modules = _modules()
    assert _imports("distrib.schema", modules["distrib.schema"], modules) == {
        "distrib.addresses",
        "distrib.errors",
    }
    assert _imports("distrib.addresses", modules["distrib.addresses"], modules) == set()


def test_the_page_reader_is_a_leaf() -> None:
    """Reading a web page (used by the feed source and by `distrib init`) reaches nothing
    of distrib but the URL rule of sanitize; init's module is above the feed source."""
    modules = _modules()
    assert _imports("distrib.sources.page", modules["distrib.sources.page"], modules) == {
        "distrib.sanitize"
    }
    feed = _imports("distrib.sources.feed", modules["distrib.sources.feed"], modules)
    assert "distrib.sources.page" in feed
    assert "distrib.discover" not in feed
