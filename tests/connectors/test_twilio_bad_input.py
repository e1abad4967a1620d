"""Bad input on the Twilio channel: refused when unsigned, clean close with a named log line, other calls unharmed."""

from __future__ import annotations

import asyncio
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest
from websockets.client import WebSocketClientProtocol, connect
from websockets.exceptions import InvalidStatusCode

from connectors.twilio import signature
from connectors.twilio.simulator import place_call
from tests.connectors.conftest import AUTH_TOKEN, VoiceStack
from tests.connectors.speech_fixtures import needs_espeak, speak

pytestmark = pytest.mark.e2e
START = {
    "accountSid": "AC" + "7" * 32,
    "streamSid": "MZbad",
    "callSid": "CAbad",
    "tracks": ["inbound"],
    "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    "customParameters": {},
}


def stream_url(stack: VoiceStack) -> str:
    return stack.url.replace("http://", "ws://") + "/webhooks/toneline_twilio/stream"


async def open_stream(stack: VoiceStack, token: str | None = AUTH_TOKEN) -> WebSocketClientProtocol:
    url = stream_url(stack)
    headers = {"X-Twilio-Signature": signature.compute(url, {}, token)} if token else {}
    return await connect(url, extra_headers=headers)


async def closed_with(ws: WebSocketClientProtocol) -> int | None:
    await asyncio.wait_for(ws.wait_closed(), 10)
    return ws.close_code


def post_voice(stack: VoiceStack, sign_with: str | None) -> int:
    url = f"{stack.url}/webhooks/toneline_twilio/voice"
    form = {"CallSid": "CA1", "From": "+15550100"}
    headers = {"X-Twilio-Signature": signature.compute(url, form, sign_with)} if sign_with else {}
    request = urllib.request.Request(url, urllib.parse.urlencode(form).encode(), headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_voice_webhook_needs_a_valid_signature(voice_stack: VoiceStack) -> None:
    assert post_voice(voice_stack, None) == 403
    assert post_voice(voice_stack, "not-the-token") == 403
    assert post_voice(voice_stack, AUTH_TOKEN) == 200
    assert "twilio.signature.rejected" in voice_stack.log()


@pytest.mark.asyncio
@pytest.mark.parametrize("token", [None, "not-the-token"])
async def test_stream_upgrade_needs_a_valid_signature(voice_stack: VoiceStack, token: str | None) -> None:
    with pytest.raises(InvalidStatusCode) as refused:  # refused before the handshake: never a 101
        await open_stream(voice_stack, token)
    assert refused.value.status_code == 403


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("messages", "code", "logged"),
    [
        (["{not json"], 1002, "code=malformed_json"),
        ([{"event": "media", "media": {"payload": ""}}], 1002, "code=before_start"),
        (
            [{"event": "start", "start": {**START, "mediaFormat": {"encoding": "audio/l16", "sampleRate": 16000}}}],
            1003,
            "code=unsupported_codec",
        ),
        (
            [{"event": "start", "start": START}, {"event": "media", "media": {"payload": "A" * 40000}}],
            1009,
            "code=oversized_frame",
        ),
        (
            [{"event": "start", "start": START}, {"event": "media", "media": {"payload": "%%%"}}],
            1002,
            "code=malformed_message",
        ),
    ],
)
async def test_protocol_errors_close_the_stream_cleanly(
    voice_stack: VoiceStack, messages: list[Any], code: int, logged: str
) -> None:
    ws = await open_stream(voice_stack)
    for message in messages:
        await ws.send(message if isinstance(message, str) else json.dumps(message))
    assert await closed_with(ws) == code
    await asyncio.sleep(0.2)
    assert logged in voice_stack.log()


@needs_espeak
@pytest.mark.asyncio
async def test_unknown_events_and_stale_frames_are_logged_and_skipped_and_a_dropped_call_harms_no_other(
    voice_stack: VoiceStack,
) -> None:
    dropped = await place_call(voice_stack.url, AUTH_TOKEN, caller="+15550133", speed=2.0)
    healthy = await place_call(voice_stack.url, AUTH_TOKEN, caller="+15550144", speed=2.0)
    await healthy.hear_opening()  # the notice each call opens with is not the reply this test waits for
    await healthy.send_json(
        {"event": "transcription", "sequenceNumber": healthy.next_seq(), "streamSid": healthy.stream_sid}
    )
    await healthy.send_json(
        {"event": "dtmf", "sequenceNumber": "1", "dtmf": {"digit": "5"}, "streamSid": healthy.stream_sid}
    )
    hello = await speak("Hello, is anyone there?")
    # One caller is cut off mid-sentence (no `stop`, the TCP connection just goes) while the other talks.
    cut = asyncio.create_task(dropped.say(hello[: hello.size // 2], then_silence=0))
    turn = asyncio.create_task(healthy.say(hello))
    await cut
    dropped.ws.transport.abort()
    reply = await healthy.wait_reply(await turn)
    await healthy.hang_up()
    assert reply.frames and reply.marks
    log = voice_stack.log()
    assert "code=unknown_event" in log and "code=out_of_order" in log
    assert f"twilio.stream.disconnected call_id={dropped.call_sid}" in log
    assert any(e["event"] == "user" for e in voice_stack.tracker(healthy.call_sid)["events"])
