"""Twilio Media Streams messages as Twilio documents and sends them <-> frames."""

from __future__ import annotations

import base64
import json

import pytest
from twilio.request_validator import RequestValidator

from connectors.frames import (
    AudioIn,
    AudioOut,
    CallStart,
    CallStop,
    Clear,
    Connected,
    Dtmf,
    Mark,
    MarkPlayed,
    ProtocolError,
)
from connectors.twilio import serializer, signature

STREAM = "MZ18ad3ab5a668481ce02b83e7395059f0"
CALL = "CA5f0e2ad3e4e0a4dd7bda4c2ab1c5f1a3"
# Recorded shapes from https://www.twilio.com/docs/voice/media-streams/websocket-messages
CONNECTED = '{"event": "connected", "protocol": "Call", "version": "1.0.0"}'
START = json.dumps(
    {
        "event": "start",
        "sequenceNumber": "1",
        "start": {
            "accountSid": "AC1234567890abcdef1234567890abcdef",
            "streamSid": STREAM,
            "callSid": CALL,
            "tracks": ["inbound"],
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            "customParameters": {"caller": "+15550100"},
        },
        "streamSid": STREAM,
    }
)
MEDIA = json.dumps(
    {
        "event": "media",
        "sequenceNumber": "3",
        "media": {
            "track": "inbound",
            "chunk": "1",
            "timestamp": "5",
            "payload": base64.b64encode(b"\xff" * 160).decode(),
        },
        "streamSid": STREAM,
    }
)
DTMF = json.dumps(
    {"event": "dtmf", "streamSid": STREAM, "sequenceNumber": "5", "dtmf": {"track": "inbound_track", "digit": "1"}}
)
MARK = json.dumps({"event": "mark", "sequenceNumber": "4", "streamSid": STREAM, "mark": {"name": "my label"}})
STOP = json.dumps(
    {"event": "stop", "sequenceNumber": "5", "stop": {"accountSid": "AC123", "callSid": CALL}, "streamSid": STREAM}
)


def test_recorded_inbound_messages_parse_to_frames() -> None:
    assert serializer.parse(CONNECTED) == Connected("Call", "1.0.0")
    start = serializer.parse(START)
    assert isinstance(start, CallStart)
    assert (start.stream_id, start.call_id, start.customer_id, start.sequence) == (STREAM, CALL, "+15550100", 1)
    serializer.check_media_format(start)
    assert serializer.parse(MEDIA) == AudioIn(b"\xff" * 160, 3, 5, "inbound")
    assert serializer.parse(DTMF) == Dtmf("1", 5)
    assert serializer.parse(MARK) == MarkPlayed("my label", 4)
    assert serializer.parse(STOP) == CallStop("stop", 5)


def test_outbound_frames_serialise_as_twilio_expects() -> None:
    media = json.loads(serializer.serialize(AudioOut(b"\x00\x01\xff"), STREAM))
    assert media == {"event": "media", "streamSid": STREAM, "media": {"payload": "AAH/"}}
    assert json.loads(serializer.serialize(Mark("reply-1"), STREAM)) == {
        "event": "mark",
        "streamSid": STREAM,
        "mark": {"name": "reply-1"},
    }
    assert json.loads(serializer.serialize(Clear(), STREAM)) == {"event": "clear", "streamSid": STREAM}


@pytest.mark.parametrize(
    ("message", "code"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "malformed_message"),
        ('{"event": "hangup"}', "unknown_event"),
        ('{"media": {}}', "unknown_event"),
        ('{"event": "media", "media": {"payload": "!!notbase64"}}', "malformed_message"),
        ('{"event": "media", "media": {}}', "malformed_message"),
        ('{"event": "media", "sequenceNumber": "x", "media": {"payload": ""}}', "malformed_message"),
        ('{"event": "start", "start": {"callSid": "CA1"}}', "malformed_message"),
        ('{"event": "mark", "mark": {}}', "malformed_message"),
        (json.dumps({"event": "media", "media": {"payload": "A" * 20000}}), "oversized_frame"),
        ("x" * (serializer.MAX_MESSAGE_CHARS + 1), "oversized_frame"),
        (b"\x00\x01", "unexpected_binary"),
    ],
)
def test_bad_messages_raise_a_named_protocol_error(message: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as raised:
        serializer.parse(message)
    assert raised.value.code == code


def test_a_stream_in_another_codec_is_refused() -> None:
    raw = json.loads(START)
    raw["start"]["mediaFormat"] = {"encoding": "audio/l16", "sampleRate": 16000, "channels": 1}
    start = serializer.parse(json.dumps(raw))
    assert isinstance(start, CallStart)
    with pytest.raises(ProtocolError, match="unsupported_codec"):
        serializer.check_media_format(start)


def test_signature_matches_twilios_own_validator() -> None:
    token, url = "12345", "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+12349013030", "Digits": "1234", "From": "+12349013030"}
    # The example from Twilio's webhook-security documentation.
    expected = RequestValidator(token).compute_signature(url, params)
    assert signature.compute(url, params, token) == expected
    assert signature.is_valid(url, params, expected, token)
    assert not signature.is_valid(url, params, expected, "wrong-token")
    assert not signature.is_valid(url, {**params, "Digits": "9"}, expected, token)
    assert not signature.is_valid(url, params, None, token)
    assert not signature.is_valid(url, params, expected, "")
