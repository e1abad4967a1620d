"""An AudioHook session end to end: Genesys-style client -> Rasa's server -> emotion turns in Redis.

Stereo call: the customer speaks on `external`, the agent (different words) on
`internal`. Only the customer's utterances become turns; the agent is never heard.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from connectors.audiohook.simulator import open_session
from models.audio import SAMPLE_RATE
from plugin.schema import ConvKey, Keys
from tests.connectors.conftest import AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET, VoiceStack
from tests.connectors.speech_fixtures import needs_espeak, speak

pytestmark = pytest.mark.e2e
CUSTOMER = ["I have been waiting for an hour and nobody helps me.", "This is unacceptable, I want my money back."]
AGENT = ["Thank you for calling, my name is Alex.", "Let me check the order for you, Sir."]
AGENT_WORDS = ("alex", "calling", "order")


def ws_url(stack: VoiceStack) -> str:
    return stack.url.replace("http://", "ws://") + "/webhooks/toneline_audiohook/ws"


def silence(seconds: float) -> NDArray[Any]:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


async def conversation() -> tuple[NDArray[Any], NDArray[Any]]:
    """Alternating turns: each side is silent while the other speaks, as on a real call."""
    customer, agent = [], []
    for said, answered in zip(CUSTOMER, AGENT):
        c, a = await speak(said), await speak(answered, rate=170)
        customer += [c, silence(0.8 + a.size / SAMPLE_RATE + 0.8)]
        agent += [silence(c.size / SAMPLE_RATE + 0.8), a, silence(0.8)]
    return np.concatenate(customer), np.concatenate(agent)


@needs_espeak
@pytest.mark.asyncio
async def test_customer_turns_reach_redis_and_the_agent_channel_is_never_analysed(voice_stack: VoiceStack) -> None:
    customer, agent = await conversation()
    call = await open_session(ws_url(voice_stack), AUDIOHOOK_API_KEY, AUDIOHOOK_SECRET, ani="+15550123", speed=3.0)
    opened = call.received[0]
    assert opened["parameters"]["media"][0]["channels"] == ["external", "internal"]
    await call.stream(customer, agent)
    assert (await call.request("ping", "pong"))["clientseq"] == call.seq
    await call.request("pause", "paused")
    await call.stream(await speak("This sentence is said on hold and must not count."), None, tail_s=0.5)
    await call.request("resume", "resumed")
    closed = await call.close()
    assert closed["type"] == "closed"
    seqs = [m["seq"] for m in call.received]
    assert seqs == list(range(1, len(seqs) + 1))

    client = voice_stack.redis()
    keys, conv = Keys(voice_stack.prefix), call.conversation_id
    turns = [json.loads(t) for t in client.lrange(keys.conv(conv, ConvKey.TURNS), 0, -1)]
    assert len(turns) == len(CUSTOMER)
    text = " ".join(t["text"].lower() for t in turns)
    assert "waiting" in text and "money" in text
    assert not any(word in text for word in AGENT_WORDS) and "hold" not in text
    assert all(t["label"] and -1 <= t["valence"] <= 1 for t in turns)
    events = [
        fields for _, fields in client.xrange(keys.events(keys.shard_of(conv))) if fields["conversation_id"] == conv
    ]
    assert [e["type"] for e in events if e["type"] == "turn"] == ["turn"] * len(CUSTOMER)
    assert {e["channel"] for e in events} == {"genesys"} and {e["customer_id"] for e in events} == {"+15550123"}
    meta = client.hgetall(keys.conv(conv, ConvKey.META))
    assert (meta["channel"], meta["n_turns"]) == ("genesys", str(len(CUSTOMER)))
    closed_line = re.search(rf"audiohook\.session\.closed session_id={call.session_id} .*", voice_stack.log())
    # Every analysed customer turn was offered to the session's caller baseline, which took the calm ones
    # (on hold: nothing was heard).
    offered = closed_line and re.search(r"baseline_turns=(\d+) baseline_passed_over=(\d+)", closed_line.group(0))
    assert offered and int(offered.group(1)) + int(offered.group(2)) == len(CUSTOMER), closed_line
