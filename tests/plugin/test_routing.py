import pytest
from hypothesis import given
from hypothesis import strategies as st

from plugin.routing import (
    ConversationState,
    RoutingConfig,
    TurnRecord,
    decide,
    ewma,
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


def test_an_unsure_negative_turn_does_not_count() -> None:
    unsure = [turn(i, "sad", -0.5, 0.3, confidence=0.2) for i in range(5)]
    assert not decide(state(*unsure), CFG).escalate


def test_cooldown_stops_repeated_escalation_then_lifts() -> None:
    negative = [turn(i, "angry", -0.5, 0.6, 0.6) for i in range(10)]
    assert not decide(state(*negative[:5], escalated_at=3), CFG).escalate
    assert decide(state(*negative[:9], escalated_at=3), CFG).escalate


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
)


@given(st.lists(records, max_size=30), st.one_of(st.none(), st.integers(0, 30)), st.integers(0, 3))
def test_decide_is_total_and_consistent(turns: list[TurnRecord], escalated_at: int | None, previous: int) -> None:
    decision = decide(state(*turns, escalated_at=escalated_at, previous=previous), CFG)
    assert decision.tone in {"empathetic", "calm", "neutral", "upbeat"}
    assert decision.escalate == (decision.reason is not None)
    if decision.escalate:
        assert turns and negative_streak(turns, CFG) >= 0
