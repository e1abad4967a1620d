"""Vonage Voice API WebSocket messages <-> frames, for one connection.

https://developer.vonage.com/en/voice/voice-api/concepts/websockets : after the
upgrade Vonage sends one text message `{"event": "websocket:connected",
"content-type": "audio/l16;rate=16000", ...}` carrying the `headers` the NCCO's
websocket endpoint set (here `call_uuid`, `conversation_uuid`, `caller`), then
the caller's audio as binary frames of 16-bit little-endian linear PCM (640
bytes = 20 ms at 16 kHz). Text events: `websocket:dtmf` (`digit`),
`websocket:notify` (the `payload` of our `notify`, sent back when the audio
before it has played) and `websocket:cleared` (our `clear` emptied the buffer).
The bot sends audio as binary frames of the same format, `{"action": "notify",
"payload": {...}}` as a mark and `{"action": "clear"}` to barge in.
Provider dict lookups never leave this module.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from connectors.frames import (
    AudioIn,
    AudioOut,
    CallStart,
    Clear,
    Dtmf,
    InboundFrame,
    Mark,
    MarkPlayed,
    OutboundFrame,
    PlaybackCleared,
    ProtocolError,
    ProviderIds,
)
from connectors.wire import identifier, json_object

PROVIDER = "vonage"
TRACKS = ("inbound",)  # the one audio stream Vonage sends a websocket endpoint: the call's other leg
ENCODING = "audio/l16"
SAMPLE_RATE = 16000
CONTENT_TYPE = f"{ENCODING};rate={SAMPLE_RATE}"
CALL_HEADER = "call_uuid"  # headers our answer webhook puts into the NCCO; Vonage repeats them in the first message
CONVERSATION_HEADER = "conversation_uuid"
CUSTOMER_HEADER = "caller"
MAX_TEXT_CHARS = 16 * 1024  # Vonage limits the NCCO headers to a few kB
MAX_AUDIO_BYTES = 32_000  # one second at 16 kHz; Vonage sends 20 ms frames
MARK_KEY = "mark"


def parse(data: str | bytes) -> InboundFrame:
    """One Vonage message -> a frame; raises `ProtocolError` on anything Vonage would not send."""
    if isinstance(data, bytes):
        if len(data) > MAX_AUDIO_BYTES:
            raise ProtocolError("oversized_frame", f"binary frame of {len(data)} bytes")
        return AudioIn(payload=data, sequence=None, timestamp_ms=None, track=TRACKS[0])
    message = json_object(data, MAX_TEXT_CHARS)
    event = message.get("event")
    if event == "websocket:connected":
        return _connected(message)
    if event == "websocket:dtmf":
        return Dtmf(digit=_text(message, "digit"))
    if event == "websocket:notify":
        payload = message.get("payload")
        if not isinstance(payload, Mapping):
            raise ProtocolError("malformed_message", "'payload' must be an object")
        return MarkPlayed(name=_text(payload, MARK_KEY))
    if event == "websocket:cleared":
        return PlaybackCleared()
    raise ProtocolError("unknown_event", f"event {str(event)[:40]!r}")


def _connected(message: Mapping[str, Any]) -> CallStart:
    content_type = _text(message, "content-type")
    encoding, _, rate = content_type.partition(";rate=")
    headers = {str(k): v for k, v in message.items() if isinstance(v, str) and k not in ("event", "content-type")}
    call = _text(message, CALL_HEADER)
    caller = headers.get(CUSTOMER_HEADER) or None
    return CallStart(
        stream_id=call,
        call_id=call,
        provider=ProviderIds(PROVIDER, conversation=identifier(headers.get(CONVERSATION_HEADER, ""), "conversation")),
        customer_id=None if caller is None else identifier(caller, CUSTOMER_HEADER),
        encoding=encoding.strip().lower(),
        sample_rate=int(rate) if rate.isascii() and rate.isdigit() and len(rate) < 7 else 0,
        channels=1,
        tracks=TRACKS,
        parameters={k: v[:200] for k, v in list(headers.items())[:16]},
    )


def _text(block: Mapping[str, Any], key: str) -> str:
    value = block.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError("malformed_message", f"'{key}' must be a non-empty string")
    return identifier(value, key)


def encode(frame: OutboundFrame) -> str | bytes:
    """An outbound frame -> what Vonage expects: audio as a binary frame, control as JSON text."""
    if isinstance(frame, AudioOut):
        return frame.payload
    if isinstance(frame, Mark):
        return json.dumps({"action": "notify", "payload": {MARK_KEY: frame.name}}, separators=(",", ":"))
    if isinstance(frame, Clear):
        return json.dumps({"action": "clear"}, separators=(",", ":"))
    raise TypeError(f"cannot serialise {type(frame).__name__}")  # pragma: no cover - the union is exhaustive


class VonageSerializer:
    """The `CallSerializer` of one Vonage WebSocket; `expected_call` is the call the signed upgrade URL named."""

    def __init__(self, expected_call: str | None = None) -> None:
        self.expected_call = expected_call

    def parse(self, data: str | bytes) -> InboundFrame:
        return parse(data)

    def accept(self, start: CallStart) -> None:
        """Only 16 kHz mono L16 (what our NCCO asks for), and only the call the upgrade was signed for."""
        if (start.encoding, start.sample_rate, start.channels) != (ENCODING, SAMPLE_RATE, 1):
            raise ProtocolError(
                "unsupported_codec", f"expected {CONTENT_TYPE}, got {start.encoding} at {start.sample_rate} Hz"
            )
        if self.expected_call is not None and start.call_id != self.expected_call:
            raise ProtocolError("wrong_call", "the stream's call_uuid differs from the signed upgrade's")

    def encode(self, frame: OutboundFrame, start: CallStart | None = None) -> str | bytes:
        return encode(frame)  # Vonage's messages name no call: the socket is the call
