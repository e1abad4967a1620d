"""The layers import one way (connectors -> plugin -> models) and no module graph has a cycle.

Read from the source with `ast`, so the test sees lazy imports inside functions
too (they are dependencies all the same); imports under `if TYPE_CHECKING:` are
left out, because they exist only for the type checker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "plugin", "connectors")
# A module may import from its own layer or from layers to its right, never to its left.
LAYER = {"connectors": 0, "plugin": 1, "models": 2}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _resolve(module: str, is_package: bool, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The project modules that `path` imports (a `from pkg import mod` counts as pkg.mod when that is a module)."""
    module = module_name(path)
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for extra in child.orelse:
                    visit(extra)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(module, path.name == "__init__.py", child)
                found.add(target)
                found.update(f"{target}.{alias.name}" for alias in child.names)
            visit(child)

    visit(ast.parse(path.read_text(), filename=str(path)))
    return {name for name in found if name in known and name != module}


def project_graph() -> dict[str, set[str]]:
    files = [p for package in PACKAGES for p in (REPO / package).rglob("*.py")]
    known = {module_name(p) for p in files}
    return {module_name(p): imports_of(p, known) for p in files}


def test_graph_is_read() -> None:
    graph = project_graph()
    assert "plugin.nlu" in graph and "models.emotion" in graph["plugin.nlu"], "the parser must see real imports"


def test_no_import_runs_back_up_the_layers() -> None:
    wrong = sorted(
        f"{module} imports {target}"
        for module, targets in project_graph().items()
        for target in targets
        if LAYER[target.split(".")[0]] < LAYER[module.split(".")[0]]
    )
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def strongconnect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                strongconnect(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            strongconnect(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_cycles(package: str) -> None:
    graph = {m: {t for t in ts if not _is_parent(t, m)} for m, ts in project_graph().items() if m.startswith(package)}
    cycles = _cycles(graph)
    assert not cycles, "modules import each other:\n" + "\n".join(" <-> ".join(c) for c in cycles)


def _is_parent(target: str, module: str) -> bool:
    # `from models.recipes import fusion` inside models.recipes.fusion.x names its own package's __init__,
    # which Python imports first anyway; that is not a cycle between modules.
    return module.startswith(target + ".")
