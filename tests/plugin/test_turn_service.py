"""The turn service without Rasa: fusion into a record, privacy, Redis down, the customer's past, cooldown, cases."""

from __future__ import annotations

import logging

import pytest

from models.emotion import EmotionEstimate
from models.fusion import DEFAULT_FUSION, EvidenceFusion
from plugin.metadata import TurnMetadata
from plugin.nlu import shared_text_model
from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.settings import PrivacySettings, RedisSettings, Settings
from plugin.state import ConversationInfo
from plugin.turn import ConversationLog, EmotionReader, TurnService
from scripts.stack import RedisEndpoint

ANGRY = EmotionEstimate.from_probs("voice", {"angry": 0.8, "neutral": 0.2})
SAD = EmotionEstimate.from_probs("voice", {"sad": 0.8, "neutral": 0.2})
CHANNEL = "genesys"
INFO = ConversationInfo("conv-1", "+15550100", CHANNEL)
WORDS = "I want my money back"


def voice(estimate: EmotionEstimate = ANGRY, customer: str = INFO.customer_id) -> TurnMetadata:
    return TurnMetadata(customer, CHANNEL, estimates=(estimate,))


def on_redis(redis_endpoint: RedisEndpoint, prefix: str, routing: RoutingConfig | None = None) -> TurnService:
    redis = RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster, prefix=prefix)
    settings = Settings(redis=redis, routing=routing or RoutingConfig())
    return TurnService.connected(settings)


def test_a_turn_is_fused_from_the_voice_estimate_and_the_transcript_is_kept_only_when_allowed() -> None:
    log = ConversationLog(INFO)
    outcome = TurnService(Settings()).turn(log, WORDS, voice(), "s:1.0")
    assert outcome is not None and outcome.record is not None and not outcome.stored
    assert outcome.record.label == ANGRY.label and outcome.record.text is None
    assert outcome.record.valence < 0 and outcome.record.weights and log.turns == [outcome.record]
    keeping = TurnService(Settings(privacy=PrivacySettings(store_transcripts=True)))
    kept = keeping.turn(ConversationLog(INFO), WORDS, voice(), "s:1.0")
    assert kept is not None and kept.record is not None and kept.record.text == WORDS


def test_an_agent_turn_and_a_turn_without_any_estimate_are_not_recorded() -> None:
    service, log = TurnService(Settings()), ConversationLog(INFO)
    assert service.turn(log, WORDS, TurnMetadata(role="agent", estimates=(ANGRY,)), "s:1") is None
    assert service.turn(log, WORDS, TurnMetadata(), "s:2") is None  # no text model, no voice: nothing to read
    assert log.turns == []


def test_redis_down_is_logged_and_the_turns_still_decided(caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(redis=RedisSettings(url="redis://127.0.0.1:1/0", socket_timeout=0.1, prefix="nowhere"))
    service, log = TurnService.connected(settings), ConversationLog(INFO)
    with caplog.at_level(logging.WARNING):
        first = service.turn(log, WORDS, voice(), "s:1.0")
        second = service.turn(log, WORDS, voice(), "s:2.0")
    assert first is not None and second is not None
    assert not first.stored and not second.stored and len(log.turns) == 2
    assert "toneline.state.unavailable" in caplog.text


def test_a_customer_escalated_before_is_escalated_one_negative_turn_sooner(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    # Only the streak rule: no sharp outburst or sudden drop may escalate first.
    routing = RoutingConfig(sharp_confidence=1.0, sudden_drop=3.0)
    service = on_redis(redis_endpoint, redis_prefix, routing)
    assert service.store is not None
    needed = routing.sustained_turns
    earlier = ConversationInfo("conv-0", "+15550199", CHANNEL)
    angry = [TurnRecord(f"e{i}", 1.0 + i, "angry", -0.8, 0.8, 0.9, {"voice": 1.0}) for i in range(needed)]
    service.store.record(earlier, angry, summarize(angry, routing), Decision("empathetic", True, "streak", "rule"))

    def decisions(info: ConversationInfo) -> list[bool]:
        log, out = ConversationLog(info), []
        for i in range(needed):
            outcome = service.turn(log, "It still does not work.", voice(SAD, info.customer_id), f"{info}:{i}")
            assert outcome is not None and outcome.stored
            out.append(outcome.decision.escalate)
        return out

    first_time = decisions(ConversationInfo("conv-a", "+15550100", CHANNEL))
    again = decisions(ConversationInfo("conv-b", "+15550199", CHANNEL))
    assert first_time.index(True) == needed - 1, first_time
    assert again.index(True) == needed - 2, again


def test_the_customer_s_previous_words_are_the_text_model_s_context() -> None:
    model = shared_text_model(None, None)
    reader = EmotionReader(EvidenceFusion.load(DEFAULT_FUSION), lambda: model)
    before = ["My refund was rejected again.", "Nobody ever calls me back."]
    in_context = reader.text_estimate("Right.", "s:3.0", before)
    alone = reader.text_estimate("Right.", "s:3.0")
    assert in_context is not None and alone is not None
    assert in_context.probs == pytest.approx(model.predict("Right.", before).probs, abs=1e-6)
    assert in_context.probs != pytest.approx(alone.probs, abs=1e-3)


def test_six_angry_turns_escalate_once_with_one_handoff_case(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    # As for chat and phone bots: one escalation, then the cooldown, not one per angry turn; and one case for it.
    service = on_redis(redis_endpoint, redis_prefix)
    assert service.store is not None
    log = ConversationLog(INFO)
    outcomes = [service.turn(log, "This is outrageous, I am furious!", voice(), f"s:{i}") for i in range(6)]
    escalated = [i for i, o in enumerate(outcomes) if o is not None and o.decision.escalate]
    assert len(escalated) == 1 and escalated[0] <= 2, escalated  # sharp at once, or the streak of three
    assert log.escalated_at == escalated[0] + 1
    assert len(service.store.escalations(INFO.conversation_id)) == 1
    cases = [case for _, case in service.store.handoff_cases()]
    assert [(c["conversation_id"], c["channel"], c["customer_id"]) for c in cases] == [
        (INFO.conversation_id, CHANNEL, INFO.customer_id)
    ]
    case = cases[0]
    assert case["reason"] == outcomes[escalated[0]].decision.reason  # type: ignore[union-attr]
    assert [t["message_id"] for t in case["emotion_timeline"]] == [f"s:{i}" for i in range(escalated[0] + 1)]
    assert case["transcript"] == []  # transcripts are not kept by default


def test_every_service_fuses_with_the_fitted_fusion_by_default() -> None:
    # plugin.nlu.EmotionRecognizer and every channel without a bot read turns with load_fusion().
    assert DEFAULT_FUSION.exists(), "the fitted fusion ships in models/weights"
    assert isinstance(TurnService(Settings()).reader.fusion, EvidenceFusion)
