"""End to end: simulated Vonage calls into the running demo bot (Rasa, actions, Redis, fake Vonage Voice API),
through the real channel, with Whisper hearing the caller; and the channel's doors and bad input."""

from __future__ import annotations

import asyncio
import json
import re
import urllib.error
import urllib.request
from typing import Any

import numpy as np
import pytest
from websockets.client import connect
from websockets.exceptions import InvalidStatusCode

from connectors.speech.codec import Linear16Codec
from connectors.vonage import signature
from connectors.vonage.simulator import answer, place_call, websocket_endpoint
from tests.connectors.calls import SPEED, greeted, user_turns
from tests.connectors.conftest import VONAGE_SECRET, VoiceStack
from tests.connectors.speech_fixtures import needs_espeak

pytestmark = pytest.mark.e2e


@needs_espeak
@pytest.mark.asyncio
async def test_a_caller_is_heard_and_answered_in_16_khz_linear_pcm_with_a_notify(voice_stack: VoiceStack) -> None:
    call = await place_call(voice_stack.url, VONAGE_SECRET, caller="15550211", speed=SPEED)
    reply = await greeted(call)

    assert reply.frames and reply.marks, call.received[-5:]
    assert all(len(f) == 640 for f in reply.frames)
    audio = Linear16Codec(16000).decoder().decode(b"".join(reply.frames))
    assert audio.size > 16000 and float(np.sqrt(np.mean(audio**2))) > 0.01  # a second or more of real speech
    kinds = ["audio" if "audio" in m else m.get("action") for m in call.received]
    assert kinds.index("notify") > kinds.index("audio")

    turns = user_turns(voice_stack.tracker(call.call_uuid))
    assert turns and "hello" in turns[0]["text"].lower(), [t["text"] for t in turns]
    assert turns[0]["input_channel"] == "toneline_vonage"
    block = turns[0]["metadata"]["toneline"]
    assert block["channel"] == "vonage" and block["customer_id"] == "15550211"
    answered = re.search(rf"vonage\.turn\.answered call_id={call.call_uuid} .*", voice_stack.log())
    assert answered and "early=true" in answered.group(0), answered


def http_status(url: str, headers: dict[str, str] | None = None) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def test_the_answer_webhook_needs_vonages_signature(voice_stack: VoiceStack) -> None:
    query = [("uuid", "abc"), ("from", "15550100")]
    url = f"{voice_stack.url}/webhooks/toneline_vonage/answer?uuid=abc&from=15550100"
    assert http_status(url) == 401
    assert (
        http_status(url, {"Authorization": f"Bearer {signature.webhook_token('not-the-secret', query=query)}"}) == 401
    )
    assert http_status(url, {"Authorization": f"Bearer {signature.webhook_token(VONAGE_SECRET, query=query)}"}) == 200
    # signed for no query, or for another call's: the query is bound by payload_hash
    assert http_status(url, {"Authorization": f"Bearer {signature.webhook_token(VONAGE_SECRET)}"}) == 401
    other = signature.webhook_token(VONAGE_SECRET, query=[("uuid", "xyz"), ("from", "15550100")])
    assert http_status(url, {"Authorization": f"Bearer {other}"}) == 401
    assert "vonage.auth.rejected code=invalid_token" in voice_stack.log()
    assert "code=payload_hash_mismatch" in voice_stack.log()


def test_the_event_webhook_needs_a_signature_over_its_body(voice_stack: VoiceStack) -> None:
    url = f"{voice_stack.url}/webhooks/toneline_vonage/event"
    body = json.dumps({"uuid": "call-events", "status": "completed"}).encode()

    def post(token: str) -> int:
        request = urllib.request.Request(
            url, body, {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return exc.code

    assert post(signature.webhook_token(VONAGE_SECRET, body)) == 204
    assert post(signature.webhook_token(VONAGE_SECRET, b'{"uuid": "another"}')) == 401  # the body was changed
    assert "vonage.call.event call_id=call-events status=completed" in voice_stack.log()
    assert "code=payload_hash_mismatch" in voice_stack.log()


async def stream_uri(stack: VoiceStack, call_uuid: str) -> str:
    ncco = await asyncio.get_running_loop().run_in_executor(None, answer, stack.url, VONAGE_SECRET, call_uuid, "1555")
    return str(websocket_endpoint(ncco)["uri"])


@pytest.mark.asyncio
async def test_the_stream_upgrade_needs_a_signed_unused_url(voice_stack: VoiceStack) -> None:
    uri = await stream_uri(voice_stack, "call-doors")
    unsigned = uri.split("?")[0]
    forged = uri.replace("call=call-doors", "call=another-call")
    for refused in (unsigned, forged):
        with pytest.raises(InvalidStatusCode) as raised:  # refused before the handshake: never a 101
            await connect(refused)
        assert raised.value.status_code == 401
    ws = await connect(uri)
    await ws.close()
    with pytest.raises(InvalidStatusCode):
        await connect(uri)  # a signed URL opens one stream
    assert "code=replayed_stream_url" in voice_stack.log()


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("first", "close", "code"),
    [
        ("{not json", 1002, "malformed_json"),
        (b"\x00" * 640, 1002, "before_start"),
        ({"content-type": "audio/l16;rate=8000"}, 1003, "unsupported_codec"),
        ({"call_uuid": "someone-else"}, 1008, "wrong_call"),
    ],
)
async def test_bad_first_messages_close_the_stream_with_a_named_code(
    voice_stack: VoiceStack, first: str | bytes | dict[str, Any], close: int, code: str
) -> None:
    call_uuid = f"call-bad-{code}"
    ws = await connect(await stream_uri(voice_stack, call_uuid))
    if isinstance(first, dict):
        first = json.dumps(
            {"event": "websocket:connected", "content-type": "audio/l16;rate=16000", "call_uuid": call_uuid, **first}
        )
    await ws.send(first)
    await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == close
    await asyncio.sleep(0.2)
    assert f"code={code}" in voice_stack.log()
