"""Bad input on the AudioHook channel: refused before the upgrade, or `disconnect` + clean close with a named log."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

import pytest
from websockets.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatusCode

from connectors.audiohook.simulator import AudioHookClient, connect_session, headers, open_message, open_session
from plugin.schema import ConvKey, Keys
from tests.connectors.conftest import AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET, VoiceStack
from tests.connectors.speech_fixtures import needs_espeak, speak
from tests.connectors.test_audiohook_session import ws_url

pytestmark = pytest.mark.e2e
OTHER_SECRET = "b3RoZXItc2VjcmV0LW90aGVyLXNlY3JldA=="


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("api_key", "secret", "logged"),
    [
        ("wrong-key", AUDIOHOOK_SECRET, "code=bad_api_key"),
        (AUDIOHOOK_API_KEY, OTHER_SECRET, "code=bad_signature"),
        (AUDIOHOOK_API_KEY, None, "code=missing_signature"),
    ],
    ids=["wrong_key", "wrong_secret", "unsigned"],
)
async def test_upgrade_is_refused_with_401(
    voice_stack: VoiceStack, api_key: str, secret: str | None, logged: str
) -> None:
    with pytest.raises(InvalidStatusCode) as refused:
        await connect_session(ws_url(voice_stack), api_key, secret)
    assert refused.value.status_code == 401
    await asyncio.sleep(0.1)
    assert logged in voice_stack.log()


@pytest.mark.asyncio
async def test_a_signed_upgrade_request_cannot_be_replayed(voice_stack: VoiceStack) -> None:
    url = ws_url(voice_stack)
    captured = headers(url, AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET, str(uuid.uuid4()), str(uuid.uuid4()), "c-1")
    first = await connect(url, extra_headers=captured)
    await first.close()
    with pytest.raises(InvalidStatusCode) as refused:
        await connect(url, extra_headers=captured)  # the same signed request, sent again by someone who saw it
    assert refused.value.status_code == 401
    await asyncio.sleep(0.1)
    assert "code=replayed_nonce" in voice_stack.log()


async def raw_session(stack: VoiceStack) -> AudioHookClient:
    ws, sid = await connect_session(ws_url(stack), AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET)
    return AudioHookClient(ws, sid, str(uuid.uuid4()), ("external", "internal"))


async def until_closed(client: AudioHookClient) -> list[dict[str, Any]]:
    """Everything the server sends until it closes the socket (the client does not answer `disconnect`)."""
    received = []
    with contextlib.suppress(ConnectionClosed):
        async for raw in client.ws:
            received.append(json.loads(raw))
    return received


def opening(client: AudioHookClient, fmt: str = "PCMU") -> dict[str, Any]:
    return open_message(client.conversation_id, "+15550111", client.channels, fmt)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("steps", "close_code", "code"),
    [
        ([("text", "{not json")], 1002, "malformed_json"),
        ([("open", "L16")], 1003, "unsupported_media"),
        ([("open", "PCMU"), ("seq", 5)], 1002, "out_of_order"),
        ([("open", "PCMU"), ("bytes", 20_000)], 1009, "oversized_frame"),
        ([("bytes", 1600)], 1002, "audio_before_open"),
    ],
)
async def test_protocol_errors_disconnect_with_reason_error_and_close_cleanly(
    voice_stack: VoiceStack, steps: list[Any], close_code: int, code: str
) -> None:
    client = await raw_session(voice_stack)
    for kind, value in steps:
        if kind == "text":
            await client.ws.send(value)
        elif kind == "open":
            await client.send("open", opening(client, value))
        elif kind == "seq":
            await client.send("ping", seq=value)
        else:
            await client.ws.send(bytes([0xFF]) * value)
    received = await asyncio.wait_for(until_closed(client), 10)
    disconnect = received[-1]
    assert (disconnect["type"], disconnect["parameters"]) == ("disconnect", {"reason": "error", "info": code})
    assert client.ws.close_code == close_code
    assert f"code={code}" in voice_stack.log()


@pytest.mark.asyncio
async def test_a_client_that_answers_disconnect_gets_closed(voice_stack: VoiceStack) -> None:
    call = await open_session(ws_url(voice_stack), AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET)
    await call.send("ping", seq=call.seq + 2)
    await asyncio.wait_for(call.disconnected.wait(), 5)
    await asyncio.wait_for(call.ws.wait_closed(), 5)
    assert call.types() == ["opened", "disconnect", "closed"]


@needs_espeak
@pytest.mark.asyncio
async def test_unknown_types_are_skipped_and_a_dropped_session_harms_no_other(voice_stack: VoiceStack) -> None:
    url = ws_url(voice_stack)
    dropped = await open_session(url, AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET, speed=3.0)
    healthy = await open_session(url, AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET, ani="+15550177", speed=3.0)
    await healthy.send("transcript", {"text": "x"})
    await healthy.send("dtmf", {"digit": "7"})
    assert (await healthy.request("ping", "pong"))["type"] == "pong"
    hello = await speak("Hello, I need help with my bill please.")
    # One client is cut off mid-sentence (no `close`, the TCP connection just goes) while the other talks.
    cut = asyncio.create_task(dropped.stream(hello[: hello.size // 2], None, tail_s=0))
    await healthy.stream(hello, None)
    await cut
    dropped.ws.transport.abort()
    await healthy.close()
    turns = voice_stack.redis().lrange(Keys(voice_stack.prefix).conv(healthy.conversation_id, ConvKey.TURNS), 0, -1)
    assert len(turns) == 1 and "help" in json.loads(turns[0])["text"].lower()
    log = voice_stack.log()
    assert "code=unknown_type type=transcript" in log
    assert f"audiohook.session.dropped session_id={dropped.session_id}" in log
