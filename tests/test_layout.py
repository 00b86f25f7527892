"""The rooms of the code base: no import cycles, models free of the suite, no long module without a reason.

Imports are read from the source (``ast``), function-level and ``TYPE_CHECKING`` imports
included: a type-only import is still a dependency a reader follows.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("suite", "scenarios", "models")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            found[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return found


def imports(path: Path, known: dict[str, Path]) -> set[str]:
    """The first-party modules ``path`` imports (the longest known prefix of each imported name)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    resolved = set()
    for name in names:
        while name and name not in known:
            name = name.rpartition(".")[0]
        if name:
            resolved.add(name)
    return resolved


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph[node]:
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycle_among_the_suites_modules():
    known = modules()
    graph = {name: imports(path, known) - {name} for name, path in known.items()}
    graph = {name: {t for t in targets if not name.startswith(t + ".") and t != name.rpartition(".")[0]} for name, targets in graph.items()}
    assert cycles(graph) == []


def test_models_import_nothing_from_the_suite():
    known = modules()
    for name, path in known.items():
        if name.startswith("models"):
            assert not [t for t in imports(path, known) if t.split(".")[0] in ("suite", "scenarios")], name


def test_a_module_over_400_lines_says_why_in_its_docstring():
    long = {}
    for name, path in modules().items():
        lines = len(path.read_text().splitlines())
        docstring = ast.get_docstring(ast.parse(path.read_text())) or ""
        if lines > MAX_LINES and "400 lines" not in docstring:
            long[name] = lines
    assert long == {}
