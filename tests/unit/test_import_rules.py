"""The import rules of DESIGN.md, checked by walking every module's imports with ``ast``: no import cycle between
modules (module-level imports, and again with the imports inside functions), no ``ui`` import into ``app``
beyond its service surface, and no Qt or ``app``/``ui`` in the lower packages."""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "ui", "inference", "models", "storage")

# What ui/ may import from app/: the services room (app/services/: turns, conversation settings, model services,
# speculative choice, MCP tools, attachments, start on login, the Core protocol) and these few modules, never the
# composition root (app.core), the CLI, the desktop launcher, the benchmarks or the API's internals.
UI_SERVICE_ROOM = "app.services"
UI_SERVICE_SURFACE = frozenset({
    "app.routing",  # the routing front (RouteRequest)
    "app.settings",  # the settings declaration
    "app.api.token",  # the local API's token
})
LOWER = ("inference", "models", "storage")


@dataclass(frozen=True)
class Edge:
    source: str
    target: str
    line: int
    lazy: bool  # inside a function body


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    found = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            found[module_name(path)] = path
    return found


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The first-party module ``name`` stands for (a package's ``__init__`` counts as the package)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> list[Edge]:
    """Every runtime import of one module (``if TYPE_CHECKING:`` blocks left out), first-party targets only."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    edges: list[Edge] = []

    def add(target: str, node: ast.stmt, lazy: bool) -> None:
        resolved = _resolve(target, modules)
        if resolved is not None and resolved != name:
            edges.append(Edge(name, resolved, node.lineno, lazy))

    def visit(node: ast.AST, lazy: bool) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child, lazy)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                add(alias.name, node, lazy)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # ``from pkg import module`` imports the module
                full = f"{base}.{alias.name}"
                add(full if full in modules else base, node, lazy)
        inner = lazy or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
        for child in ast.iter_child_nodes(node):
            visit(child, inner)

    visit(tree, False)
    return edges


@pytest.fixture(scope="module")
def edges() -> list[Edge]:
    modules = all_modules()
    return [e for name, path in modules.items() for e in imports_of(name, path, modules)]


def cycles(edges: list[Edge]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.source, set()).add(e.target)
        graph.setdefault(e.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strong(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            strong(v)
    return found


def _describe(comps: list[list[str]], edges: list[Edge]) -> str:
    lines = []
    for comp in comps:
        members = set(comp)
        inside = [f"  {e.source} -> {e.target} (line {e.line}{', lazy' if e.lazy else ''})"
                  for e in edges if e.source in members and e.target in members]
        lines.append(" <-> ".join(comp) + "\n" + "\n".join(sorted(set(inside))))
    return "\n".join(lines)


def test_the_walk_sees_the_tree(edges):
    assert len({e.source for e in edges}) > 80
    assert any(e.source == "app.core" and e.target == "app.settings" for e in edges)
    assert any(e.source == "app.services.surface" and e.target == "app.routing" and e.lazy for e in edges)


def test_the_cycle_finder_finds_a_lazy_cycle():
    es = [Edge("a", "b", 1, False), Edge("b", "a", 9, True), Edge("b", "c", 2, False)]
    assert cycles(es) == [["a", "b"]] and cycles([e for e in es if not e.lazy]) == []


def test_no_cycle_between_module_level_imports(edges):
    found = cycles([e for e in edges if not e.lazy])
    assert not found, "import cycles:\n" + _describe(found, edges)


KNOWN_LAZY_CYCLES: list[list[str]] = []  # none: a cycle through a lazy import fails too


def test_no_cycle_when_imports_inside_functions_count_too(edges):
    found = cycles(edges)
    assert found == KNOWN_LAZY_CYCLES, "import cycles through imports inside functions:\n" + _describe(found, edges)


def test_ui_imports_only_the_service_surface_of_app(edges):
    bad = [f"{e.source}:{e.line} imports {e.target}" for e in edges
           if e.source.split(".")[0] == "ui" and e.target.split(".")[0] == "app"
           and e.target != "app" and e.target not in UI_SERVICE_SURFACE
           and e.target.split(".")[:2] != UI_SERVICE_ROOM.split(".")]
    assert not bad, "ui/ reaches into app/ internals:\n" + "\n".join(bad)


def test_lower_packages_never_import_app_ui_or_qt():
    modules = all_modules()
    bad = []
    for name, path in modules.items():
        if name.split(".")[0] not in LOWER:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets = ([a.name for a in node.names] if isinstance(node, ast.Import)
                       else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [f"{name}:{node.lineno} imports {t}" for t in targets
                    if t.split(".")[0] in {"app", "ui", "PySide6", "shiboken6"}]
    assert not bad, "\n".join(bad)
