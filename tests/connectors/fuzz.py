"""Cheap message fuzzing for the serializer property tests.

Hypothesis draws a seed (and, in the structured tests, whole JSON values); each
seed expands into a batch of messages made from valid frames: JSON leaves and
subtrees swapped for hostile values (1e999, "8k", deep nesting, huge numbers,
lone surrogates), and byte-level mutations of the text (insertions, deletions,
truncations, duplicated spans). A batch per example keeps 100,000 messages
within a couple of minutes on two cores.
"""

from __future__ import annotations

import json
import random
from typing import Any, Callable

from hypothesis import strategies as st

from connectors.frames import ProtocolError

HOSTILE_VALUES: list[Any] = [
    float("inf"),
    float("-inf"),
    float("nan"),
    1e308,
    -0.0,
    0.5,
    10**40,
    -1,
    0,
    True,
    None,
    "8k",
    "",
    " ",
    "1e999",
    "\ud800",
    "x" * 300,
    "²",
    [],
    {},
    [8000],
    {"a": {"b": {"c": [1, [2, [3]]]}}},
]
HOSTILE_TEXT = [
    "1e999",
    "-1e999",
    "NaN",
    "Infinity",
    '"8k"',
    "[" * 3000,
    '{"a":' * 3000,
    "]" * 50,
    '"\\ud800"',
    '"',
    "}",
    ",",
    ":",
    "0" * 5000,
    "null",
    "true",
    "[]",
    "{}",
    "\x00",
    "\u00e9",
    "\\",
    "\ufeff",
]

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(HOSTILE_VALUES),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            out += _paths(child, (*prefix, key))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            out += _paths(child, (*prefix, index))
    return out


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        return {**value, head: _replace(value[head], rest, new)}
    copy = list(value)
    copy[head] = _replace(copy[head], rest, new)
    return copy


def swap_values(rng: random.Random, message: dict[str, Any]) -> str:
    """`message` with one to three of its values (or keys' values) replaced by hostile ones, as JSON text."""
    value: Any = message
    for _ in range(rng.randint(1, 3)):
        path = rng.choice(_paths(value))
        new = rng.choice(HOSTILE_VALUES)
        if rng.random() < 0.1:
            new = [new] * rng.randint(1, 5) if rng.random() < 0.5 else {"k": new}
        if rng.random() < 0.05:
            new = json.loads("[" * 100 + "]" * 100)  # deep but dumpable; the serializer must refuse it
        value = _replace(value, path, new)
    return json.dumps(value)


def mutate_text(rng: random.Random, text: str) -> str:
    """Byte-level damage to a valid frame's text."""
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        at = rng.randint(0, len(text))
        if op == 0:
            text = text[:at] + rng.choice(HOSTILE_TEXT) + text[at:]
        elif op == 1:
            text = text[:at] + text[at + rng.randint(1, 12) :]
        elif op == 2:
            text = text[:at]
        elif op == 3 and text:
            text = text[:at] + chr(rng.randrange(0x20, 0x250)) + text[at + 1 :]
        elif op == 4:
            span = text[at : at + rng.randint(1, 40)]
            text = text[:at] + span * rng.randint(2, 4) + text[at:]
        else:
            text = text.replace(rng.choice(['"', ":", ",", "{", "[", "0", "1"]), rng.choice(HOSTILE_TEXT), 1)
    return text


def batch(seed: int, valid: list[dict[str, Any]], size: int) -> list[str | bytes]:
    """`size` messages derived from `valid` frames: value swaps, text mutations and a little raw noise."""
    rng = random.Random(seed)
    out: list[str | bytes] = []
    for _ in range(size):
        frame = rng.choice(valid)
        roll = rng.random()
        if roll < 0.45:
            out.append(swap_values(rng, frame))
        elif roll < 0.9:
            out.append(mutate_text(rng, json.dumps(frame)))
        elif roll < 0.95:
            out.append(bytes(rng.randrange(256) for _ in range(rng.randint(0, 64))))
        else:
            out.append("".join(chr(rng.randrange(0x20, 0x3000)) for _ in range(rng.randint(0, 64))))
    return out


def outcome(parse: Callable[[Any], Any], message: Any, codes: set[str]) -> Any:
    """The parsed frame, or None for a `ProtocolError` whose code the channel handles; anything else fails."""
    try:
        return parse(message)
    except ProtocolError as exc:
        assert exc.code in codes, f"unexpected error code {exc.code!r} for {str(message)[:200]!r}"
        return None
