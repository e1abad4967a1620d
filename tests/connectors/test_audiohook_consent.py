"""An AudioHook customer who opted out (on any channel) gets the ASR pass only: the voice head never runs,
and nothing of the turn is recorded (the real turn service on a real Redis; Whisper is the fake)."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import redis

from connectors.audiohook.serializer import MediaFormat, Open, Participant
from connectors.audiohook.session import AudioHookSession
from connectors.speech.runtime import RuntimeSettings, SpeechRuntime
from models.emotion import EmotionEstimate
from models.turns import Turn
from plugin.consent import Consent
from plugin.schema import ConvKey, Keys
from plugin.settings import RedisSettings, Settings
from plugin.turn import TurnService
from scripts.stack import RedisEndpoint
from tests.connectors.fakes import FakeRecognizer, FakeTts, caller_speech

OPEN = Open(
    "org",
    "conv-ah-1",
    Participant("p-1", ani="+15550123"),
    (MediaFormat("audio", "PCMU", ("external", "internal"), 8000),),
)


@pytest.mark.asyncio
async def test_an_opted_out_customer_s_voice_is_never_read(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    service = TurnService.connected(Settings(redis=RedisSettings(url=redis_endpoint.url, prefix=redis_prefix)))
    angry = EmotionEstimate.from_probs("voice", {"angry": 0.9, "neutral": 0.1})
    recognizer = FakeRecognizer(["I want my money back", "I am furious"], voice=angry)
    runtime = SpeechRuntime(RuntimeSettings(), tts=FakeTts(), loader=lambda _: recognizer)
    executor = ThreadPoolExecutor(1)
    session = AudioHookSession("s-1", OPEN, runtime, service, executor)
    try:
        await session._analyse(Turn(caller_speech(0.8), 0.0, 1.0, 0.9))
        assert recognizer.emotions == [True]
        service.keep_consent("+15550123", Consent(True, time.time(), "metadata"))  # a CRM says so
        await session._analyse(Turn(caller_speech(0.8, seed=1), 2.0, 3.0, 2.9))
        assert recognizer.emotions == [True, False], "the voice head is not asked to run"
    finally:
        await asyncio.get_running_loop().run_in_executor(executor, lambda: None)
        executor.shutdown()
        runtime.close()
    turns = redis.Redis.from_url(redis_endpoint.url, decode_responses=True).lrange(
        Keys(redis_prefix).conv("conv-ah-1", ConvKey.TURNS), 0, -1
    )
    assert len(turns) == 1, "only the turn before the opt-out is recorded"
