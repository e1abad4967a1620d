"""Fuzzed messages through the channels' socket loops: every bad message gets its protocol's answer.

The parser tests (test_fuzz_serializers.py) show no input raises; these show what the peer sees: Twilio
closes the stream with the code mapped from the error (1002, 1003, 1009; unknown events are skipped), the
AudioHook server answers a message its serializer refuses with `disconnect` (reason `error`, the code as
`info`) and then closes with the mapped code; the video channel answers with an `error` naming the code
(closing with 1009 when oversized) and keeps the chat going. Runs on an in-memory socket, real sessions.
"""

from __future__ import annotations

import asyncio
import json
import random
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from connectors.audiohook import serializer as wire
from connectors.audiohook.protocol import AudioHookServer, ServerConfig
from connectors.audiohook.session import AudioHookSession
from connectors.frames import CallStart, ProtocolError
from connectors.speech.runtime import SpeechRuntime
from connectors.transport import PROTOCOL_ERROR, TOO_BIG, UNSUPPORTED_DATA, WebSocketTransport
from connectors.twilio import serializer as twilio
from connectors.twilio.channel import TwilioMediaStreamsInput
from connectors.video import serializer as video
from connectors.video.channel import VideoInput
from connectors.video.faces import FaceWorker
from connectors.video.session import VideoSettings
from plugin.settings import Settings
from plugin.turn import TurnService
from tests.connectors.fuzz import batch
from tests.connectors.test_fuzz_serializers import AUDIOHOOK_VALID, SESSION, TWILIO_VALID, VIDEO_VALID
from tests.connectors.test_video_channel import EchoBot, MemorySocket

# AudioHook sessions load the VAD (~0.1 s each), so fewer examples there.
AUDIOHOOK = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
VIDEO = settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck), database=None)
PER_EXAMPLE = 10  # messages per Hypothesis example
AUDIOHOOK_CLOSE = {"oversized_frame": TOO_BIG, "unsupported_media": UNSUPPORTED_DATA}


def refusal(parse: Any, message: Any) -> str | None:
    """The code the serializer refuses `message` with, or None if it parses."""
    try:
        parse(message)
    except ProtocolError as exc:
        return exc.code
    return None


class SilentClientSocket(MemorySocket):
    """A client that sends its messages, then says nothing for 10 ms (longer than the grace period) and goes."""

    async def recv(self) -> str | bytes | None:
        if self.inbox.empty():
            await asyncio.sleep(0.01)
            if self.inbox.empty():
                return None
        return await self.inbox.get()


async def audiohook_run(messages: list[str | bytes], executor: ThreadPoolExecutor) -> MemorySocket:
    def start(session_id: str, opened: wire.Open) -> AudioHookSession:
        return AudioHookSession(session_id, opened, SpeechRuntime(), TurnService(Settings()), executor)

    socket = SilentClientSocket()
    for message in messages:
        socket.inbox.put_nowait(message)
    server = AudioHookServer(WebSocketTransport(socket, "audiohook"), ServerConfig(SESSION, 0.002), start)
    await asyncio.wait_for(server.run(), 20)
    return socket


@AUDIOHOOK
@given(seed=st.integers(0, 2**32 - 1))
def test_audiohook_answers_each_refused_message_with_disconnect_and_a_close(seed: int) -> None:
    rng = random.Random(seed)
    executor = ThreadPoolExecutor(1)
    for message in batch(seed, AUDIOHOOK_VALID, PER_EXAMPLE):
        # Usually the message comes first; a third of the time it follows a good `open` (text only: audio
        # after `open` would run the speech models, which the session tests cover).
        after_open = rng.random() < 0.3 and isinstance(message, str)
        sequence = [json.dumps(AUDIOHOOK_VALID[0]), message] if after_open else [message]
        socket = asyncio.run(audiohook_run(sequence, executor))
        code = "audio_before_open" if isinstance(message, bytes) else refusal(wire.parse, message)
        if code is None:
            continue
        assert socket.outbox[-1]["type"] == "disconnect", (message[:120], socket.outbox)
        assert socket.outbox[-1]["parameters"] == {"reason": "error", "info": code}
        assert socket.closed == (AUDIOHOOK_CLOSE.get(code, PROTOCOL_ERROR), code)
    executor.shutdown()


async def video_run(messages: list[str | bytes], tmp_path: Path) -> MemorySocket:
    channel = VideoInput(VideoSettings(), FaceWorker(tmp_path / "no-weights.pt"))
    socket = MemorySocket()
    for message in [*messages, None]:
        socket.inbox.put_nowait(message)
    await asyncio.wait_for(channel.serve(WebSocketTransport(socket, "video"), EchoBot()), 20)
    channel.faces.shutdown()
    return socket


@VIDEO
@given(seed=st.integers(0, 2**32 - 1))
def test_the_video_channel_answers_each_refused_message_with_an_error(seed: int, tmp_path_factory: Any) -> None:
    tmp_path = tmp_path_factory.mktemp("video-fuzz")
    for message in batch(seed, VIDEO_VALID, PER_EXAMPLE):
        code = refusal(video.parse, message)
        if code is None and json.loads(message).get("type") == "offer":
            continue  # a parsable offer starts WebRTC: the session tests cover that path
        socket = asyncio.run(video_run([message], tmp_path))
        if code == "oversized_message":
            assert socket.closed == (TOO_BIG, code)
        elif code is not None:
            errors = [m for m in socket.outbox if m["type"] == "error"]
            assert [e["code"] for e in errors] == [code], (message[:120], socket.outbox)


TWILIO_CLOSE = {"oversized_frame": TOO_BIG, "unexpected_binary": UNSUPPORTED_DATA}


async def twilio_run(message: str | bytes) -> MemorySocket:
    channel = TwilioMediaStreamsInput(account_sid="", auth_token="unused-here")
    socket = MemorySocket()
    for item in (message, None):
        socket.inbox.put_nowait(item)
    await asyncio.wait_for(channel.serve(WebSocketTransport(socket, "twilio"), EchoBot()), 20)
    return socket


@VIDEO
@given(seed=st.integers(0, 2**32 - 1))
def test_twilio_closes_the_stream_with_the_mapped_code_on_each_refused_message(seed: int) -> None:
    for message in batch(seed, TWILIO_VALID, PER_EXAMPLE):
        code = refusal(twilio.parse, message)
        if code is None and isinstance(twilio.parse(message), CallStart):
            continue  # a good `start` begins a call with speech models: the call tests cover that
        socket = asyncio.run(twilio_run(message))
        if code == "unknown_event":
            assert socket.closed is None, "unknown events are logged and skipped"
        elif code is not None:
            assert socket.closed == (TWILIO_CLOSE.get(code, PROTOCOL_ERROR), code), (message[:120], code)


@pytest.mark.parametrize("kind", ["twilio", "audiohook", "video"])
def test_the_fuzz_corpus_is_mostly_refused(kind: str) -> None:
    """A check on the generator: most fuzzed messages must be bad, or the channel tests above prove little."""
    parse, valid = {
        "twilio": (twilio.parse, TWILIO_VALID),
        "audiohook": (wire.parse, AUDIOHOOK_VALID),
        "video": (video.parse, VIDEO_VALID),
    }[kind]
    messages = batch(7, valid, 2000)
    refused = sum(refusal(parse, m) is not None for m in messages)
    assert refused > len(messages) // 2
