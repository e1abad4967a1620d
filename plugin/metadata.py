"""The `toneline` block of a user message's metadata: what connectors send with a turn.

    {"toneline": {"customer_id": "c-42", "channel": "twilio", "role": "customer",
                  "voice": {EmotionEstimate dict}, "face": {EmotionEstimate dict}}}

Parsing never raises: each bad part is dropped with a warning naming it, so a
malformed estimate costs that modality, never the turn.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from models.emotion import EmotionEstimate, InvalidEstimate, Modality
from models.logs import log_event

logger = logging.getLogger(__name__)
METADATA_KEY = "toneline"
AGENT_ROLE = "agent"
MAX_ID_CHARS = 128  # customer and conversation ids: UUIDs, phone numbers, CRM keys
_CHANNEL = re.compile(r"[a-z0-9_.-]{1,32}")  # channel names go into rollup field names: short tokens only
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")


@dataclass(frozen=True)
class TurnMetadata:
    """Validated contents of the `toneline` metadata block."""

    customer_id: str | None = None
    channel: str | None = None
    role: str = "customer"
    estimates: tuple[EmotionEstimate, ...] = field(default_factory=tuple)
    problems: tuple[str, ...] = ()

    @property
    def is_agent(self) -> bool:
        return self.role == AGENT_ROLE


def _optional_str(block: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value = block.get(key)
    if value is None or isinstance(value, str):
        return value
    problems.append(f"'{key}' must be a string")
    return None


def _usable_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a JSON escape
        return False
    return bool(_PRINTABLE.fullmatch(value))


def _customer_id(block: Mapping[str, Any], problems: list[str]) -> str | None:
    value = _optional_str(block, "customer_id", problems)
    if value is None or (len(value) <= MAX_ID_CHARS and _usable_text(value)):
        return value
    problems.append(f"'customer_id' must be printable text of at most {MAX_ID_CHARS} characters")
    return None


def _channel(block: Mapping[str, Any], problems: list[str]) -> str | None:
    value = _optional_str(block, "channel", problems)
    if value is None or _CHANNEL.fullmatch(value):
        return value
    problems.append("'channel' must be 1 to 32 of a-z 0-9 _ . -")
    return None


def bounded_id(value: str, what: str = "conversation_id") -> str:
    """`value` if short enough to be a key; else a prefix plus a hash of the whole (logged).

    Rasa accepts sender ids of any length; Toneline's Redis keys, streams and the
    dashboard must not grow with them. The hash keeps distinct ids distinct.
    """
    if len(value) <= MAX_ID_CHARS and _usable_text(value):
        return value
    raw = value.encode("utf-8", "surrogatepass")
    prefix = "".join(ch for ch in value[:96] if ch.isprintable()).encode("utf-8", "replace").decode("utf-8")
    bounded = f"{prefix}~{hashlib.sha256(raw).hexdigest()[:24]}"
    log_event(logger, logging.WARNING, "toneline.id.truncated", what=what, length=len(value), bounded_to=bounded)
    return bounded


def parse(metadata: Any, message_id: str | None = None, *, log: bool = True) -> TurnMetadata:
    """Read the `toneline` block of message metadata, dropping bad parts (logged when `log`)."""
    if not isinstance(metadata, Mapping) or METADATA_KEY not in metadata:
        return TurnMetadata()
    block = metadata[METADATA_KEY]
    if not isinstance(block, Mapping):
        if log:
            log_event(
                logger,
                logging.WARNING,
                "toneline.metadata.malformed",
                message_id=message_id,
                problem=f"'{METADATA_KEY}' must be an object, got {type(block).__name__}",
            )
        return TurnMetadata(problems=(f"'{METADATA_KEY}' is not an object",))
    problems: list[str] = []
    estimates = []
    for modality in (Modality.VOICE, Modality.FACE):
        if modality.value not in block or block[modality.value] is None:
            continue
        try:
            estimates.append(EmotionEstimate.from_dict(block[modality.value], modality=modality))
        except InvalidEstimate as exc:
            problems.append(f"{modality.value}: {exc}")
    role = _optional_str(block, "role", problems) or "customer"
    parsed = TurnMetadata(
        customer_id=_customer_id(block, problems),
        channel=_channel(block, problems),
        role=role,
        estimates=tuple(estimates),
        problems=tuple(problems),
    )
    for problem in problems if log else ():
        log_event(logger, logging.WARNING, "toneline.metadata.malformed", message_id=message_id, problem=problem)
    return parsed
