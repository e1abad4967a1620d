"""The `toneline` block of a user message's metadata: what connectors send with a turn.

    {"toneline": {"customer_id": "c-42", "channel": "twilio", "role": "customer",
                  "voice": {EmotionEstimate dict}, "face": {EmotionEstimate dict}}}

Parsing never raises: each bad part is dropped with a warning naming it, so a
malformed estimate costs that modality, never the turn.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Mapping

from models.emotion import EmotionEstimate, InvalidEstimate, Modality
from models.logs import log_event

logger = logging.getLogger(__name__)
METADATA_KEY = "toneline"
AGENT_ROLE = "agent"


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
        customer_id=_optional_str(block, "customer_id", problems),
        channel=_optional_str(block, "channel", problems),
        role=role,
        estimates=tuple(estimates),
        problems=tuple(problems),
    )
    for problem in problems if log else ():
        log_event(logger, logging.WARNING, "toneline.metadata.malformed", message_id=message_id, problem=problem)
    return parsed
