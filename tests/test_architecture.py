"""The package's shape: an acyclic import graph, libraries free of the CLI and benchmarks and of
print, and modules a reader can hold in mind."""

from __future__ import annotations

import ast
from pathlib import Path

import vcfnet

PACKAGE = Path(vcfnet.__file__).parent
#: packages that may print and import everything (the edges)
EDGES = ("vcfnet.cli", "vcfnet.bench")
MAX_MODULE_LINES = 500


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, ast.Module]:
    return {_module_name(p): ast.parse(p.read_text()) for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """vcfnet modules ``name`` imports anywhere in its body (function-local imports too)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            targets = [f"{node.module}.{a.name}" for a in node.names] + [node.module]
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]
            if target.startswith("vcfnet") and target not in (name, "vcfnet"):
                out.add(target)
    return out


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, tree, set(modules)) for name, tree in modules.items()}


def test_import_graph_is_acyclic():
    graph = _graph()
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = [*stack[stack.index(nxt) :], nxt]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_a_cycle_would_be_found():
    """The cycle finder itself: two modules importing each other are reported."""
    a = ast.parse("from vcfnet.b import x")
    b = ast.parse("import vcfnet.a")
    known = {"vcfnet.a", "vcfnet.b"}
    assert _imports("vcfnet.a", a, known) == {"vcfnet.b"}
    assert _imports("vcfnet.b", b, known) == {"vcfnet.a"}


def test_libraries_import_neither_cli_nor_benchmarks():
    for name, deps in _graph().items():
        if name.startswith(EDGES) or name == "vcfnet.__main__":
            continue
        bad = sorted(d for d in deps if d.startswith(EDGES))
        assert not bad, f"{name} imports {bad}"


def test_libraries_do_not_print():
    for name, tree in _modules().items():
        if name.startswith(EDGES):
            continue
        calls = [
            n.lineno
            for n in ast.walk(tree)
            if isinstance(n, ast.Call) and isinstance(n.func, ast.Name) and n.func.id == "print"
        ]
        assert not calls, f"{name} prints at line(s) {calls}; log instead"


def test_modules_stay_small():
    for path in PACKAGE.rglob("*.py"):
        lines = len(path.read_text().splitlines())
        assert lines <= MAX_MODULE_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"
