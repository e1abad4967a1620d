"""The video chat page's WebSocket messages <-> frames, as pure functions.

Inbound (page -> server), one JSON object per text message:

    {"type": "hello", "customer_id": "c-1f3a..."}
    {"type": "chat", "text": "my internet is down again"}
    {"type": "offer", "sdp": "v=0 ..."}        # the camera opt-in; sent only after the customer clicked
    {"type": "camera_off"}

Outbound (server -> page): `ready`, `answer`, `camera` (state, frames, faces), `bot` (texts, tone,
handoff, face) and `error` (code, detail). Dict lookups on the wire never leave this module.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Mapping

from connectors.frames import ProtocolError
from connectors.video.frames import (
    BotOut,
    CameraAnswer,
    CameraOff,
    CameraOffer,
    CameraStatus,
    ChatIn,
    ErrorOut,
    Hello,
    InboundFrame,
    OutboundFrame,
    Ready,
)
from connectors.wire import dispatch, json_object

MAX_MESSAGE_CHARS = 64 * 1024  # an SDP offer is 2 to 8 kB; nothing the page sends comes near this
MAX_TEXT_CHARS = 2000
MAX_CUSTOMER_ID = 64
_CUSTOMER_ID = re.compile(r"^[A-Za-z0-9_.:@+-]+$")


def _str(message: Mapping[str, Any], key: str, limit: int) -> str:
    value = message.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError("malformed_message", f"'{key}' must be a non-empty string")
    if len(value) > limit:
        raise ProtocolError("malformed_message", f"'{key}' is {len(value)} characters, more than {limit}")
    try:
        value.encode("utf-8")  # JSON escapes can carry lone surrogates, which nothing downstream can encode
    except UnicodeEncodeError:
        raise ProtocolError("malformed_message", f"'{key}' is not valid text") from None
    return value


def parse(text: str | bytes) -> InboundFrame:
    """One page message -> a frame; raises `ProtocolError` (with a code) on anything the page would not send."""
    if isinstance(text, bytes):
        raise ProtocolError("unexpected_binary", "the page sends JSON text messages only")
    return dispatch(json_object(text, MAX_MESSAGE_CHARS, "oversized_message"), "type", _PARSERS, "unknown_type")


def _hello(message: Mapping[str, Any]) -> Hello:
    customer = _str(message, "customer_id", MAX_CUSTOMER_ID).strip()
    if not _CUSTOMER_ID.match(customer):
        raise ProtocolError("malformed_message", "'customer_id' may hold letters, digits and _.:@+- only")
    return Hello(customer)


def _chat(message: Mapping[str, Any]) -> ChatIn:
    return ChatIn(_str(message, "text", MAX_TEXT_CHARS).strip())


def _offer(message: Mapping[str, Any]) -> CameraOffer:
    sdp = _str(message, "sdp", MAX_MESSAGE_CHARS)
    if not sdp.startswith("v=0"):
        raise ProtocolError("malformed_message", "'sdp' is not a session description")
    return CameraOffer(sdp)


_PARSERS: dict[str, Callable[[Mapping[str, Any]], InboundFrame]] = {
    "hello": _hello,
    "chat": _chat,
    "offer": _offer,
    "camera_off": lambda _: CameraOff(),
}


def serialize(frame: OutboundFrame) -> str:
    """An outbound frame -> the JSON text the page reads."""
    body: dict[str, Any]
    if isinstance(frame, Ready):
        body = {"type": "ready", "session_id": frame.session_id, "face": frame.face}
    elif isinstance(frame, CameraAnswer):
        body = {"type": "answer", "sdp": frame.sdp}
    elif isinstance(frame, CameraStatus):
        body = {"type": "camera", "state": frame.state, "frames": frame.frames, "faces": frame.faces}
    elif isinstance(frame, BotOut):
        body = {"type": "bot", "texts": list(frame.texts), "tone": frame.tone, "handoff": frame.handoff}
        body["face"] = dict(frame.face) if frame.face is not None else None
    elif isinstance(frame, ErrorOut):
        body = {"type": "error", "code": frame.code, "detail": frame.detail}
    else:  # pragma: no cover - the union is exhaustive
        raise TypeError(f"cannot serialise {type(frame).__name__}")
    return json.dumps(body, separators=(",", ":"))


class VideoSerializer:
    """The video page's wire format behind the one serializer protocol (`connectors.serializer.WireSerializer`);
    it holds nothing between messages (the page's session does: `connectors.video.session`)."""

    def parse(self, data: str | bytes) -> InboundFrame:
        """One page message -> a frame, or `ProtocolError` with a code."""
        return parse(data)

    def encode(self, frame: OutboundFrame) -> str:
        """One outbound frame -> the JSON text the page reads."""
        return serialize(frame)
