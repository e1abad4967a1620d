"""Property-based fuzzing of every wire parser: any input is a valid frame or a named protocol error.

Four parsers (Twilio, AudioHook, the video page, the REST metadata block), about
30,000 messages each (Hypothesis seeds x a batch per seed, plus Hypothesis-drawn
JSON values). Each parser may answer only with a frame of its protocol or a
`ProtocolError` whose code its channel maps to a close code, a `disconnect` or
an `error` message; any other exception fails the test.
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.audiohook import serializer as audiohook
from connectors.frames import AudioIn, CallStart, CallStop, Connected, Dtmf, MarkPlayed, ProtocolError
from connectors.twilio import serializer as twilio
from connectors.twilio.channel import _check_sequence
from connectors.video import serializer as video
from connectors.video.frames import CameraOff, CameraOffer, ChatIn, Hello
from connectors.wire import MAX_ID_CHARS
from plugin import metadata
from tests.connectors import test_audiohook_serializer as audiohook_samples
from tests.connectors import test_twilio_serializer as twilio_samples
from tests.connectors.fuzz import batch, json_values, outcome

SEEDS = 250  # Hypothesis examples per seeded test...
BATCH = 120  # ...times messages per example: 30,000 messages per protocol
STRUCTURED = 600  # plus Hypothesis-drawn whole messages per protocol
FUZZ = settings(max_examples=SEEDS, deadline=None, suppress_health_check=list(HealthCheck), database=None)
DRAWN = settings(max_examples=STRUCTURED, deadline=None, suppress_health_check=list(HealthCheck), database=None)
seeds = st.integers(min_value=0, max_value=2**32 - 1)

# Codes each parser may raise; every one has a handling path in its channel.
WIRE_CODES = {"malformed_json", "too_deep", "malformed_message", "oversized_frame", "unexpected_binary"}
TWILIO_CODES = WIRE_CODES | {"unknown_event"}
AUDIOHOOK_CODES = WIRE_CODES | {"unsupported_version", "unsupported_media"}
VIDEO_CODES = (WIRE_CODES - {"oversized_frame"}) | {"oversized_message", "unknown_type"}

TWILIO_VALID: list[dict[str, Any]] = [
    json.loads(m)
    for m in (
        twilio_samples.CONNECTED,
        twilio_samples.START,
        twilio_samples.MEDIA,
        twilio_samples.DTMF,
        twilio_samples.MARK,
        twilio_samples.STOP,
    )
]
SESSION = audiohook_samples.SESSION
AUDIOHOOK_VALID: list[dict[str, Any]] = [
    audiohook_samples.OPEN,
    *(
        {"version": "2", "type": kind, "seq": 2, "serverseq": 1, "id": SESSION, "parameters": params}
        for kind, params in [
            ("ping", {}),
            ("pause", {}),
            ("resume", {}),
            ("close", {"reason": "end"}),
            ("dtmf", {"digit": "5", "duration": "PT0.2S"}),
            ("error", {"code": 500, "message": "boom"}),
            ("update", {"language": "fr-FR"}),
            ("discarded", {"start": "PT1S", "discarded": "PT0.2S"}),
        ]
    ),
]
VIDEO_VALID: list[dict[str, Any]] = [
    {"type": "hello", "customer_id": "web-1f3a9c"},
    {"type": "chat", "text": "my internet is down again"},
    {"type": "offer", "sdp": "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"},
    {"type": "camera_off"},
]
ESTIMATE = {"probs": {"angry": 0.8, "neutral": 0.2}, "confidence": 0.8}
METADATA_VALID: list[dict[str, Any]] = [
    {"toneline": {"customer_id": "c-42", "channel": "twilio", "role": "customer", "voice": ESTIMATE}},
    {"toneline": {"customer_id": "c-43", "channel": "video", "face": ESTIMATE, "voice": ESTIMATE}},
    {"toneline": {"role": "agent"}, "other": 1},
]


def twilio_check(message: str | bytes, last_seq: list[int | None]) -> None:
    frame = outcome(twilio.parse, message, TWILIO_CODES)
    if frame is None:
        return
    assert isinstance(frame, (Connected, CallStart, AudioIn, Dtmf, MarkPlayed, CallStop))
    if isinstance(frame, CallStart):
        assert frame.customer_id is None or len(frame.customer_id) <= MAX_ID_CHARS
        outcome(twilio.check_media_format, frame, {"unsupported_codec"})
    outcome(lambda f: _check_sequence(f, last_seq[0]), frame, {"out_of_order"})


def audiohook_check(message: str | bytes, rng: random.Random) -> None:
    parsed = outcome(audiohook.parse, message, AUDIOHOOK_CODES)
    if parsed is None:
        return
    assert isinstance(parsed, audiohook.ClientMessage) and isinstance(parsed.seq, int)
    if isinstance(parsed.body, audiohook.Open):
        assert len(parsed.body.conversation_id) <= MAX_ID_CHARS
        media = outcome(audiohook.choose_media, parsed.body.media, {"unsupported_media"})
        if media is not None:
            audio = bytes(rng.randrange(256) for _ in range(rng.choice([0, 1, 3, 320, 16_001])))
            channels = outcome(lambda p: audiohook.split_audio(p, media), audio, {"oversized_frame"})
            assert channels is None or set(channels) == set(media.channels)


def video_check(message: str | bytes) -> None:
    frame = outcome(video.parse, message, VIDEO_CODES)
    assert frame is None or isinstance(frame, (Hello, ChatIn, CameraOffer, CameraOff))


def metadata_check(value: Any) -> None:
    parsed = metadata.parse(value, "m-1", log=False)  # never raises: bad parts are dropped
    assert parsed.customer_id is None or (len(parsed.customer_id) <= metadata.MAX_ID_CHARS)
    assert parsed.channel is None or len(parsed.channel) <= 32
    for estimate in parsed.estimates:
        assert abs(sum(estimate.probs) - 1.0) < 1e-6


@FUZZ
@given(seed=seeds)
def test_twilio_parser_is_total_on_mutated_frames(seed: int) -> None:
    last: list[int | None] = [None]
    for message in batch(seed, TWILIO_VALID, BATCH):
        twilio_check(message, last)


@DRAWN
@given(event=st.sampled_from([m["event"] for m in TWILIO_VALID] + ["x"]), body=json_values, extra=json_values)
def test_twilio_parser_is_total_on_drawn_messages(event: str, body: Any, extra: Any) -> None:
    for key in ("start", "media", "dtmf", "mark", "sequenceNumber"):
        twilio_check(json.dumps({"event": event, key: body, "streamSid": extra}), [None])


@FUZZ
@given(seed=seeds)
def test_audiohook_parser_is_total_on_mutated_frames(seed: int) -> None:
    rng = random.Random(seed)
    for message in batch(seed, AUDIOHOOK_VALID, BATCH):
        audiohook_check(message, rng)


@DRAWN
@given(kind=st.sampled_from(["open", "ping", "close", "error", "dtmf", "x"]), params=json_values, offer=json_values)
def test_audiohook_parser_is_total_on_drawn_messages(kind: str, params: Any, offer: Any) -> None:
    rng = random.Random(0)
    base = {"version": "2", "type": kind, "seq": 1, "serverseq": 0, "id": SESSION}
    audiohook_check(json.dumps({**base, "parameters": params}), rng)
    opening = json.loads(json.dumps(AUDIOHOOK_VALID[0]))
    opening["parameters"]["media"] = [offer, {**opening["parameters"]["media"][1], "rate": offer}]
    opening["parameters"]["participant"] = {"id": params, "ani": offer}
    audiohook_check(json.dumps(opening), rng)


@FUZZ
@given(seed=seeds)
def test_video_parser_is_total_on_mutated_frames(seed: int) -> None:
    for message in batch(seed, VIDEO_VALID, BATCH):
        video_check(message)


@DRAWN
@given(kind=st.sampled_from([m["type"] for m in VIDEO_VALID] + ["x"]), value=json_values)
def test_video_parser_is_total_on_drawn_messages(kind: str, value: Any) -> None:
    for key in ("customer_id", "text", "sdp"):
        video_check(json.dumps({"type": kind, key: value}))


@FUZZ
@given(seed=seeds)
def test_metadata_parser_is_total_on_mutated_blocks(seed: int) -> None:
    # Rasa hands the REST channel's metadata over as parsed JSON: mutate, then parse as Rasa would.
    for message in batch(seed, METADATA_VALID, BATCH):
        try:
            value = json.loads(message)
        except (ValueError, RecursionError):
            continue  # Rasa's own JSON parsing answers 400 before Toneline sees it
        metadata_check(value)


@DRAWN
@given(block=json_values, voice=json_values, customer=json_values)
def test_metadata_parser_is_total_on_drawn_blocks(block: Any, voice: Any, customer: Any) -> None:
    metadata_check({"toneline": block})
    metadata_check({"toneline": {"voice": voice, "face": block, "customer_id": customer, "channel": customer}})


@DRAWN
@given(value=st.text(max_size=400))
def test_conversation_ids_are_bounded_and_stay_distinct(value: str) -> None:
    bounded = metadata.bounded_id(value)
    assert len(bounded) <= metadata.MAX_ID_CHARS
    assert bounded == value or bounded != metadata.bounded_id(value + "x")
    bounded.encode("utf-8")


def test_known_holes_are_named_protocol_errors() -> None:
    """The fuzzer's first finds, kept as examples: each one is a named error, not an exception."""
    start = json.loads(json.dumps(TWILIO_VALID[1]))
    start["start"]["mediaFormat"]["sampleRate"] = float("inf")
    cases: list[tuple[Any, str | bytes, str]] = [
        (twilio.parse, '{"event": "media", "sequenceNumber": 1e999}', "malformed_message"),
        (twilio.parse, json.dumps(start), "malformed_message"),
        (twilio.parse, "[" * 100_000, "oversized_frame"),
        (twilio.parse, "[" * 5000 + "]" * 5000, "too_deep"),
        (twilio.parse, '{"event": "stop", "sequenceNumber": ' + "9" * 5000 + "}", "malformed_json"),
        (audiohook.parse, '{"a":' * 3000 + "1" + "}" * 3000, "too_deep"),
        (video.parse, "[" * 20 + "]" * 20, "too_deep"),
    ]
    opening = json.loads(json.dumps(AUDIOHOOK_VALID[0]))
    for rate in ("8k", [8000], 8000.5, 1e999, True):
        opening["parameters"]["media"][0]["rate"] = rate
        cases.append((audiohook.parse, json.dumps(opening), "malformed_message"))
    for parse, text, code in cases:
        try:
            parse(text)
        except ProtocolError as exc:
            assert exc.code == code, (text[:80], exc.code)
        else:
            raise AssertionError(f"accepted {text[:80]!r}")
