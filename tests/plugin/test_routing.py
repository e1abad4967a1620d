import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.emotion import LABELS, TurnEmotion
from plugin.routing import (
    ConversationState,
    RoutingConfig,
    TurnRecord,
    decide,
    ewma,
    is_negative,
    negative_streak,
    summarize,
    trend,
)

CFG = RoutingConfig()


def turn(i: int, label: str, valence: float, arousal: float = 0.5, confidence: float = 0.8) -> TurnRecord:
    return TurnRecord(f"m{i}", float(i), label, valence, arousal, confidence)


def state(*turns: TurnRecord, escalated_at: int | None = None, previous: int = 0) -> ConversationState:
    return ConversationState("conv", "cust", tuple(turns), escalated_at, previous)


CALM = [turn(i, "neutral", 0.05, 0.2) for i in range(6)]
ANGRY_RISING = [
    turn(0, "neutral", 0.0, 0.2),
    turn(1, "sad", -0.3, 0.4, 0.6),
    turn(2, "angry", -0.4, 0.6, 0.6),
    turn(3, "angry", -0.5, 0.7, 0.6),
]


def test_a_calm_conversation_never_escalates() -> None:
    for n in range(1, len(CALM) + 1):
        decision = decide(state(*CALM[:n]), CFG)
        assert not decision.escalate and decision.tone == "neutral"


def test_sustained_negative_turns_escalate_with_the_reason() -> None:
    assert not decide(state(*ANGRY_RISING[:3]), CFG).escalate
    decision = decide(state(*ANGRY_RISING), CFG)
    assert decision.escalate and decision.rule == "sustained_negative"
    assert "3 negative turns in a row" in (decision.reason or "")


def test_one_sharp_turn_escalates_at_once() -> None:
    decision = decide(state(turn(0, "neutral", 0.0), turn(1, "angry", -0.8, 0.9, 0.9)), CFG)
    assert decision.escalate and decision.rule in {"sharp_negative", "sudden_drop"}


def fused(**probs: float) -> TurnRecord:
    """A record built the way the policy builds one, from a fused turn's probabilities."""
    full = [probs.get(name, 0.0) for name in LABELS]
    return TurnRecord.of(TurnEmotion(tuple(full), {"text": 1.0}), "m1", 1.0)


def test_an_outburst_split_between_anger_and_disgust_escalates_at_once() -> None:
    # The top label is unsure (0.49) but the turn is surely negative (0.99) and hot.
    split = fused(angry=0.49, disgusted=0.43, sad=0.07, neutral=0.01)
    assert split.confidence < CFG.sharp_confidence <= split.negativity
    decision = decide(state(turn(0, "neutral", 0.0, 0.2), split), CFG)
    assert decision.escalate and decision.rule == "sharp_negative"
    assert "negative with probability 0.99" in (decision.reason or "")


def test_a_cold_negative_turn_is_not_an_outburst() -> None:
    # As surely negative, but sad: the sustained rule handles it, not the sharp one.
    sad = fused(sad=0.9, angry=0.05, neutral=0.05)
    assert not decide(state(turn(0, "neutral", 0.0, 0.2), sad), CFG).escalate


def test_negative_turns_split_across_labels_count_towards_the_streak() -> None:
    # No label above min_confidence (0.35), but negative with probability 0.96.
    spread = [fused(sad=0.33, angry=0.32, fearful=0.31, neutral=0.04) for _ in range(3)]
    assert all(t.confidence < CFG.min_confidence for t in spread)
    assert negative_streak(spread, CFG) == 3


def test_records_written_before_negative_existed_fall_back_to_confidence() -> None:
    old = {"message_id": "m", "ts": 1.0, "label": "angry", "valence": -0.8, "arousal": 0.9, "confidence": 0.8}
    record = TurnRecord.from_dict(old)
    assert record.negative is None and record.negativity == 0.8
    assert TurnRecord.from_dict({**old, "negative": 0.95}).negativity == 0.95


def test_an_unsure_negative_turn_does_not_count() -> None:
    unsure = [turn(i, "sad", -0.5, 0.3, confidence=0.2) for i in range(5)]
    assert not decide(state(*unsure), CFG).escalate


def test_cooldown_stops_repeated_escalation_then_lifts() -> None:
    negative = [turn(i, "angry", -0.5, 0.6, 0.6) for i in range(10)]
    assert not decide(state(*negative[:5], escalated_at=3), CFG).escalate
    # The cooldown is the `cooldown_turns` turns after the escalation; the next one may escalate again.
    assert not decide(state(*negative[: 3 + CFG.cooldown_turns], escalated_at=3), CFG).escalate
    assert decide(state(*negative[: 4 + CFG.cooldown_turns], escalated_at=3), CFG).escalate


def test_a_customer_escalated_before_needs_one_turn_less() -> None:
    two_bad = ANGRY_RISING[:1] + [turn(1, "sad", -0.4, 0.4, 0.6), turn(2, "sad", -0.45, 0.4, 0.6)]
    assert not decide(state(*two_bad), CFG).escalate
    assert decide(state(*two_bad, previous=1), CFG).escalate


@pytest.mark.parametrize(
    ("valence", "arousal", "tone"),
    [(-0.6, 0.3, "empathetic"), (-0.6, 0.9, "calm"), (0.0, 0.5, "neutral"), (0.8, 0.7, "upbeat")],
)
def test_tone_follows_running_valence_and_arousal(valence: float, arousal: float, tone: str) -> None:
    turns = [turn(i, "x", valence, arousal, 0.2) for i in range(3)]  # low confidence: no escalation
    assert decide(state(*turns), CFG).tone == tone


def test_summary_numbers() -> None:
    s = summarize(ANGRY_RISING, CFG)
    assert s.n_turns == 4 and s.negative_streak == 3
    assert s.trend < 0 and s.peak_negative_valence == -0.5 and s.peak_arousal == 0.7
    assert trend([1.0, 2.0, 3.0]) == pytest.approx(1.0)
    assert ewma([0.0, 1.0], 0.5) == pytest.approx(0.5)


def test_config_fails_fast_naming_the_key() -> None:
    with pytest.raises(ValueError, match="sustained_turn"):
        RoutingConfig.from_mapping({"sustained_turn": 3})
    with pytest.raises(ValueError, match="sustained_turns"):
        RoutingConfig.from_mapping({"sustained_turns": "three"})
    with pytest.raises(ValueError, match="ewma_alpha"):
        RoutingConfig.from_mapping({"ewma_alpha": 0})
    assert RoutingConfig.from_mapping({"sustained_turns": 2}).sustained_turns == 2


records = st.builds(
    TurnRecord,
    message_id=st.uuids().map(str),
    ts=st.floats(0, 1e9),
    label=st.sampled_from(["neutral", "angry", "happy"]),
    valence=st.floats(-1, 1),
    arousal=st.floats(0, 1),
    confidence=st.floats(0, 1),
    negative=st.one_of(st.none(), st.floats(0, 1)),
)


@given(records)
def test_records_round_trip_through_json(record: TurnRecord) -> None:
    back = TurnRecord.from_dict(json.loads(json.dumps(record.to_dict())))
    assert back.negativity == pytest.approx(record.negativity, abs=1e-4)
    assert back.label == record.label and back.message_id == record.message_id


@given(st.lists(records, max_size=30), st.one_of(st.none(), st.integers(0, 30)), st.integers(0, 3))
def test_decide_is_total_and_consistent(turns: list[TurnRecord], escalated_at: int | None, previous: int) -> None:
    decision = decide(state(*turns, escalated_at=escalated_at, previous=previous), CFG)
    assert decision.tone in {"empathetic", "calm", "neutral", "upbeat"}
    assert decision.escalate == (decision.reason is not None)
    if decision.escalate:
        # Every rule (streak, sharp, sudden drop) needs the latest turn itself to be negative,
        # and no escalation may fire inside the cooldown after an earlier one.
        assert turns and is_negative(turns[-1], CFG)
        assert escalated_at is None or len(turns) - escalated_at > CFG.cooldown_turns
        assert decision.rule in {"sustained_negative", "sharp_negative", "sudden_drop"}
