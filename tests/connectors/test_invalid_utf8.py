"""A text frame that is not UTF-8, through the real telephony channels: closed with 1007 and logged, never hung."""

from __future__ import annotations

import asyncio

import pytest

from connectors.audiohook.simulator import connect_session
from tests.connectors.conftest import AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET, VoiceStack
from tests.connectors.test_audiohook_session import ws_url
from tests.connectors.test_twilio_bad_input import open_stream
from tests.e2e.test_security import send_invalid_utf8

pytestmark = pytest.mark.e2e


@pytest.mark.asyncio
@pytest.mark.parametrize("channel", ["twilio", "audiohook"])
async def test_invalid_utf8_closes_the_socket_with_1007(voice_stack: VoiceStack, channel: str) -> None:
    if channel == "twilio":
        ws = await open_stream(voice_stack)
    else:
        ws, _ = await connect_session(ws_url(voice_stack), AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET)
    await send_invalid_utf8(ws)
    await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 1007
    await asyncio.sleep(0.2)
    assert f"transport.receive.invalid_utf8 label={channel}" in voice_stack.log()
