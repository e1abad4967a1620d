"""Twilio Media Streams wire messages <-> frames, as pure functions.

Message shapes follow https://www.twilio.com/docs/voice/media-streams/websocket-messages
(inbound: connected, start, media, dtmf, mark, stop; outbound: media, mark, clear).
Twilio sends `sequenceNumber`, `chunk` and `timestamp` as decimal strings.
Provider dict lookups never leave this module. `TwilioSerializer` is the
`connectors.serializer.CallSerializer` of one stream.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Callable, Mapping

from connectors.frames import (
    AudioIn,
    AudioOut,
    CallStart,
    CallStop,
    Clear,
    Connected,
    Dtmf,
    InboundFrame,
    Mark,
    MarkPlayed,
    OutboundFrame,
    ProtocolError,
    ProviderIds,
)
from connectors.wire import dispatch, identifier, integer, json_object

ENCODING = "audio/x-mulaw"
SAMPLE_RATE = 8000
# 20 ms of 8 kHz mu-law is 160 bytes; Twilio never sends more than a few hundred ms at once.
MAX_PAYLOAD_BYTES = 8000
MAX_MESSAGE_CHARS = 64 * 1024
CUSTOMER_PARAMETER = "caller"
PROVIDER = "twilio"
TRACKS = ("inbound", "inbound_track")  # what Twilio calls the caller's audio (media and dtmf messages)


def _obj(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ProtocolError("malformed_message", f"'{where}' must be an object")
    return value


def _str(block: Mapping[str, Any], key: str, where: str) -> str:
    value = block.get(key)
    if not isinstance(value, str) or not value:
        raise ProtocolError("malformed_message", f"'{where}.{key}' must be a non-empty string")
    return identifier(value, f"{where}.{key}")


def _int(value: Any, where: str) -> int | None:
    return None if value is None else integer(value, where)


def parse(text: str | bytes) -> InboundFrame:
    """One Twilio message -> a frame; raises `ProtocolError` on anything Twilio would not send."""
    if isinstance(text, bytes):
        raise ProtocolError("unexpected_binary", "Twilio Media Streams sends text frames only")
    return dispatch(json_object(text, MAX_MESSAGE_CHARS), "event", _PARSERS, "unknown_event")


def _connected(message: Mapping[str, Any]) -> Connected:
    return Connected(protocol=str(message.get("protocol", "")), version=str(message.get("version", "")))


def _start(message: Mapping[str, Any]) -> CallStart:
    start = _obj(message.get("start"), "start")
    media_format = _obj(start.get("mediaFormat"), "start.mediaFormat")
    params = start.get("customParameters") or {}
    params = {str(k): str(v) for k, v in _obj(params, "start.customParameters").items()}
    tracks = start.get("tracks") or ["inbound"]
    caller = params.get(CUSTOMER_PARAMETER) or None
    return CallStart(
        stream_id=_str(start, "streamSid", "start"),
        call_id=_str(start, "callSid", "start"),
        provider=ProviderIds(PROVIDER, account=str(start.get("accountSid", ""))[:64]),
        customer_id=None if caller is None else identifier(caller, f"customParameters.{CUSTOMER_PARAMETER}"),
        encoding=str(media_format.get("encoding", "")),
        sample_rate=_int(media_format.get("sampleRate"), "start.mediaFormat.sampleRate") or 0,
        channels=_int(media_format.get("channels"), "start.mediaFormat.channels") or 0,
        tracks=tuple(str(t) for t in tracks) if isinstance(tracks, list) else (),
        parameters=params,
        sequence=_int(message.get("sequenceNumber"), "sequenceNumber"),
    )


def _media(message: Mapping[str, Any]) -> AudioIn:
    media = _obj(message.get("media"), "media")
    payload = media.get("payload")
    if not isinstance(payload, str):
        raise ProtocolError("malformed_message", "'media.payload' must be a base64 string")
    if len(payload) > MAX_PAYLOAD_BYTES * 4 // 3 + 4:
        raise ProtocolError("oversized_frame", f"media payload of {len(payload)} base64 characters")
    try:
        audio = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise ProtocolError("malformed_message", "'media.payload' is not valid base64") from None
    return AudioIn(
        payload=audio,
        sequence=_int(message.get("sequenceNumber"), "sequenceNumber"),
        timestamp_ms=_int(media.get("timestamp"), "media.timestamp"),
        track=str(media.get("track", "inbound")),
    )


def _dtmf(message: Mapping[str, Any]) -> Dtmf:
    dtmf = _obj(message.get("dtmf"), "dtmf")
    return Dtmf(digit=_str(dtmf, "digit", "dtmf"), sequence=_int(message.get("sequenceNumber"), "sequenceNumber"))


def _mark(message: Mapping[str, Any]) -> MarkPlayed:
    mark = _obj(message.get("mark"), "mark")
    return MarkPlayed(name=_str(mark, "name", "mark"), sequence=_int(message.get("sequenceNumber"), "sequenceNumber"))


def _stop(message: Mapping[str, Any]) -> CallStop:
    return CallStop(reason="stop", sequence=_int(message.get("sequenceNumber"), "sequenceNumber"))


_PARSERS: dict[str, Callable[[Mapping[str, Any]], InboundFrame]] = {
    "connected": _connected,
    "start": _start,
    "media": _media,
    "dtmf": _dtmf,
    "mark": _mark,
    "stop": _stop,
}


def serialize(frame: OutboundFrame, stream_sid: str) -> str:
    """An outbound frame -> the JSON text Twilio expects on the stream `stream_sid`."""
    if isinstance(frame, AudioOut):
        body: dict[str, Any] = {"media": {"payload": base64.b64encode(frame.payload).decode("ascii")}}
        event = "media"
    elif isinstance(frame, Mark):
        body, event = {"mark": {"name": frame.name}}, "mark"
    elif isinstance(frame, Clear):
        body, event = {}, "clear"
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(f"cannot serialise {type(frame).__name__}")
    return json.dumps({"event": event, "streamSid": stream_sid, **body}, separators=(",", ":"))


def check_media_format(start: CallStart) -> None:
    """Refuse a stream whose codec is not 8 kHz mono mu-law (the only one bidirectional streams carry)."""
    if (start.encoding, start.sample_rate, start.channels) != (ENCODING, SAMPLE_RATE, 1):
        raise ProtocolError(
            "unsupported_codec",
            f"expected {ENCODING} {SAMPLE_RATE} Hz mono, got {start.encoding} {start.sample_rate} Hz x{start.channels}",
        )


class TwilioSerializer:
    """The `CallSerializer` of Twilio Media Streams (outbound messages carry the stream SID of the call's start,
    which the call's stream hands in: the serializer keeps nothing)."""

    def parse(self, data: str | bytes) -> InboundFrame:
        return parse(data)

    def accept(self, start: CallStart) -> None:
        check_media_format(start)

    def encode(self, frame: OutboundFrame, start: CallStart | None = None) -> str:
        return serialize(frame, start.stream_id if start is not None else "")
