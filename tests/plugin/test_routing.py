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


def read(pattern: str, start: int = 0) -> list[TurnRecord]:
    """Turns from a pattern: "a" a negative turn (angry, not an outburst), "n" a neutral one."""
    made = {"a": lambda i: turn(i, "angry", -0.45, 0.6, 0.6), "n": lambda i: turn(i, "neutral", 0.0, 0.3)}
    return [made[c](start + i) for i, c in enumerate(pattern)]


def first_escalation(turns: list[TurnRecord], previous: int = 0) -> tuple[int, str | None] | None:
    """The turn (1-based) and rule of the first escalation, turn by turn, as the policy decides."""
    for n in range(1, len(turns) + 1):
        decision = decide(state(*turns[:n], previous=previous), CFG)
        if decision.escalate:
            return n, decision.rule
    return None


def test_mostly_negative_turns_with_a_calmer_one_between_escalate_as_sustained() -> None:
    # The held-out angry caller of issue 30 read angry, neutral, angry, angry: no run of three, 3 of the last 4.
    assert first_escalation(read("ana")) is None
    assert first_escalation(read("anaa")) == (4, "sustained_share")
    assert first_escalation(read("aana")) == (4, "sustained_share")
    decision = decide(state(*read("naana")), CFG)
    assert decision.escalate and decision.rule == "sustained_share"
    share = "3 of the last 4 turns negative (angry, angry, (neutral), angry)"
    assert decision.reason == f"sustained negative emotion: {share}"
    # An unbroken run is still named as one.
    assert first_escalation(read("naaa")) == (4, "sustained_negative")


@pytest.mark.parametrize("pattern", ["nnnnnn", "annnnn", "nnannn", "nanann", "anannana", "nnanan" * 3, "aannaann"])
def test_one_or_two_isolated_negative_turns_in_a_calm_call_never_escalate(pattern: str) -> None:
    assert first_escalation(read(pattern)) is None


def test_the_share_rule_escalates_on_a_negative_turn_only_and_not_inside_the_cooldown() -> None:
    turns = read("aaa") + read("nnaaa", 3) + read("na", 8)
    # Escalated at turn 3; turns 4 to 8 are the cooldown (turn 8 ends a run of three inside it). At turn 9, 3 of
    # the last 4 are negative, but turn 9 itself reads neutral: no handoff on a calm turn. Turn 10 escalates.
    assert not any(decide(state(*turns[:n], escalated_at=3), CFG).escalate for n in range(4, 10))
    decision = decide(state(*turns, escalated_at=3), CFG)
    assert decision.escalate and decision.rule == "sustained_share"


def test_a_customer_escalated_before_needs_one_negative_turn_fewer_in_the_share_too() -> None:
    assert first_escalation(read("nana")) is None
    assert first_escalation(read("nana"), previous=1) == (4, "sustained_share")
    assert first_escalation(read("ana"), previous=1) == (3, "sustained_share")
    assert first_escalation(read("annn" * 3), previous=1) is None  # one negative turn in any four


def test_a_window_as_long_as_the_run_keeps_only_the_unbroken_run() -> None:
    streak_only = RoutingConfig.from_mapping({"sustained_window": 3})
    assert not any(decide(state(*read("anaa")[:n]), streak_only).escalate for n in range(1, 5))
    assert decide(state(*read("anaaa")), streak_only).rule == "sustained_negative"
    wider = RoutingConfig.from_mapping({"sustained_window": 5})
    assert decide(state(*read("aanna")), wider).rule == "sustained_share"


@pytest.mark.parametrize(
    ("valence", "arousal", "tone"),
    [(-0.6, 0.3, "empathetic"), (-0.6, 0.9, "calm"), (0.0, 0.5, "neutral"), (0.8, 0.7, "upbeat")],
)
def test_tone_follows_running_valence_and_arousal(valence: float, arousal: float, tone: str) -> None:
    turns = [turn(i, "x", valence, arousal, 0.2) for i in range(3)]  # low confidence: no escalation
    assert decide(state(*turns), CFG).tone == tone


def test_summary_numbers() -> None:
    s = summarize(ANGRY_RISING, CFG)
    assert s.n_turns == 4 and s.negative_streak == 3 and s.negative_recent == 3
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
    with pytest.raises(ValueError, match="sustained_window"):
        RoutingConfig.from_mapping({"sustained_turns": 5})  # the window (4) cannot hold the run
    assert RoutingConfig.from_mapping({"sustained_turns": 5, "sustained_window": 6}).sustained_window == 6


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
        assert decision.rule in {"sustained_negative", "sustained_share", "sharp_negative", "sudden_drop"}
