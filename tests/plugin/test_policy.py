from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from models.emotion import EmotionEstimate
from models.fusion import AttentionFusion
from plugin.policy import EmotionPolicy, TrackerLogs
from plugin.state import ConversationInfo, StateStore
from scripts.stack import RedisEndpoint, free_port

REPO = Path(__file__).resolve().parents[2]
DOMAIN = Domain.load(str(REPO / "rasa_project" / "domain.yml"))


def policy_with(
    tmp_path: Path, rasa_context: tuple[Any, ...], redis: RedisEndpoint | str, prefix: str
) -> EmotionPolicy:
    config_file = tmp_path / "toneline.yml"
    url, cluster = (redis, False) if isinstance(redis, str) else (redis.url, redis.cluster)
    settings = {"url": url, "cluster": cluster, "prefix": prefix, "retry_after_seconds": 60}
    config_file.write_text(yaml.safe_dump({"redis": settings}))
    config = {**EmotionPolicy.get_default_config(), "config": str(config_file)}
    return EmotionPolicy(config, *rasa_context)


def user_turn(text: str, intent: str, **probs: float) -> UserUttered:
    emotion = AttentionFusion().fuse([EmotionEstimate.from_probs("text", probs)]).to_dict()
    parse = {"text": text, "intent": {"name": intent, "confidence": 0.9}, "entities": [], "toneline": emotion}
    return UserUttered(text, parse_data=parse, message_id=uuid.uuid4().hex)


def tracker_of(*events: object, sender: str | None = None) -> DialogueStateTracker:
    return DialogueStateTracker.from_events(
        sender or uuid.uuid4().hex, [ActionExecuted(ACTION_LISTEN_NAME), *events], slots=DOMAIN.slots
    )


def predicted(prediction: object) -> str | None:
    probs = np.asarray(prediction.probabilities)  # type: ignore[attr-defined]
    return DOMAIN.action_names_or_texts[int(probs.argmax())] if probs.max() > 0 else None


ANGRY = [
    ("my bill is wrong", "billing_question", {"angry": 0.8, "neutral": 0.2}),
    ("I was charged twice, again", "billing_question", {"angry": 0.9, "sad": 0.1}),
    ("this is ridiculous", "complain", {"angry": 0.95, "disgusted": 0.05}),
]


def conversation(turns: list[Any]) -> list[Any]:
    events: list[Any] = []
    for text, intent, probs in turns:
        events += [
            user_turn(text, intent, **probs),
            ActionExecuted("utter_billing"),
            ActionExecuted(ACTION_LISTEN_NAME),
        ]
    return events[:-2]  # end right after the last customer message


def test_sustained_anger_predicts_the_handoff_and_records_it(
    tmp_path: Path, rasa_context: tuple[Any, ...], redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    policy = policy_with(tmp_path, rasa_context, redis_endpoint, redis_prefix)
    tracker = tracker_of(*conversation(ANGRY))
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    assert predicted(prediction) == "action_handoff"
    assert prediction.policy_priority == 7
    slots = {e.key: e.value for e in prediction.events if isinstance(e, SlotSet)}
    assert slots["toneline_tone"] == "calm" and "negative" in slots["toneline_escalation_reason"]
    store = StateStore(policy.settings.redis)
    assert len(store.turns(tracker.sender_id)) == 3
    assert store.meta(tracker.sender_id)["escalation_rule"]


def test_calm_customer_gets_no_prediction_and_no_needless_slot_events(
    tmp_path: Path, rasa_context: tuple[Any, ...], redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    policy = policy_with(tmp_path, rasa_context, redis_endpoint, redis_prefix)
    tracker = tracker_of(*conversation([("hello", "greet", {"neutral": 0.9, "happy": 0.1})] * 4))
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    assert predicted(prediction) is None
    assert [e.key for e in prediction.events] == ["toneline_emotion"]


def test_after_the_handoff_it_listens_and_mid_turn_it_abstains(
    tmp_path: Path, rasa_context: tuple[Any, ...], redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    policy = policy_with(tmp_path, rasa_context, redis_endpoint, redis_prefix)
    handed = tracker_of(*conversation(ANGRY), ActionExecuted("action_handoff"))
    assert predicted(policy.predict_action_probabilities(handed, DOMAIN)) == ACTION_LISTEN_NAME
    mid_turn = tracker_of(*conversation(ANGRY), ActionExecuted("utter_billing"))
    assert predicted(policy.predict_action_probabilities(mid_turn, DOMAIN)) is None


def test_no_second_escalation_during_the_cooldown(
    tmp_path: Path, rasa_context: tuple[Any, ...], redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    policy = policy_with(tmp_path, rasa_context, redis_endpoint, redis_prefix)
    events = conversation(ANGRY) + [ActionExecuted("action_handoff"), ActionExecuted(ACTION_LISTEN_NAME)]
    events += [user_turn("still angry", "complain", angry=0.95, sad=0.05)]
    assert predicted(policy.predict_action_probabilities(tracker_of(*events), DOMAIN)) is None


def test_without_redis_the_policy_still_decides_from_the_tracker(tmp_path: Path, rasa_context: tuple[Any, ...]) -> None:
    policy = policy_with(tmp_path, rasa_context, f"redis://127.0.0.1:{free_port()}/0", "nowhere")
    prediction = policy.predict_action_probabilities(tracker_of(*conversation(ANGRY)), DOMAIN)
    assert predicted(prediction) == "action_handoff"
    assert policy.service.store is not None
    assert policy.service.store.breaker.failures == 1


# Issue 30's held-out angry caller: angry, neutral, angry, angry. No run of three; three of the last four.
MOSTLY_UPSET = [
    ("my bill is wrong", "billing_question", {"sad": 0.7, "angry": 0.2, "neutral": 0.1}),
    ("it is the account ending 42", "provide_account_number", {"neutral": 0.9, "happy": 0.1}),
    ("I was charged twice, again", "billing_question", {"sad": 0.7, "angry": 0.2, "neutral": 0.1}),
    ("nobody ever fixes it", "complain", {"sad": 0.7, "angry": 0.2, "neutral": 0.1}),
]


def test_mostly_upset_turns_hand_over_with_redis_and_from_the_tracker_alone(
    tmp_path: Path, rasa_context: tuple[Any, ...], redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    policy = policy_with(tmp_path, rasa_context, redis_endpoint, redis_prefix)
    for n in range(1, len(MOSTLY_UPSET)):
        assert (
            predicted(policy.predict_action_probabilities(tracker_of(*conversation(MOSTLY_UPSET[:n])), DOMAIN)) is None
        )
    tracker = tracker_of(*conversation(MOSTLY_UPSET))
    prediction = policy.predict_action_probabilities(tracker, DOMAIN)
    assert predicted(prediction) == "action_handoff"
    slots = {e.key: e.value for e in prediction.events if isinstance(e, SlotSet)}
    assert "3 of the last 4 turns negative" in slots["toneline_escalation_reason"]
    meta = StateStore(policy.settings.redis).meta(tracker.sender_id)
    assert meta["escalation_rule"] == "sustained_share"
    assert json.loads(meta["summary"])["negative_recent"] == 3
    # Redis away: the same decision from the tracker.
    offline = policy_with(tmp_path, rasa_context, f"redis://127.0.0.1:{free_port()}/0", "nowhere")
    prediction = offline.predict_action_probabilities(tracker_of(*conversation(MOSTLY_UPSET)), DOMAIN)
    assert predicted(prediction) == "action_handoff"
    assert offline.service.store is not None and offline.service.store.breaker.failures >= 1


def test_turns_without_emotion_are_left_alone(
    tmp_path: Path, rasa_context: tuple[Any, ...], redis_prefix: str, redis_endpoint: RedisEndpoint
) -> None:
    policy = policy_with(tmp_path, rasa_context, redis_endpoint, redis_prefix)
    agent = UserUttered("let me check", parse_data={"intent": {"name": "affirm"}}, message_id="x")
    prediction = policy.predict_action_probabilities(tracker_of(agent), DOMAIN)
    assert predicted(prediction) is None and prediction.events == []


def test_training_checks_the_domain(tmp_path: Path, rasa_context: tuple[Any, ...]) -> None:
    policy = policy_with(tmp_path, rasa_context, "redis://127.0.0.1:1/0", "x")
    policy.train([], DOMAIN)
    with pytest.raises(Exception, match="slots"):
        policy.train([], Domain.from_dict({"intents": ["greet"], "actions": ["action_handoff"]}))


def test_tracker_logs_hold_at_most_their_turn_budget_dropping_the_least_recently_served() -> None:
    logs = TrackerLogs("action_handoff", keep_text=False, limit=200, conversations=100, turns=5)
    senders = [uuid.uuid4().hex for _ in range(3)]
    trackers = {s: tracker_of(*conversation(ANGRY[:2]), sender=s) for s in senders}
    first = logs.log(trackers[senders[0]], ConversationInfo(senders[0], senders[0], "rest"))
    for s in senders[1:]:
        logs.log(trackers[s], ConversationInfo(s, s, "rest"))
    assert logs.held == (2, 4), "the third conversation's 2 turns pushed the first (least recent) out"
    again = logs.log(trackers[senders[0]], ConversationInfo(senders[0], senders[0], "rest"))
    assert again is not first and again.turns == first.turns, "an evicted conversation is re-read from its tracker"
    assert logs.held == (2, 4)


def test_each_turn_reads_only_the_new_events_and_a_tracker_that_changed_is_read_whole() -> None:
    events = conversation(ANGRY)
    sender = uuid.uuid4().hex
    info = ConversationInfo(sender, sender, "rest")
    logs = TrackerLogs("action_handoff", keep_text=False, limit=200)
    first = logs.log(tracker_of(*events[:1], sender=sender), info)
    whole = tracker_of(*events, ActionExecuted("action_handoff"), sender=sender)
    later = logs.log(whole, info)
    fresh = TrackerLogs("action_handoff", keep_text=False, limit=200).log(whole, info)
    assert later is first, "the conversation's log is carried on, not rebuilt"
    assert (later.turns, later.escalated_at) == (fresh.turns, fresh.escalated_at) and len(later.turns) == 3
    other = tracker_of(*conversation(ANGRY[:1]), sender=sender)  # same sender, another history (a restart)
    reread = logs.log(other, info)
    assert reread is not first and [t.message_id for t in reread.turns] == [other.latest_message.message_id]
    assert reread.escalated_at is None
