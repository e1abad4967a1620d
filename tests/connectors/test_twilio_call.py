"""End to end: a simulated Twilio call into the running demo bot (Rasa, actions, Redis, fake Twilio REST)."""

from __future__ import annotations

import base64
import re

import numpy as np
import pytest

from connectors.speech.codec import FRAME_BYTES, canonical_from_mulaw
from connectors.twilio.simulator import place_call
from models.voice import DEFAULT_HEAD
from tests.connectors.calls import ANGRY_CALLER, SPEED, eventually, greeted, user_turns
from tests.connectors.conftest import AUTH_TOKEN, VoiceStack
from tests.connectors.speech_fixtures import needs_espeak, speak

pytestmark = [pytest.mark.e2e, needs_espeak]


async def transferred(stack: VoiceStack, call_sid: str, within: float) -> bool:
    return await eventually(lambda: any(u.call_sid == call_sid for u in stack.twilio.updates), within)


@pytest.mark.asyncio
async def test_a_caller_is_heard_and_answered_in_mulaw_with_a_mark(voice_stack: VoiceStack) -> None:
    call = await place_call(voice_stack.url, AUTH_TOKEN, caller="+15550111", speed=SPEED)
    reply = await greeted(call)

    assert reply.frames and reply.marks, call.received[-5:]
    assert all(len(f) == FRAME_BYTES for f in reply.frames)
    audio = canonical_from_mulaw(b"".join(reply.frames))
    assert audio.size > 16000 and float(np.sqrt(np.mean(audio**2))) > 0.01  # a second or more of real speech
    kinds = [m["event"] for m in call.received]
    assert kinds.index("mark") > kinds.index("media")
    assert all(m["streamSid"] == call.stream_sid for m in call.received)
    assert all(base64.b64decode(m["media"]["payload"]) for m in call.received if m["event"] == "media")

    tracker = voice_stack.tracker(call.call_sid)
    turns = user_turns(tracker)
    assert turns and "hello" in turns[0]["text"].lower(), [t["text"] for t in turns]
    # The Whisper pass started during the end-of-turn silence and served the turn.
    answered = re.search(rf"twilio\.turn\.answered call_id={call.call_sid} .*", voice_stack.log())
    assert answered and "early=true" in answered.group(0), answered
    assert turns[0]["input_channel"] == "toneline_twilio"
    block = turns[0]["metadata"]["toneline"]
    assert block["channel"] == "twilio" and block["customer_id"] == "+15550111"
    emotion = tracker["latest_message"]["toneline"]
    assert "text" in emotion["weights"]
    if DEFAULT_HEAD.exists():
        assert "voice" in emotion["weights"] and emotion["weights"]["voice"] > 0, emotion["weights"]
        # The answered turn joined the call's caller baseline (only its count is ever logged).
        pattern = rf"twilio\.call\.closed call_id={call.call_sid} .*"
        await eventually(lambda: re.search(pattern, voice_stack.log()) is not None, within=5.0)
        closed = re.search(pattern, voice_stack.log())
        assert closed and f"baseline_turns={len(turns)}" in closed.group(0), closed
    else:
        pytest.skip(f"voice head {DEFAULT_HEAD} not trained yet: transcript and reply checked, voice weight not")


@pytest.mark.asyncio
async def test_an_angry_caller_is_transferred_through_twilio_rest(voice_stack: VoiceStack) -> None:
    call = await place_call(voice_stack.url, AUTH_TOKEN, caller="+15550122", speed=SPEED)
    try:
        await call.silence(0.5)
        # Three negative turns in a row escalate (toneline.yml); a sharp outburst may do it sooner.
        for text in ANGRY_CALLER:
            await call.wait_reply(await call.say(await speak(text)))
            if await transferred(voice_stack, call.call_sid, within=4.0):
                break
        # The transfer waits for the handoff announcement to finish playing.
        await transferred(voice_stack, call.call_sid, within=20.0)
    finally:
        await call.hang_up()

    updates = [u for u in voice_stack.twilio.updates if u.call_sid == call.call_sid]
    tracker = voice_stack.tracker(call.call_sid)
    said = [t["text"] for t in user_turns(tracker)]
    assert len(updates) == 1, (said, tracker["slots"])
    assert updates[0].twiml == "<Response><Enqueue>support</Enqueue></Response>"
    assert tracker["slots"]["handed_off"] is True
    # The announcement was played (its mark came back) before the call moved. Under load the
    # transfer can land while the next utterance streams, so look for the last reply with audio.
    spoken = [r for r in call.replies if r.marks and r.frames]
    assert spoken, call.received[-5:]
    announcement = spoken[-1].marks[-1]
    assert announcement in call.returned_marks, (announcement, call.returned_marks)
    assert call.returned_marks[announcement] <= updates[0].at


@pytest.mark.asyncio
async def test_the_disclosure_is_the_first_thing_a_caller_hears_and_is_heard_whole(voice_stack: VoiceStack) -> None:
    call = await place_call(voice_stack.url, AUTH_TOKEN, caller="+15550177", speed=SPEED)
    try:
        # Before the caller says a word the bot speaks: the notice, sentence by sentence, each with its mark.
        assert await eventually(lambda: any(m["event"] == "mark" for m in call.received), within=30.0)
        assert call.received[0]["event"] == "media", call.received[:2]
        # The caller talks over it at once: it is not cut off, and the caller is answered after it.
        await call.wait_reply(await call.say(await speak("Hello, is anyone there?")))
        assert await eventually(lambda: bool(user_turns(voice_stack.tracker(call.call_sid))), within=30.0)
        await call.wait_played()
    finally:
        await call.hang_up()
    assert not any(m["event"] == "clear" for m in call.received), "the notice is never interrupted"
    spoken = re.search(rf"twilio\.disclosure\.spoken call_id={call.call_sid} sentences=(\d+)", voice_stack.log())
    assert spoken and int(spoken.group(1)) >= 2, spoken
    tracker = voice_stack.tracker(call.call_sid)
    assert user_turns(tracker)[0]["metadata"]["toneline"]["disclosed"] is True
    bot_lines = [e.get("text") or "" for e in tracker["events"] if e["event"] == "bot"]
    assert bot_lines and not any("emotion recognition" in line for line in bot_lines), "Rasa does not repeat it"
