"""Conversations over Rasa's REST channel against the trained demo bot and real Redis."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import yaml

from models.emotion import LABELS, EmotionEstimate
from plugin.schema import ConvKey
from scripts.stack import REPO
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

ROUTING = yaml.safe_load((REPO / "rasa_project" / "toneline.yml").read_text())["routing"]
HANDOFF_MARK = "member of our team"

ANGRIER = [
    "Hi, I have a question about my bill",
    "I was charged twice this month and I'm not happy about it",
    "This is ridiculous, I've called three times and nobody has fixed it!",
    "I'm absolutely furious, this is the worst service I have ever had!",
    "I am so angry right now, you people are useless!",
    "This is a disgrace, I hate dealing with you!",
]
CALM = [
    "Hello there",
    "I have a question about my bill",
    "Thanks, that makes sense",
    "Can I set up autopay?",
    "Great, thank you so much for your help!",
]


def sender() -> str:
    return f"e2e-{uuid.uuid4().hex[:10]}"


def emotion_of(stack: Stack, who: str) -> dict[str, Any]:
    emotion: dict[str, Any] = stack.tracker(who)["latest_message"]["toneline"]
    return emotion


def test_a_customer_growing_angrier_is_handed_to_a_human_with_the_reason(stack: Stack) -> None:
    who = sender()
    limit = ROUTING["sustained_turns"] + 1  # the greeting turn is not negative
    for turn, text in enumerate(ANGRIER[: limit + 1], start=1):
        replies = stack.say(who, text)
        assert replies, f"turn {turn}: the bot must answer"
        if any(HANDOFF_MARK in r for r in replies):
            break
    else:
        pytest.fail(f"no handoff within {limit + 1} turns; last emotion {emotion_of(stack, who)}")
    assert turn <= limit + 1
    slots = stack.tracker(who)["slots"]
    assert slots["handed_off"] is True
    assert "negative" in slots["toneline_escalation_reason"]
    (case,) = stack.handoffs(who)
    assert "negative" in case["reason"] and case["customer_id"] == who
    assert len(case["emotion_timeline"]) == turn
    assert case["emotion_timeline"][-1]["valence"] < 0
    assert case["transcript"][0] == {"from": "customer", "text": ANGRIER[0], "ts": case["transcript"][0]["ts"]}
    meta = stack.redis().hgetall(stack.keys.conv(who, ConvKey.META))
    assert meta["escalation_reason"] == case["reason"]


def test_a_calm_customer_is_not_escalated(stack: Stack) -> None:
    who = sender()
    for text in CALM:
        replies = stack.say(who, text)
        assert replies and not any(HANDOFF_MARK in r for r in replies)
    tracker = stack.tracker(who)
    assert tracker["slots"]["handed_off"] is False
    assert tracker["slots"]["toneline_tone"] in {"neutral", "upbeat"}
    assert stack.handoffs(who) == []
    assert stack.redis().llen(stack.keys.conv(who, ConvKey.TURNS)) == len(CALM)


def test_the_same_intent_gets_a_gentler_reply_when_the_customer_is_upset(stack: Stack) -> None:
    calm, upset = sender(), sender()
    calm_reply = stack.say(calm, "I have a question about my bill")
    stack.say(upset, "I'm really upset, nothing works and nobody helps me")
    upset_reply = stack.say(upset, "Why was I charged twice? I'm so frustrated with this")
    assert stack.tracker(upset)["latest_message"]["intent"]["name"] == "billing_question"
    assert stack.tracker(upset)["slots"]["toneline_tone"] in {"empathetic", "calm"}
    assert upset_reply != calm_reply
    assert any(word in upset_reply[0] for word in ("sorry", "understand")), upset_reply


def test_asking_for_a_person_hands_over_with_that_reason(stack: Stack) -> None:
    who = sender()
    replies = stack.say(who, "I want to talk to a person")
    assert any(HANDOFF_MARK in r for r in replies)
    (case,) = stack.handoffs(who)
    assert case["reason"] == "customer asked for a human agent"


def test_a_voice_estimate_in_metadata_reaches_the_parse_data(stack: Stack) -> None:
    who = sender()
    voice = EmotionEstimate.from_probs("voice", {"angry": 0.95, "neutral": 0.05}).to_dict()
    stack.say(who, "okay, thanks for checking", {"toneline": {"voice": voice, "channel": "twilio"}})
    emotion = emotion_of(stack, who)
    assert set(emotion["weights"]) == {"text", "voice"}
    assert emotion["weights"]["voice"] > emotion["weights"]["text"]
    assert stack.redis().hget(stack.keys.conv(who, ConvKey.META), "channel") == "twilio"


@pytest.mark.parametrize("metadata", [{"toneline": "loud"}, {"toneline": {"voice": {"probs": [9]}}}, {"other": 1}])
def test_malformed_metadata_still_gets_an_answer(stack: Stack, metadata: dict[str, Any]) -> None:
    who = sender()
    assert stack.say(who, "my internet is down", metadata)
    assert set(emotion_of(stack, who)["weights"]) == {"text"}


def test_redis_outage_mid_conversation(stack: Stack) -> None:
    if stack.state is None:
        pytest.skip("needs `redis-server` on PATH to stop and restart Toneline's Redis")
    who = sender()
    turns_key = stack.keys.conv(who, ConvKey.TURNS)
    assert stack.say(who, "Hello there")
    assert stack.redis().llen(turns_key) == 1
    stack.state.stop()
    try:
        for text in ("my internet is down", "it has been down since yesterday"):
            replies = stack.say(who, text)
            assert replies, "the bot keeps answering while Redis is down"
        assert stack.tracker(who)["latest_message"]["toneline"]["label"]
    finally:
        stack.state.start()
    assert "toneline.state.unavailable" in stack.log_path.read_text()
    assert stack.redis().llen(turns_key) >= 1, "the turn stored before the outage survived it (held ones may follow)"
    time.sleep(2.5)  # the breaker's retry_after_seconds
    assert stack.say(who, "thanks, bye")
    recorded = [stack.redis().lindex(turns_key, i) for i in range(4)]
    assert all(recorded), "turns missed during the outage are backfilled from the tracker"


def test_each_message_is_read_in_the_context_of_the_conversation(stack: Stack) -> None:
    from plugin.nlu import shared_text_model

    who = sender()
    stack.say(who, "Hi, I have a question about my bill")
    stack.say(who, "Fine.")
    events = stack.tracker(who)["events"]
    said = [e["text"] for e in events if e["event"] in ("user", "bot") and (e.get("text") or "").strip()]
    assert said[-1] != "Fine." and "Fine." in said, "the bot answered the second message"
    before = said[: said.index("Fine.")][-2:]
    assert len(before) == 2 and before[-1] != "Hi, I have a question about my bill", "the bot's answer came between"
    text_estimate = emotion_of(stack, who)["estimates"][0]
    model = shared_text_model(None, None)
    expected, alone = model.predict("Fine.", before), model.predict("Fine.")
    got = [text_estimate["probs"][label] for label in LABELS]
    assert got == pytest.approx(list(expected.probs), abs=1e-4), "Rasa's tracker gave the text model its context"
    assert got != pytest.approx(list(alone.probs), abs=1e-3)


# What callers really say, as Whisper writes it: none of it is a request for a person.
DIGIT_STRINGS = [
    "123456",
    "one two three four five six",
    "4 8 1 5 9 2 7",
    "Six. Nine. Four. Two. Seven.",
    "0, 7, 3, 3, 1, 9",
    "nine eight seven",
    "55 12 90 33",
]
SINGLE_WORDS = ["yes", "okay", "hello", "no", "thanks", "sure", "right"]
NOISE = ["uh", "hmm", "[BLANK_AUDIO]", "...", "um, uh", "you", "(coughing)", "[Music]"]
OUT_OF_SCOPE = [
    "what's the weather like in Paris",
    "can you recommend a good restaurant",
    "the quick brown fox jumps over the lazy dog",
    "he was not an ill disposed young man",
    # Talking about people is not asking for one.
    "I saw a nice person today",
    "my manager is on holiday this week",
]


def handed_off(replies: list[str]) -> bool:
    return any(HANDOFF_MARK in r for r in replies)


@pytest.mark.parametrize(
    "turns",
    [DIGIT_STRINGS, SINGLE_WORDS, NOISE, OUT_OF_SCOPE],
    ids=["digit strings", "single words", "noise", "out of scope"],
)
def test_what_callers_really_say_never_transfers(stack: Stack, turns: list[str]) -> None:
    who = sender()
    for text in turns:
        replies = stack.say(who, text)
        intent = stack.tracker(who)["latest_message"]["intent"]["name"]
        assert replies, f"{text!r}: the bot must answer (intent {intent})"
        assert not handed_off(replies), f"{text!r} was transferred (intent {intent}): {replies}"
        assert intent != "request_human", f"{text!r} read as a request for a person"
    tracker = stack.tracker(who)
    assert tracker["slots"]["handed_off"] is False
    assert stack.handoffs(who) == []


def test_noise_and_out_of_scope_turns_get_a_request_to_rephrase(stack: Stack) -> None:
    who = sender()
    for text in ("[BLANK_AUDIO]", "what's the weather like in Paris"):
        reply = stack.say(who, text)[-1]  # after the disclosure, on the first turn
        assert "another way" in reply or "didn't catch" in reply, (text, reply)


def test_a_billing_question_asks_for_the_account_and_answers_with_it(stack: Stack) -> None:
    who = sender()
    replies = stack.say(who, "I have a question about my bill")
    assert "account number" in replies[-1], replies
    replies = stack.say(who, "one two three four five six")
    tracker = stack.tracker(who)
    assert tracker["latest_message"]["intent"]["name"] == "provide_account_number"
    assert tracker["slots"]["account_number"] == "123456"
    assert "1 2 3 4 5 6" in replies[-1] and "bill" in replies[-1], replies


def test_an_outage_report_uses_the_account_number_given_with_digits(stack: Stack) -> None:
    who = sender()
    stack.say(who, "my internet is down")
    replies = stack.say(who, "my account number is 4815927")
    assert stack.tracker(who)["slots"]["account_number"] == "4815927"
    assert "4 8 1 5 9 2 7" in replies[-1] and "outage" in replies[-1], replies


def test_an_account_number_given_first_is_confirmed_and_used_for_the_next_question(stack: Stack) -> None:
    who = sender()
    reply = stack.say(who, "7 7 3 1 0 9 4")[-1]  # after the disclosure
    assert "7 7 3 1 0 9 4" in reply and "bill or about an outage" in reply, reply
    replies = stack.say(who, "I want to change my payment date")
    assert "7 7 3 1 0 9 4" in replies[-1], replies


def test_a_number_too_short_for_an_account_is_asked_again(stack: Stack) -> None:
    who = sender()
    stack.say(who, "I have a question about my bill")
    (reply,) = stack.say(who, "three four five")
    assert "3 4 5" in reply and "again" in reply, reply
    assert stack.tracker(who)["slots"]["account_number"] is None


def test_after_a_transfer_the_bot_says_once_a_person_is_joining_then_stays_quiet(stack: Stack) -> None:
    who = sender()
    assert stack.say(who, "I have a question about my bill")
    replies = stack.say(who, "Can I speak to a person please?")
    assert sum(HANDOFF_MARK in r for r in replies) == 1, replies
    later = ["hello?", "I have a question about my bill", "123456", "I want to talk to a person", "I'm furious!"]
    for text in later:
        assert stack.say(who, text) == [], f"the bot answered {text!r} after the transfer"
    tracker = stack.tracker(who)
    assert tracker["slots"]["handed_off"] is True and tracker["paused"] is True
    events = tracker["events"]
    # action_handoff's own events: its announcement, the slots, then the pause.
    paused_at = max(i for i, e in enumerate(events) if e["event"] == "pause")
    assert events[paused_at - 4]["name"] == "action_handoff", events[paused_at - 4 :]
    after = events[paused_at + 1 :]
    assert [e["text"] for e in after if e["event"] == "user"] == later, "the customer's turns are still recorded"
    assert all(e["parse_data"]["toneline"] for e in after if e["event"] == "user"), "and still read for emotion"
    assert [e for e in after if e["event"] in ("bot", "action")] == []
    assert len(stack.handoffs(who)) == 1
