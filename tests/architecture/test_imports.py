"""The layers import one way (connectors -> plugin -> models), the runtime never imports the training side,
connectors and the plugin use only `models`' public names, and no module graph has a cycle.

Read from the source with `ast`, so the test sees lazy imports inside functions
too (they are dependencies all the same); imports under `if TYPE_CHECKING:` are
left out, because they exist only for the type checker.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("models", "plugin", "connectors", "training")
# A module may import from its own layer or from layers to its right, never to its left. `training` sits
# above `models` only (it reads the runtime's models); that the runtime never imports it is its own test.
LAYER = {"connectors": 0, "plugin": 1, "training": 2, "models": 3}
RUNTIME = ("models", "plugin", "connectors")
# The two command-name entry points: other tools call `python -m models.evaluate ...` (independent
# evaluations, bench, the cards) and `python -m models.adapt ...` (`make adapt`, deployments' scripts) by
# these names, so they stay in models/ and import `training` lazily, when run. Nothing else may import them.
ENTRY_POINTS = frozenset({"models.evaluate", "models.adapt"})


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
        if module not in ENTRY_POINTS  # they reach `training` by design; see ENTRY_POINTS
        for target in targets
        if LAYER[target.split(".")[0]] < LAYER[module.split(".")[0]]
    )
    assert not wrong, "a lower layer imports a higher one:\n" + "\n".join(wrong)


def training_imports(graph: dict[str, set[str]]) -> list[str]:
    """Each import of the training side (or of an entry point that reaches it) by a runtime module."""
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if module.split(".")[0] in RUNTIME and module not in ENTRY_POINTS
        for target in targets
        if target.split(".")[0] == "training" or target in ENTRY_POINTS
    )


def test_the_runtime_never_imports_training() -> None:
    wrong = training_imports(project_graph())
    assert not wrong, "runtime code imports the training side:\n" + "\n".join(wrong)


@pytest.mark.parametrize("module", sorted(ENTRY_POINTS))
def test_entry_points_import_training_only_when_run(module: str) -> None:
    # At module level an entry point may import nothing of the project: importing `models` (or running
    # `--help` of another tool that imports it) must never load the training side.
    tree = ast.parse((REPO / (module.replace(".", "/") + ".py")).read_text())
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top if isinstance(n, ast.Import) for a in n.names]
    names += [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [m for m in names if m.split(".")[0] in PACKAGES], f"{module} imports the project at module level"


def test_training_imports_are_found() -> None:
    graph = {"plugin.nlu": {"training.metrics"}, "models.voice": {"models.evaluate"}, "models.adapt": {"training"}}
    assert training_imports(graph) == ["models.voice imports models.evaluate", "plugin.nlu imports training.metrics"]


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def private_models_names(source: str, module: str, is_package: bool = False) -> list[str]:
    """Private names of `models` that `source` uses: imported by name, through a private module, or read as an
    attribute of an imported `models` module (`voice._gate`)."""
    tree = ast.parse(source)
    found: list[str] = []
    aliases: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, is_package, node)
            if target.split(".")[0] != "models":
                continue
            found.extend(
                f"{target}.{a.name}" for a in node.names if _private(a.name) or any(map(_private, target.split(".")))
            )
            aliases.update(a.asname or a.name for a in node.names)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "models":
                    found.extend(alias.name for part in alias.name.split(".") if _private(part))
                    aliases.add(alias.asname or alias.name.split(".")[0])
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _private(node.attr):
            base = node.value
            while isinstance(base, ast.Attribute):
                base = base.value
            if isinstance(base, ast.Name) and base.id in aliases:
                found.append(f"{ast.unparse(node.value)}.{node.attr}")
    return found


def test_connectors_and_plugin_use_only_public_names_of_models() -> None:
    wrong = sorted(
        f"{module_name(path)} uses {name}"
        for package in ("connectors", "plugin")
        for path in (REPO / package).rglob("*.py")
        for name in private_models_names(path.read_text(), module_name(path), path.name == "__init__.py")
    )
    assert not wrong, "private names of models used outside it:\n" + "\n".join(wrong)


def test_private_names_are_found() -> None:
    source = "from models.voice import CallerBaseline, _gate\nimport models.listen as listen\nlisten._pass()\n"
    assert private_models_names(source, "connectors.x") == ["models.voice._gate", "listen._pass"]
    assert private_models_names("from models._x import y\nfrom plugin import _z\n", "connectors.x") == ["models._x.y"]


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
    # `from training.recipes import fusion` inside training.recipes.fusion.x names its own package's __init__,
    # which Python imports first anyway; that is not a cycle between modules.
    return module.startswith(target + ".")
