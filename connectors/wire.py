"""Guards shared by the serializers: JSON that cannot blow the stack, identifiers of bounded length.

Every serializer is total: any text yields a frame or a `ProtocolError` with a
code, never another exception. `json.loads` alone is not: deep nesting raises
RecursionError, a 5,000-digit number ValueError, `1e999` parses to infinity
(which `int()` refuses with OverflowError). These helpers close those holes
once for all channels.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any, Callable, Mapping, TypeVar

from connectors.frames import ProtocolError

MAX_DEPTH = 16  # the deepest real message (AudioHook `open`) nests 4 levels
MAX_ID_CHARS = 128  # ids from providers are UUIDs or Twilio SIDs (34 chars); phone numbers are shorter
F = TypeVar("F")
_DECIMAL = re.compile(r"[+-]?[0-9]{1,18}")  # ASCII only: str.isdigit() also accepts "²", which int() refuses


def _depth_exceeds(text: str, limit: int) -> bool:
    """True if brackets outside strings nest deeper than `limit` (one pass, no parsing)."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def load_json(text: str, max_depth: int = MAX_DEPTH) -> Any:
    """Parse JSON text whose size the caller has already bounded; `ProtocolError` on anything unusable."""
    # Counting brackets is cheap; only texts with many of them need the exact scan.
    if text.count("[") + text.count("{") > max_depth and _depth_exceeds(text, max_depth):
        raise ProtocolError("too_deep", f"JSON nested deeper than {max_depth} levels")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, or an integer too long to convert
        raise ProtocolError("malformed_json", str(exc)[:120]) from None


def json_object(text: str, max_chars: int, oversized: str = "oversized_frame") -> Mapping[str, Any]:
    """A text message of at most `max_chars` holding one JSON object (every provider's control messages)."""
    if len(text) > max_chars:
        raise ProtocolError(oversized, f"{len(text)} characters exceeds {max_chars}")
    message = load_json(text)
    if not isinstance(message, Mapping):
        raise ProtocolError("malformed_message", "a message must be a JSON object")
    return message


def dispatch(
    message: Mapping[str, Any], key: str, parsers: Mapping[str, Callable[[Mapping[str, Any]], F]], unknown: str
) -> F:
    """The frame of the parser that the message's `key` names; `ProtocolError(unknown)` when none does."""
    kind = message.get(key)
    parser = parsers.get(kind) if isinstance(kind, str) else None
    if parser is None:
        raise ProtocolError(unknown, f"{key} {str(kind)[:40]!r}")
    return parser(message)


def integer(value: Any, where: str) -> int:
    """A whole number as providers send it (an int, or a decimal string); `ProtocolError` otherwise."""
    if isinstance(value, bool):
        raise ProtocolError("malformed_message", f"'{where}' must be a number, got a boolean")
    if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
        raise ProtocolError("malformed_message", f"'{where}' must be a whole number, got {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    if isinstance(value, str) and _DECIMAL.fullmatch(value.strip()):
        return int(value)
    raise ProtocolError("malformed_message", f"'{where}' must be a decimal number, got {str(value)[:40]!r}")


def identifier(value: str, where: str, limit: int = MAX_ID_CHARS) -> str:
    """`value` if it is a usable identifier: at most `limit` characters, encodable as UTF-8 (no lone surrogates)."""
    if len(value) > limit:
        raise ProtocolError("malformed_message", f"'{where}' is {len(value)} characters, more than {limit}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError("malformed_message", f"'{where}' is not valid text") from None
    return value
