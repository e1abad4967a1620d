"""The AudioHook turn recorder without a stack: fusion into a `TurnRecord`, privacy, and Redis down."""

from __future__ import annotations

import logging

import pytest

from connectors.audiohook.recorder import CHANNEL, EmotionRecorder
from connectors.speech.recognizer import Hearing
from models.emotion import EmotionEstimate
from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.settings import PrivacySettings, RedisSettings, Settings
from plugin.state import ConversationInfo, StateStore
from scripts.stack import RedisEndpoint

ANGRY = EmotionEstimate.from_probs("voice", {"angry": 0.8, "neutral": 0.2})
SAD = EmotionEstimate.from_probs("voice", {"sad": 0.8, "neutral": 0.2})
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


def test_a_customer_escalated_before_is_escalated_one_negative_turn_sooner(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    # Only the streak rule: no sharp outburst or sudden drop may escalate first.
    routing = RoutingConfig(sharp_confidence=1.0, sudden_drop=3.0)
    settings = Settings(redis=RedisSettings(url=redis_endpoint.url, prefix=redis_prefix), routing=routing)
    store = StateStore(settings.redis, settings.state)
    needed = routing.sustained_turns
    fresh, returning = EmotionRecorder(settings, store), EmotionRecorder(settings, store)
    earlier = ConversationInfo("conv-0", "+15550199", CHANNEL)
    angry = [TurnRecord(f"e{i}", 1.0 + i, "angry", -0.8, 0.8, 0.9, {"voice": 1.0}) for i in range(needed)]
    store.record(earlier, angry, summarize(angry, settings.routing), Decision("empathetic", True, "streak", "rule"))

    def decisions(recorder: EmotionRecorder, info: ConversationInfo) -> list[bool]:
        history: list = []
        out = []
        for i in range(needed):
            heard = Hearing("I am really disappointed, it still does not work.", SAD, 0.01, 10.0, 10.0)
            recorded = recorder.turn(info, history, heard, f"s:{i}")
            assert recorded is not None and recorded.stored
            out.append(recorded.decision.escalate)
        return out

    first_time = decisions(fresh, ConversationInfo("conv-a", "+15550100", CHANNEL))
    again = decisions(returning, ConversationInfo("conv-b", "+15550199", CHANNEL))
    assert first_time.index(True) == needed - 1, first_time
    assert again.index(True) == needed - 2, again


def test_the_customer_s_previous_words_are_the_text_model_s_context() -> None:
    from plugin.nlu import shared_text_model

    model = shared_text_model(None, None)
    recorder = EmotionRecorder(Settings(), None, text_model=lambda: model)
    before = ["My refund was rejected again.", "Nobody ever calls me back."]
    in_context = recorder.text_estimate("Right.", "s:3.0", before)
    alone = recorder.text_estimate("Right.", "s:3.0")
    assert in_context is not None and alone is not None
    assert in_context.probs == pytest.approx(model.predict("Right.", before).probs, abs=1e-6)
    assert in_context.probs != pytest.approx(alone.probs, abs=1e-3)


def test_angry_turns_on_an_agent_call_escalate_once_then_cool_down(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    # As EmotionPolicy does for chat and phone bots: one escalation, then the cooldown, not one per angry turn.
    settings = Settings(redis=RedisSettings(url=redis_endpoint.url, prefix=redis_prefix))
    recorder = EmotionRecorder(settings, StateStore(settings.redis, settings.state))
    history: list = []
    escalated_on: str | None = None
    escalations = []
    for i in range(6):
        heard = Hearing("This is outrageous, I am furious with you people!", ANGRY, 0.01, 10.0, 10.0)
        recorded = recorder.turn(INFO, history, heard, f"s:{i}", (), escalated_on)
        assert recorded is not None
        if recorded.decision.escalate:
            escalated_on = f"s:{i}"
            escalations.append(i)
    cooldown = settings.routing.cooldown_turns
    assert escalations and escalations[0] <= 2, escalations  # sharp at once, or the streak of three
    # Never again inside the cooldown (before the fix, every one of the six turns escalated).
    assert all(later - earlier >= cooldown for earlier, later in zip(escalations, escalations[1:])), escalations
    assert len(escalations) <= 2, escalations


def test_agent_calls_are_fused_with_the_fitted_fusion_like_every_other_channel() -> None:
    # plugin.nlu.EmotionRecognizer fuses chat, phone and video turns with load_fusion(); so must agent calls.
    from models.fusion import DEFAULT_FUSION, EvidenceFusion

    assert DEFAULT_FUSION.exists(), "the fitted fusion ships in models/weights"
    assert isinstance(EmotionRecorder(Settings(), None).fusion, EvidenceFusion)
