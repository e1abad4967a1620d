"""AudioHook wire format (protocol version 2) <-> typed messages; pure functions, no sockets, no sessions.

Genesys AudioHook: text frames are JSON objects with `version`, `type`, `seq`,
`id` (the session id) and `parameters`; the client adds `serverseq` (the last
server `seq` it saw) and `position`, the server adds `clientseq`. Binary frames
carry PCMU at 8 kHz, byte-interleaved in the order of the `channels` the server
accepted in `opened`; `external` is the customer, `internal` the agent.
Reference: https://developer.genesys.cloud/devapps/audiohook/protocol-reference
`AudioHookSerializer` is the `connectors.serializer.WireSerializer` of one
connection: it keeps the envelope counters and the media the server accepted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Union

from connectors.frames import ProtocolError
from connectors.speech.codec import deinterleave
from connectors.wire import identifier, load_json

VERSION = "2"
FORMAT = "PCMU"
RATE = 8000
CUSTOMER = "external"
AGENT = "internal"
KNOWN_CHANNELS = (CUSTOMER, AGENT)
MAX_TEXT_CHARS = 64_000
MAX_AUDIO_BYTES = 16_000  # one second of stereo PCMU; Genesys sends ~100-200 ms per frame
MAX_OFFERS = 8  # Genesys offers two or three formats; more are ignored


@dataclass(frozen=True)
class MediaFormat:
    """One media offer of `open`, or the one the server accepted."""

    type: str
    format: str
    channels: tuple[str, ...]
    rate: int

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "format": self.format, "channels": list(self.channels), "rate": self.rate}


@dataclass(frozen=True)
class Participant:
    """The customer's side of the conversation, as `open` describes it."""

    id: str
    ani: str | None = None
    dnis: str | None = None


@dataclass(frozen=True)
class Open:
    """The client starts a session for one conversation and offers media formats."""

    organization_id: str
    conversation_id: str
    participant: Participant
    media: tuple[MediaFormat, ...]
    language: str | None = None


@dataclass(frozen=True)
class Ping:
    """Keep-alive; answered with `pong`."""


@dataclass(frozen=True)
class Pause:
    """The client stops sending audio (e.g. the customer is on hold); answered with `paused`."""


@dataclass(frozen=True)
class Resume:
    """Audio flows again; answered with `resumed`."""


@dataclass(frozen=True)
class Update:
    """Session parameters changed (e.g. language)."""

    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    """An informational event from the client."""

    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class DtmfMessage:
    """A key pressed on the call (the digit only is kept)."""

    digit: str


@dataclass(frozen=True)
class Discarded:
    """The client dropped audio (buffer overrun); position and duration are informational."""

    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Close:
    """The client ends the session; answered with `closed`."""

    reason: str


@dataclass(frozen=True)
class ClientError:
    """The client reports an error."""

    code: int | None
    message: str


@dataclass(frozen=True)
class Unknown:
    """A message type this server does not know; logged and skipped (the protocol may grow)."""

    type: str


@dataclass(frozen=True)
class AudioFrame:
    """One binary frame, split into PCMU bytes per channel name."""

    channels: Mapping[str, bytes]


Body = Union[Open, Ping, Pause, Resume, Update, Event, DtmfMessage, Discarded, Close, ClientError, Unknown]


@dataclass(frozen=True)
class ClientMessage:
    """One client text message: the envelope fields plus the typed body."""

    type: str
    seq: int
    serverseq: int
    session_id: str
    position: str | None
    body: Body


@dataclass(frozen=True)
class ServerMessage:
    """A message to the client before the envelope (`seq`, `clientseq`, `id`) is added."""

    type: str
    parameters: Mapping[str, Any] = field(default_factory=dict)


def parse(text: str | bytes) -> ClientMessage:
    """Parse one client text message; raises `ProtocolError` naming what is wrong."""
    if isinstance(text, bytes):
        raise ProtocolError("unexpected_binary", "client messages are text frames; audio comes after `open`")
    if len(text) > MAX_TEXT_CHARS:
        raise ProtocolError("oversized_frame", f"text message of {len(text)} characters")
    data = load_json(text)
    if not isinstance(data, dict):
        raise ProtocolError("malformed_message", "a message must be a JSON object")
    if str(data.get("version")) != VERSION:
        raise ProtocolError("unsupported_version", f"version {data.get('version')!r}")
    kind = _string(data, "type")
    parameters = data.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ProtocolError("malformed_message", "'parameters' must be an object")
    return ClientMessage(
        type=kind,
        seq=_integer(data, "seq"),
        serverseq=_integer(data, "serverseq", 0),
        session_id=_string(data, "id"),
        position=data["position"][:64] if isinstance(data.get("position"), str) else None,
        body=_body(kind, parameters),
    )


def _body(kind: str, p: dict[str, Any]) -> Body:
    simple: dict[str, Body] = {"ping": Ping(), "pause": Pause(), "resume": Resume()}
    if kind in simple:
        return simple[kind]
    if kind == "open":
        return _open(p)
    if kind == "update":
        return Update(p)
    if kind == "event":
        return Event(p)
    if kind == "dtmf":
        return DtmfMessage(str(p.get("digit", ""))[:8])
    if kind == "discarded":
        return Discarded(p)
    if kind == "close":
        return Close(str(p.get("reason", "end"))[:200])
    if kind == "error":
        code = p.get("code")
        return ClientError(code if isinstance(code, int) else None, str(p.get("message", ""))[:200])
    return Unknown(kind)


def _open(p: dict[str, Any]) -> Open:
    participant = p.get("participant") or {}
    if not isinstance(participant, dict):
        raise ProtocolError("malformed_message", "'participant' must be an object")
    offers = p.get("media")
    if not isinstance(offers, list) or not offers:
        raise ProtocolError("malformed_message", "'media' must be a non-empty list of offers")
    return Open(
        organization_id=_string(p, "organizationId"),
        conversation_id=_string(p, "conversationId"),
        participant=Participant(
            id=identifier(str(participant.get("id") or ""), "participant.id"),
            ani=_optional(participant.get("ani"), "participant.ani"),
            dnis=_optional(participant.get("dnis"), "participant.dnis"),
        ),
        media=tuple(_media(offer) for offer in offers[:MAX_OFFERS]),
        language=_optional(p.get("language"), "language"),
    )


def _media(offer: Any) -> MediaFormat:
    if not isinstance(offer, dict) or not isinstance(offer.get("channels"), list):
        raise ProtocolError("malformed_message", "a media offer needs 'type', 'format', 'channels', 'rate'")
    rate = offer.get("rate")
    if isinstance(rate, bool) or not isinstance(rate, int):
        # Genesys sends the rate as a JSON number; "8k", 8000.5 or a list is a broken client.
        raise ProtocolError("malformed_message", f"a media offer's 'rate' must be an integer, got {str(rate)[:40]!r}")
    return MediaFormat(
        type=str(offer.get("type", ""))[:40],
        format=str(offer.get("format", ""))[:40],
        channels=tuple(str(c)[:40] for c in offer["channels"][: len(KNOWN_CHANNELS) + 1]),
        rate=rate,
    )


def choose_media(offers: tuple[MediaFormat, ...]) -> MediaFormat:
    """The first PCMU 8 kHz audio offer that carries the customer; else `unsupported_media`."""
    for offer in offers:
        usable = offer.type == "audio" and offer.format == FORMAT and offer.rate == RATE
        distinct = len(set(offer.channels)) == len(offer.channels)
        if usable and distinct and CUSTOMER in offer.channels and set(offer.channels) <= set(KNOWN_CHANNELS):
            return offer
    described = ", ".join(f"{o.type}/{o.format}/{o.rate}/{'+'.join(o.channels)}" for o in offers)
    raise ProtocolError("unsupported_media", f"no PCMU 8000 Hz offer with the external channel in [{described}]")


def split_audio(payload: bytes, media: MediaFormat) -> dict[str, bytes]:
    """One binary frame -> PCMU bytes per channel name (byte-interleaved in the accepted channel order)."""
    if len(payload) > MAX_AUDIO_BYTES:
        raise ProtocolError("oversized_frame", f"binary frame of {len(payload)} bytes")
    if len(media.channels) == 1:
        return {media.channels[0]: payload}
    return dict(zip(media.channels, deinterleave(payload, len(media.channels))))


def encode(message: ServerMessage, seq: int, clientseq: int, session_id: str) -> str:
    """The JSON text of a server message with its envelope."""
    return json.dumps(
        {
            "version": VERSION,
            "type": message.type,
            "seq": seq,
            "clientseq": clientseq,
            "id": session_id,
            "parameters": dict(message.parameters),
        }
    )


def opened(media: MediaFormat) -> ServerMessage:
    return ServerMessage("opened", {"startPaused": False, "media": [media.to_wire()]})


def reply(kind: str) -> ServerMessage:
    """The parameter-less answers: `pong`, `paused`, `resumed`, `closed`."""
    return ServerMessage(kind, {})


def disconnect(reason: str, info: str = "") -> ServerMessage:
    """Server-initiated end: reason is `completed`, `unauthorized` or `error`."""
    return ServerMessage("disconnect", {"reason": reason, "info": info[:200]})


def _string(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError("malformed_message", f"'{key}' must be a non-empty string")
    return identifier(value, key)


def _integer(data: Mapping[str, Any], key: str, default: int | None = None) -> int:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError("malformed_message", f"'{key}' must be an integer")
    return value


def _optional(value: Any, where: str) -> str | None:
    return identifier(str(value), where) if value not in (None, "") else None


@dataclass
class WireState:
    """What one AudioHook connection's wire needs from earlier messages: the accepted media (to split audio
    frames) and both sides' sequence numbers. Held by the connection (`connectors.audiohook.protocol`), handed
    to the serializer with each message, so the serializer itself keeps nothing between messages."""

    media: MediaFormat | None = None  # set when the server accepts an offer
    seq: int = 0  # the server's own counter
    clientseq: int = 0  # the last client seq accepted


class AudioHookSerializer:
    """Client messages and audio in, server messages out, for one AudioHook session id; holds no session state
    (`WireState` is the connection's)."""

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id

    def parse(self, data: str | bytes, state: WireState | None = None) -> ClientMessage | AudioFrame:
        """A client message, or an audio frame split by the media `state` accepted."""
        if isinstance(data, bytes):
            media = state.media if state is not None else None
            if media is None:
                raise ProtocolError("audio_before_open", f"{len(data)} bytes of audio before `open`")
            return AudioFrame(split_audio(data, media))
        return parse(data)

    def encode(self, message: ServerMessage, state: WireState | None = None) -> str:
        """The message's text with the server seq and the last client seq of `state` (the caller counts)."""
        state = state if state is not None else WireState(seq=1)
        return encode(message, state.seq, state.clientseq, self.session_id)
