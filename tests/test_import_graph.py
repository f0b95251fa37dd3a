"""The package's modules import each other without a cycle: imports inside functions and under
`if TYPE_CHECKING:` count too (a cycle that only type checkers follow is still two modules that
each need the other to be understood)."""

from __future__ import annotations

import ast
import functools
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "pytest_jallm"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


# Imports known to close a cycle, left to the modules' owners, each with why. The test fails when
# one no longer closes a cycle, so the entry goes with the fix.
def _imports(tree: ast.AST, type_checking: bool = True) -> list[ast.stmt]:
    """Every import statement; with `type_checking=False`, not those under `if TYPE_CHECKING:`."""
    found: list[ast.stmt] = []

    def visit(node: ast.AST) -> None:
        if not type_checking and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


@functools.lru_cache(maxsize=2)  # the package does not change during a test run
def import_graph(type_checking: bool = True) -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        deps: set[str] = set()
        for node in _imports(ast.parse(path.read_text(encoding="utf-8")), type_checking):
            if isinstance(node, ast.Import):
                deps.update(a.name for a in node.names if a.name in files)
                continue
            base = node.module or ""
            if node.level:
                base = ".".join(package[: len(package) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                if target in files:
                    deps.add(target)
                elif base in files:
                    deps.add(base)
        deps.discard(module)
        graph[module] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()
    for start in sorted(graph):
        path: list[str] = []
        on_path: set[str] = set()
        stack = [(start, iter(sorted(graph[start])))]
        if start in done:
            continue
        path.append(start)
        on_path.add(start)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                return path[path.index(child):] + [child]
            elif child not in done:
                stack.append((child, iter(sorted(graph[child]))))
                path.append(child)
                on_path.add(child)
    return None


def test_the_finder_sees_a_cycle_through_a_function_level_import() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_holds_relative_function_level_and_type_checking_imports() -> None:
    graph = import_graph()
    assert "pytest_jallm.spec" in graph["pytest_jallm.data"]
    assert "pytest_jallm.cache" in graph["pytest_jallm.evaluation"]  # imported inside a function
    assert "pytest_jallm.evaluation" in graph["pytest_jallm.gate.run"]  # under TYPE_CHECKING
    assert "pytest_jallm.evaluation" not in import_graph(type_checking=False)["pytest_jallm.gate.run"]


def test_the_package_has_no_import_cycle() -> None:
    """Counting imports under TYPE_CHECKING: a type-only import is a dependency too."""
    cycle = find_cycle(import_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_runtime_import_cycle_at_all() -> None:
    cycle = find_cycle(import_graph(type_checking=False))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_gate_and_reporting_items_and_session_do_not_import_each_other() -> None:
    graph = import_graph()
    gate = {m for m in graph if m.startswith("pytest_jallm.gate")}
    for m in gate:
        assert not {d for d in graph[m] if d.startswith("pytest_jallm.reporting")}, m
    assert "pytest_jallm.items" not in graph["pytest_jallm.session"]
