"""The AudioHook turn recorder without a stack: fusion into a `TurnRecord`, privacy, and Redis down."""

from __future__ import annotations

import logging

import pytest

from connectors.audiohook.recorder import CHANNEL, EmotionRecorder
from connectors.speech.recognizer import Hearing
from models.emotion import EmotionEstimate
from plugin.settings import PrivacySettings, RedisSettings, Settings
from plugin.state import ConversationInfo, StateStore

ANGRY = EmotionEstimate.from_probs("voice", {"angry": 0.8, "neutral": 0.2})
INFO = ConversationInfo("conv-1", "+15550100", CHANNEL)


def hearing(text: str = "I want my money back") -> Hearing:
    return Hearing(text, ANGRY, 0.01, 10.0, 10.0)


def test_a_turn_is_built_from_the_voice_estimate_and_the_transcript_is_kept_only_when_allowed() -> None:
    recorder = EmotionRecorder(Settings(), None)
    record = recorder.build(hearing(), "s:1.0", 1.0)
    assert record is not None and record.label == ANGRY.label and record.text is None
    assert record.valence < 0 and record.weights
    keeping = EmotionRecorder(Settings(privacy=PrivacySettings(store_transcripts=True)), None)
    kept = keeping.build(hearing(), "s:1.0", 1.0)
    assert kept is not None and kept.text == "I want my money back"


def test_redis_down_is_logged_and_the_session_carries_on(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(redis=RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=0.1))
    recorder = EmotionRecorder(settings, StateStore(settings.redis, settings.state))
    history: list = []
    with caplog.at_level(logging.WARNING):
        first = recorder.turn(INFO, history, hearing(), "s:1.0")
        second = recorder.turn(INFO, history, hearing(), "s:2.0")
    assert first is not None and second is not None
    assert not first.stored and not second.stored and len(history) == 2
    assert "audiohook.state.unavailable" in caplog.text
