"""Redis keys, hash fields and stream entries are spelled in one module: `plugin.schema`.

Runtime code (models/, plugin/, connectors/) outside the schema names stored state only through it. Read
from the source with `ast`; the vocabulary comes from the schema module itself, so a key, field or entry
added there is guarded here without touching this test. Three rules, each a string constant in a runtime
module outside `plugin/schema.py`:

1. a key: a constant (or the literal part of an f-string) holding a fragment of the key layout, as
   `Keys` renders it (`:conv:`, `:events`, `:cust:{c:`, `:rollup:`, ...);
2. a field or key kind handed to Redis: a constant naming a key kind or a hash / stream field, given to a
   Redis hash or stream command (`hget`, `hset`, `hmget`, `xadd`, ...) or to `Keys.conv` / `Keys.cust`;
3. a stored-only field read by hand: `x["f"]` or `x.get("f")` with `f` one of the meta hash's fields that no
   other contract (Rasa's parse data, the handoff case, the dashboard's JSON) uses.

Names shared with other contracts (`customer_id`, `channel`, `tone`, `data`, ...) are guarded by rules 1 and 2
only: a dict of the handoff case or the dashboard's API may use them freely.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import cast

from plugin import schema

REPO = Path(__file__).resolve().parents[2]
RUNTIME = ("models", "plugin", "connectors")
SCHEMA = REPO / "plugin" / "schema.py"
# Where the training code lives, whichever side of the issue-32 move it is on: not runtime.
NOT_RUNTIME = ("models/recipes/", "models/evaluate", "models/metrics.py", "models/data.py", "training/")

REDIS_FIELD_COMMANDS = {
    "hget",
    "hset",
    "hsetnx",
    "hmget",
    "hdel",
    "hexists",
    "hincrby",
    "hincrbyfloat",
    "hstrlen",
    "xadd",
}
KEY_METHODS = {"conv", "cust"}
_SENTINEL_PREFIX, _SENTINEL_ID = "\x00P", "\x01"


def _enums() -> list[type[Enum]]:
    return [
        value
        for value in vars(schema).values()
        if isinstance(value, type) and issubclass(value, Enum) and value.__module__ == schema.__name__
    ]


def key_fragments() -> set[str]:
    """The literal parts of every key `Keys` renders: what only a key string holds."""
    keys = schema.Keys(_SENTINEL_PREFIX, 16)
    rendered = [
        keys.active(5),
        keys.events(5),
        keys.handoffs(5),
        keys.claims(5),
        keys.handoff_seen(5, _SENTINEL_ID),
        keys.rollup(5, _SENTINEL_ID),
        keys.rollup_convs(5, _SENTINEL_ID),
        keys.corrections,
        keys.nonce(_SENTINEL_ID),
        keys.once(_SENTINEL_ID, _SENTINEL_ID),
        keys.dash_session(_SENTINEL_ID),
        *(keys.conv(_SENTINEL_ID, kind) for kind in schema.ConvKey),
        *(keys.cust(_SENTINEL_ID, kind) for kind in schema.CustKey),
    ]
    split = re.compile(f"{re.escape(_SENTINEL_PREFIX)}|{re.escape(_SENTINEL_ID)}|\\{{s\\d+\\}}")
    return {piece for key in rendered for piece in split.split(key) if re.search("[a-z]", piece)}


def stored_names() -> set[str]:
    """Every key kind and every hash / stream field the schema defines."""
    return {str(member.value) for enum in _enums() for member in enum}


def stored_only_fields() -> set[str]:
    """The meta hash's fields that name nothing in any other contract (`_` in them: never a plain word)."""
    shared = {"customer_id", "channel", "summary", "tone", "n_turns", "started_at", "last_at", "escalation_reason"}
    return {field.value for field in schema.MetaField} - shared


def runtime_files() -> list[Path]:
    files = [p for package in RUNTIME for p in sorted((REPO / package).rglob("*.py"))]
    return [p for p in files if p != SCHEMA and not str(p.relative_to(REPO)).startswith(NOT_RUNTIME)]


def _strings(node: ast.AST) -> Iterator[ast.Constant]:
    """Every string constant in `node` (f-strings' literal parts included)."""
    for child in ast.walk(node):
        if isinstance(child, ast.Constant) and isinstance(child.value, str):
            yield child


def _literals(argument: ast.expr) -> Iterator[ast.Constant]:
    """The string constants an argument spells out: itself, or the items (keys) of a literal list, tuple, set
    or dict. Not constants deeper inside (`row["customer_id"]` names a dict's key, not a Redis field)."""
    items = argument.elts if isinstance(argument, (ast.List, ast.Tuple, ast.Set)) else [argument]
    if isinstance(argument, ast.Dict):
        items = [k for k in argument.keys if k is not None]
    yield from (i for i in items if isinstance(i, ast.Constant) and isinstance(i.value, str))


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the docstring constants: prose about the layout is allowed (and welcome)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def violations(path: Path) -> list[str]:
    """Where `path` spells stored state itself: one line per finding (file:line: what)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    fragments, names, stored_only = key_fragments(), stored_names(), stored_only_fields()
    docs = _docstrings(tree)
    where = str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name
    found = []
    for const in _strings(tree):
        if id(const) in docs:
            continue
        text = cast(str, const.value)  # _strings yields string constants only
        hit = next((f for f in sorted(fragments) if f in text), None)
        if hit is not None:
            found.append(f"{where}:{const.lineno}: key fragment {hit!r} in {text[:60]!r}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            method = node.func.attr
            if method in REDIS_FIELD_COMMANDS or method in KEY_METHODS:
                arguments = [*node.args, *(k.value for k in node.keywords)]
                for const in (c for a in arguments for c in _literals(a)):
                    if const.value in names:
                        found.append(f"{where}:{const.lineno}: {const.value!r} handed to {method}()")
            first = node.args[0] if node.args else None
            if method == "get" and isinstance(first, ast.Constant) and first.value in stored_only:
                found.append(f"{where}:{node.lineno}: stored field {first.value!r} read by .get()")
        if isinstance(node, ast.Subscript) and isinstance(key := node.slice, ast.Constant) and key.value in stored_only:
            found.append(f"{where}:{node.lineno}: stored field {key.value!r} read by subscript")
    return found


def test_the_vocabulary_comes_from_the_schema() -> None:
    """The rules read real names: a schema that lost its enums or keys would make this test pass vacuously."""
    assert {":conv:", ":events", ":handoffs", ":active", ":rollup:", ":cust:{c:"} <= key_fragments()
    assert {"meta", "turns", "consent", "last_turn", "opted_out", "data"} <= stored_names()
    assert "escalated_message_id" in stored_only_fields()
    assert isinstance(schema.LAYOUT_VERSION, int)


def test_runtime_code_spells_stored_state_only_in_the_schema() -> None:
    found = [line for path in runtime_files() for line in violations(path)]
    assert not found, "stored state spelled outside plugin/schema.py:\n" + "\n".join(found)


def test_the_rules_catch_a_key_a_field_and_a_stored_read(tmp_path: Path) -> None:
    """Each rule fires on its own violation (the rules are not vacuous)."""
    bad = tmp_path / "probe.py"
    bad.write_text(
        "def f(client, keys, meta, cid):\n"
        '    client.hget(keys.conv(cid, "meta"), "tone")\n'
        '    key = f"toneline:{{s01}}:conv:{cid}:turns"\n'
        '    return meta.get("escalated_message_id"), key\n',
        encoding="utf-8",
    )
    found = violations(bad)
    assert any("handed to conv()" in line for line in found), found
    assert any("'tone' handed to hget()" in line for line in found), found
    assert any("key fragment" in line for line in found), found
    assert any("read by .get()" in line for line in found), found
