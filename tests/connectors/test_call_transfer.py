"""End to end on both providers: a caller who asks for a person hears the announcement, then the call moves.

The same call core runs both; only the simulator, the channel and the fake REST API differ. Asking for a
person is the deterministic way to a handoff (the demo bot's `request_human` rule), so this checks the
transfer mechanics whatever the emotion models read; test_twilio_call.py checks the emotional path.
"""

from __future__ import annotations

from typing import Any

import pytest

from connectors.call.simulator import SimulatedCall
from connectors.twilio import simulator as twilio
from connectors.vonage import simulator as vonage
from tests.connectors.calls import SPEED, eventually
from tests.connectors.conftest import AUTH_TOKEN, VONAGE_HANDOFF_NUMBER, VONAGE_SECRET, VoiceStack
from tests.connectors.speech_fixtures import needs_espeak, speak

pytestmark = [pytest.mark.e2e, needs_espeak]


async def place(stack: VoiceStack, provider: str) -> tuple[SimulatedCall, str]:
    if provider == "twilio":
        call = await twilio.place_call(stack.url, AUTH_TOKEN, caller="+15550333", speed=SPEED)
        return call, call.call_sid
    vonage_call = await vonage.place_call(stack.url, VONAGE_SECRET, caller="15550333", speed=SPEED)
    return vonage_call, vonage_call.call_uuid


def moves(stack: VoiceStack, provider: str, call_id: str) -> list[tuple[Any, float]]:
    """What the provider's fake REST API accepted for this call: (the new instructions, when)."""
    if provider == "twilio":
        return [(u.twiml, u.at) for u in stack.twilio.updates if u.call_sid == call_id]
    return [(t.ncco, t.at) for t in stack.vonage.transfers if t.call_uuid == call_id]


EXPECTED = {
    "twilio": "<Response><Enqueue>support</Enqueue></Response>",
    "vonage": [{"action": "connect", "endpoint": [{"type": "phone", "number": VONAGE_HANDOFF_NUMBER}]}],
}


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["twilio", "vonage"])
async def test_a_caller_who_asks_for_a_person_is_moved_after_the_announcement(
    voice_stack: VoiceStack, provider: str
) -> None:
    call, call_id = await place(voice_stack, provider)
    try:
        await call.silence(0.5)
        await call.hear_opening()
        reply = await call.wait_reply(await call.say(await speak("I want to talk to a person, please.")))
        await eventually(lambda: bool(moves(voice_stack, provider, call_id)), within=20.0)
    finally:
        await call.hang_up()

    moved = moves(voice_stack, provider, call_id)
    tracker = voice_stack.tracker(call_id)
    assert len(moved) == 1, ([e.get("text") for e in tracker["events"] if e["event"] == "user"], tracker["slots"])
    assert moved[0][0] == EXPECTED[provider]
    assert tracker["slots"]["handed_off"] is True
    # The announcement played out (its mark came back) before the call moved.
    announcement = reply.marks[-1]
    assert announcement in call.returned_marks and call.returned_marks[announcement] <= moved[0][1]
