"""mypy checks the tests too: `mypy` with no arguments reads `files` from pyproject.toml, and dropping "tests"
there would let the tests' types rot without a word (issue 32).

Read as text: Python 3.10 has no tomllib, and the one line is simple enough to read with a pattern.
"""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def mypy_files(pyproject: str) -> list[str]:
    """The `files` list of the `[tool.mypy]` table (empty when the table or the key is missing)."""
    table = re.search(r"^\[tool\.mypy\]\n(.*?)(?=^\[)", pyproject + "\n[", re.S | re.M)
    files = re.search(r"^files\s*=\s*\[(.*?)\]", table.group(1), re.S | re.M) if table else None
    return re.findall(r'"([^"]+)"', files.group(1)) if files else []


def test_mypy_checks_the_tests_and_the_runtime_strictly() -> None:
    pyproject = (REPO / "pyproject.toml").read_text(encoding="utf-8")
    files = mypy_files(pyproject)
    assert "tests" in files, files
    assert {"models", "plugin", "connectors", "training"} <= set(files), files
    assert re.search(r"^strict\s*=\s*true$", pyproject, re.M), "strict mode is on for the whole project"


def test_the_reader_sees_only_the_mypy_table() -> None:
    text = '[tool.other]\nfiles = ["x"]\n\n[tool.mypy]\nstrict = true\nfiles = ["a", "tests"]\n\n[tool.y]\n'
    assert mypy_files(text) == ["a", "tests"]
    assert mypy_files('[tool.other]\nfiles = ["tests"]\n') == []
