"""The turn's contract, in one place: what connectors send with a turn and what the plugin gives back.

In, the `toneline` block of a user message's metadata (`TurnMetadata.to_dict` writes it, `parse` reads it):

    {"toneline": {"customer_id": "c-42", "channel": "twilio", "role": "customer", "call_id": "CA...",
                  "voice": {EmotionEstimate dict}, "face": {EmotionEstimate dict},
                  "opt_out": true | false, "disclosed": true}}

`opt_out` (optional) is a connector's or CRM's word on the customer's choice: true opts the
customer out of emotion analysis from this turn on, false opts them back in (`plugin.consent`).
`disclosed: true` says the connector already gave the customer the emotion-analysis notice
(spoken on the phone, shown on the video page), so the bot does not repeat it. `turn_ref`
(optional) names the turn's voice features a connector kept for adaptation (`plugin.corrections`).

Out, in the parse data (written once per turn by `plugin.nlu.EmotionRecognizer`):
`PARSE_KEY` holds the fused `TurnEmotion` dict, `TURN_KEY` who and where the turn
came from, so nothing downstream parses the metadata again. The reply's tone
is the slot named in `SlotNames` (configurable in the policy); `HANDOFF_RESPONSE`
is the response that announces a handoff; `EVENT_TURN` and `EVENT_ESCALATION`
are the `type`s of the entries on the events stream.

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
METADATA_KEY = "toneline"  # the block in a user message's metadata
PARSE_KEY = "toneline"  # the fused TurnEmotion in the parse data
TURN_KEY = "toneline_turn"  # the turn's identity (TurnMetadata.identity) in the parse data
CONSENT_KEY = "toneline_consent"  # the customer's consent as this turn left it (plugin.consent.Reading)
CUSTOMER_ROLE = "customer"
AGENT_ROLE = "agent"
HANDOFF_RESPONSE = "utter_handoff"  # the response that announces a handoff, on every channel
HANDOFF_ACTION = "action_handoff"
NEUTRAL_TONE = "neutral"  # the tone of a reply written for no tone in particular
EVENT_TURN = "turn"  # `type` of a recorded turn on the events stream (plugin/state.py writes both)
EVENT_ESCALATION = "escalation"
EVENT_CONSENT = "consent"  # a customer opted out of emotion analysis or back in
DISCLOSURE_KEY = "toneline_disclosure"  # in a bot message's metadata: this message is the emotion-analysis notice
MAX_ID_CHARS = 128  # customer and conversation ids: UUIDs, phone numbers, CRM keys
_CHANNEL = re.compile(r"[a-z0-9_.-]{1,32}")  # channel names go into rollup field names: short tokens only
_PRINTABLE = re.compile(r"[^\x00-\x1f\x7f]+")
_REF = re.compile(r"[A-Za-z0-9_-]{1,64}")


@dataclass(frozen=True)
class TurnMetadata:
    """Validated contents of the `toneline` metadata block."""

    customer_id: str | None = None
    channel: str | None = None
    role: str = CUSTOMER_ROLE
    estimates: tuple[EmotionEstimate, ...] = field(default_factory=tuple)
    problems: tuple[str, ...] = ()
    call_id: str | None = None  # the connector's id of the call or session (logs only)
    opt_out: bool | None = None  # True: opt out from this turn on; False: opt back in; None: not said
    disclosed: bool = False  # the connector gave the emotion-analysis notice itself
    turn_ref: str | None = None  # where the connector kept this turn's voice features for adaptation

    @property
    def is_agent(self) -> bool:
        return self.role == AGENT_ROLE

    def to_dict(self) -> dict[str, Any]:
        """The message metadata that `parse` reads back as this (estimates without embeddings)."""
        block: dict[str, Any] = {"role": self.role}
        for key, value in (("customer_id", self.customer_id), ("channel", self.channel), ("call_id", self.call_id)):
            if value is not None:
                block[key] = value
        for estimate in self.estimates:
            block[estimate.modality.value] = estimate.to_dict(with_embedding=False)
        if self.opt_out is not None:
            block["opt_out"] = self.opt_out
        if self.disclosed:
            block["disclosed"] = True
        if self.turn_ref is not None:
            block["turn_ref"] = self.turn_ref
        return {METADATA_KEY: block}

    def identity(self) -> dict[str, str | None]:
        """Who and where, for the parse data (`TURN_KEY`): what the policy and the handoff action need."""
        return {"customer_id": self.customer_id, "channel": self.channel, "role": self.role}

    @classmethod
    def from_identity(cls, data: Any) -> TurnMetadata:
        """Read back `identity()` from the parse data (anything else: an empty identity)."""
        if not isinstance(data, Mapping):
            return cls()
        problems: list[str] = []
        role = _optional_str(data, "role", problems) or CUSTOMER_ROLE
        return cls(_customer_id(data, problems), _channel(data, problems), role)


@dataclass(frozen=True)
class SlotNames:
    """The domain slots the policy sets; the connector reads the reply's tone from a response conditioned on `tone`."""

    tone: str = "toneline_tone"
    emotion: str = "toneline_emotion"
    reason: str = "toneline_escalation_reason"
    handed_off: str = "handed_off"  # set by action_handoff


def _optional(block: Mapping[str, Any], key: str, kind: type, expected: str, problems: list[str]) -> Any:
    value = block.get(key)
    if value is None or isinstance(value, kind):
        return value
    problems.append(f"'{key}' must be {expected}")
    return None


def _optional_str(block: Mapping[str, Any], key: str, problems: list[str]) -> str | None:
    value: str | None = _optional(block, key, str, "a string", problems)
    return value


def _optional_bool(block: Mapping[str, Any], key: str, problems: list[str]) -> bool | None:
    value: bool | None = _optional(block, key, bool, "true or false", problems)
    return value


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
    role = _optional_str(block, "role", problems) or CUSTOMER_ROLE
    call_id = _optional_str(block, "call_id", problems)
    opt_out = _optional_bool(block, "opt_out", problems)
    disclosed = bool(_optional_bool(block, "disclosed", problems))
    turn_ref = _optional_str(block, "turn_ref", problems)
    if turn_ref is not None and not _REF.fullmatch(turn_ref):
        problems.append("'turn_ref' must be 1 to 64 of A-Z a-z 0-9 _ -")
        turn_ref = None
    parsed = TurnMetadata(
        customer_id=_customer_id(block, problems),
        channel=_channel(block, problems),
        role=role,
        estimates=tuple(estimates),
        problems=tuple(problems),
        call_id=None if call_id is None else bounded_id(call_id, "call_id"),
        opt_out=opt_out,
        disclosed=disclosed,
        turn_ref=turn_ref,
    )
    for problem in problems if log else ():
        log_event(logger, logging.WARNING, "toneline.metadata.malformed", message_id=message_id, problem=problem)
    return parsed
