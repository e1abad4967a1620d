"""The video chat page's wire messages: every inbound shape, every outbound shape, and what is refused."""

from __future__ import annotations

import json
from typing import Any

import pytest

from connectors.frames import ProtocolError
from connectors.video import serializer
from connectors.video.frames import (
    BotOut,
    CameraAnswer,
    CameraOff,
    CameraOffer,
    CameraStatus,
    ChatIn,
    ErrorOut,
    Hello,
    Ready,
)

SDP = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n"


@pytest.mark.parametrize(
    ("message", "frame"),
    [
        ({"type": "hello", "customer_id": "web-1f3a9c"}, Hello("web-1f3a9c")),
        ({"type": "chat", "text": "  my internet is down again "}, ChatIn("my internet is down again")),
        ({"type": "offer", "sdp": SDP}, CameraOffer(SDP)),
        ({"type": "camera_off"}, CameraOff()),
    ],
)
def test_page_messages_become_frames(message: dict[str, Any], frame: object) -> None:
    assert serializer.parse(json.dumps(message)) == frame


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "malformed_message"),
        ('{"type": "dance"}', "unknown_type"),
        ('{"kind": "chat"}', "unknown_type"),
        ('{"type": "chat"}', "malformed_message"),
        ('{"type": "chat", "text": "   "}', "malformed_message"),
        ('{"type": "chat", "text": 42}', "malformed_message"),
        (json.dumps({"type": "chat", "text": "x" * 2001}), "malformed_message"),
        ('{"type": "hello", "customer_id": "a b"}', "malformed_message"),
        (json.dumps({"type": "hello", "customer_id": "c" * 65}), "malformed_message"),
        ('{"type": "offer", "sdp": "hello"}', "malformed_message"),
        (json.dumps({"type": "chat", "text": "x" * (64 * 1024)}), "oversized_message"),
    ],
)
def test_malformed_messages_are_refused_with_a_code(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as exc:
        serializer.parse(text)
    assert exc.value.code == code


def test_binary_messages_are_refused() -> None:
    with pytest.raises(ProtocolError) as exc:
        serializer.parse(b"\x00\x01")
    assert exc.value.code == "unexpected_binary"


@pytest.mark.parametrize(
    ("frame", "wire"),
    [
        (Ready("video-1", face=True), {"type": "ready", "session_id": "video-1", "face": True}),
        (CameraAnswer(SDP), {"type": "answer", "sdp": SDP}),
        (CameraStatus("on", 12, 9), {"type": "camera", "state": "on", "frames": 12, "faces": 9}),
        (
            BotOut(("Sorry to hear that.",), "empathetic", False, {"label": "sad", "confidence": 0.4}),
            {
                "type": "bot",
                "texts": ["Sorry to hear that."],
                "tone": "empathetic",
                "handoff": False,
                "face": {"label": "sad", "confidence": 0.4},
            },
        ),
        (BotOut(("Hi",)), {"type": "bot", "texts": ["Hi"], "tone": "neutral", "handoff": False, "face": None}),
        (ErrorOut("unknown_type", "type 'dance'"), {"type": "error", "code": "unknown_type", "detail": "type 'dance'"}),
    ],
)
def test_frames_become_page_messages(frame: object, wire: dict[str, Any]) -> None:
    assert json.loads(serializer.serialize(frame)) == wire  # type: ignore[arg-type]
