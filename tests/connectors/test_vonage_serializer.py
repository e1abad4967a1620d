"""Vonage Voice API WebSocket messages as Vonage documents them <-> frames; signed webhooks and stream URLs."""

from __future__ import annotations

import hashlib
import json

import jwt
import pytest

from connectors.frames import (
    AudioIn,
    AudioOut,
    CallStart,
    Clear,
    Dtmf,
    Mark,
    MarkPlayed,
    PlaybackCleared,
    ProtocolError,
)
from connectors.vonage import serializer, signature
from connectors.vonage.rest import VonageTransferTarget
from tests.connectors.fuzz import batch, outcome

CALL = "63f61863-4a51-4f6b-86e1-46edebcf9356"
# Shapes from https://developer.vonage.com/en/voice/voice-api/concepts/websockets (headers are the NCCO's own).
CONNECTED = json.dumps(
    {
        "event": "websocket:connected",
        "content-type": "audio/l16;rate=16000",
        "call_uuid": CALL,
        "conversation_uuid": "CON-7d2f1b0e-5a5c-4a37-9c1e-8f4d7a2b9c10",
        "caller": "447700900000",
    }
)
DTMF = json.dumps({"event": "websocket:dtmf", "digit": "5", "duration": 260})
NOTIFY = json.dumps({"event": "websocket:notify", "payload": {"mark": "reply-3"}})
CLEARED = json.dumps({"event": "websocket:cleared"})
CODES = {"malformed_json", "too_deep", "malformed_message", "oversized_frame", "unknown_event"}


def test_recorded_messages_parse_to_frames() -> None:
    start = serializer.parse(CONNECTED)
    assert isinstance(start, CallStart)
    assert (start.call_id, start.customer_id, start.provider.conversation) == (
        CALL,
        "447700900000",
        "CON-7d2f1b0e-5a5c-4a37-9c1e-8f4d7a2b9c10",
    )
    serializer.VonageSerializer(expected_call=CALL).accept(start)
    assert serializer.parse(b"\x00\x01" * 320) == AudioIn(b"\x00\x01" * 320, None, None, "inbound")
    assert serializer.parse(DTMF) == Dtmf("5")
    assert serializer.parse(NOTIFY) == MarkPlayed("reply-3")
    assert serializer.parse(CLEARED) == PlaybackCleared()


def test_outbound_frames_are_binary_audio_and_json_actions() -> None:
    assert serializer.encode(AudioOut(b"\x01\x02" * 320)) == b"\x01\x02" * 320
    assert json.loads(serializer.encode(Mark("reply-1"))) == {"action": "notify", "payload": {"mark": "reply-1"}}
    assert json.loads(serializer.encode(Clear())) == {"action": "clear"}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "malformed_json"),
        ("[1]", "malformed_message"),
        ('{"event": "websocket:connected", "call_uuid": "x"}', "malformed_message"),
        ('{"event": "websocket:connected", "content-type": "audio/l16;rate=16000"}', "malformed_message"),
        ('{"event": "websocket:notify", "payload": "reply-1"}', "malformed_message"),
        ('{"event": "websocket:dtmf"}', "malformed_message"),
        ('{"event": "websocket:media:update"}', "unknown_event"),
        (b"\x00" * (serializer.MAX_AUDIO_BYTES + 2), "oversized_frame"),
        ("x" * (serializer.MAX_TEXT_CHARS + 1), "oversized_frame"),
    ],
)
def test_bad_messages_raise_a_named_protocol_error(message: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        serializer.parse(message)
    assert raised.value.code == code


@pytest.mark.parametrize("content_type", ["audio/l16;rate=8000", "audio/l16;rate=²", "audio/pcmu;rate=16000"])
def test_a_stream_in_another_codec_is_refused(content_type: str) -> None:
    start = serializer.parse(json.dumps({**json.loads(CONNECTED), "content-type": content_type}))
    assert isinstance(start, CallStart)
    with pytest.raises(ProtocolError, match="unsupported_codec"):
        serializer.VonageSerializer().accept(start)


def test_a_stream_for_another_call_than_the_signed_one_is_refused() -> None:
    start = serializer.parse(CONNECTED)
    assert isinstance(start, CallStart)
    with pytest.raises(ProtocolError, match="wrong_call"):
        serializer.VonageSerializer(expected_call="another-call").accept(start)


def test_the_parser_is_total_on_mutated_messages() -> None:
    valid = [json.loads(m) for m in (CONNECTED, DTMF, NOTIFY, CLEARED)]
    for seed in range(10):
        for message in batch(seed, valid, 1000):
            frame = outcome(serializer.parse, message, CODES)
            if isinstance(frame, CallStart):
                outcome(serializer.VonageSerializer().accept, frame, {"unsupported_codec"})


def test_signed_webhooks_are_checked_for_signature_age_and_body() -> None:
    secret, body = "s3cret", b'{"uuid": "abc"}'
    token = signature.webhook_token(secret, body, now=1_000_000)
    assert signature.webhook_refusal(f"Bearer {token}", secret, body, now=1_000_010) is None
    assert signature.webhook_refusal(f"Bearer {token}", "other", body, now=1_000_010) == "invalid_token"
    assert signature.webhook_refusal(f"Bearer {token}", secret, b'{"uuid": "x"}', now=1_000_010) == (
        "payload_hash_mismatch"
    )
    assert signature.webhook_refusal(f"Bearer {token}", secret, body, now=1_000_000 + 3600) == "expired_token"
    assert signature.webhook_refusal(None, secret, body) == "missing_token"
    assert signature.webhook_refusal(f"Bearer {token}", "", body) == "no_secret_configured"
    unsigned = jwt.encode({"iat": 1_000_000, "payload_hash": hashlib.sha256(body).hexdigest()}, "x", "HS256")
    assert signature.webhook_refusal(f"Bearer {unsigned}", secret, body, now=1_000_010) == "invalid_token"


def test_stream_urls_are_signed_for_one_call_and_expire() -> None:
    query = signature.stream_query("s3cret", CALL, now=1_000_000)
    assert signature.stream_refusal(query, "s3cret", now=1_000_010) is None
    assert signature.stream_refusal({**query, "call": "other"}, "s3cret", now=1_000_010) == "invalid_stream_signature"
    assert signature.stream_refusal(query, "s3cret", now=1_000_000 + 3600) == "expired_stream_url"
    assert signature.stream_refusal({}, "s3cret") == "unsigned_stream"
    assert signature.stream_refusal(query, "") == "no_secret_configured"


def test_the_handoff_ncco_connects_a_number_or_a_sip_uri() -> None:
    assert VonageTransferTarget(number="15550123").ncco() == [
        {"action": "connect", "endpoint": [{"type": "phone", "number": "15550123"}]}
    ]
    announced = VonageTransferTarget(sip="sip:agents@pbx.example.com", announcement="Connecting you.").ncco()
    assert announced[0] == {"action": "talk", "text": "Connecting you."}
    assert announced[1]["endpoint"] == [{"type": "sip", "uri": "sip:agents@pbx.example.com"}]
    assert not VonageTransferTarget().configured
