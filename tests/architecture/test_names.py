"""A class name in the runtime doors and brain (plugin/, connectors/) means one thing across the package.

A name defined twice (two `Dtmf`s, two `HandoffTarget`s, a `TurnReader` in the plugin and another in the
training recipes) makes a reader open the wrong file; the check reads every class statement with `ast`.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
OWNED = ("plugin", "connectors")  # the names this test holds unique
EVERYWHERE = ("models", "plugin", "connectors", "training", "rasa_project", "bench", "scripts")


def classes() -> dict[str, list[str]]:
    """Class name -> the files defining it (top level or nested), over every package of the repository."""
    found: dict[str, list[str]] = defaultdict(list)
    for package in EVERYWHERE:
        for path in sorted((REPO / package).rglob("*.py")) if (REPO / package).is_dir() else []:
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    found[node.name].append(str(path.relative_to(REPO)))
    return found


def test_no_class_of_the_plugin_or_the_connectors_is_defined_twice() -> None:
    twice = {
        name: files
        for name, files in classes().items()
        if len(files) > 1 and any(f.startswith(f"{package}/") for f in files for package in OWNED)
    }
    assert not twice, f"class names defined more than once: {twice}"
