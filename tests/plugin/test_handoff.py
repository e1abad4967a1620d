from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from models.emotion import EmotionEstimate
from models.fusion import AttentionFusion
from plugin.handoff import build_case
from plugin.routing import message_key
from scripts.stack import RedisEndpoint


def user(text: str, ts: float, **probs: float) -> dict[str, Any]:
    emotion = AttentionFusion().fuse([EmotionEstimate.from_probs("text", probs)]).to_dict()
    return {
        "event": "user",
        "text": text,
        "timestamp": ts,
        "message_id": f"m{ts}",
        "parse_data": {"intent": {"name": "complain"}, "toneline": emotion},
    }


EVENTS: list[Mapping[str, Any]] = [
    {"event": "action", "name": "action_listen"},
    user("hi", 1.0, neutral=1.0),
    {"event": "bot", "text": "Hello!", "timestamp": 1.5},
    user("this is terrible", 2.0, angry=0.9, sad=0.1),
    {"event": "user", "text": "agent turn", "timestamp": 3.0, "parse_data": {}},
    user("broken", 4.0, angry=0.5) | {"parse_data": {"toneline": {"probs": [1]}}},
]


def test_the_case_has_timeline_transcript_and_reason() -> None:
    case = build_case("conv", EVENTS, customer_id="cust", channel="rest", reason="sharp", transcript_turns=3, now=9.0)
    assert case["reason"] == "sharp" and case["created_at"] == 9.0 and case["customer_id"] == "cust"
    assert [t["label"] for t in case["emotion_timeline"]] == ["neutral", "angry"], "invalid entries are skipped"
    assert case["emotion_timeline"][1]["valence"] < 0 and case["emotion_timeline"][1]["intent"] == "complain"
    assert [line["text"] for line in case["transcript"]] == ["this is terrible", "agent turn", "broken"]


def test_transcript_can_be_switched_off() -> None:
    assert build_case("c", EVENTS, customer_id="c", channel="x", reason="r", transcript_turns=0)["transcript"] == []


def test_the_same_decision_has_the_same_dedupe_key_and_long_ids_are_bounded() -> None:
    first = build_case("conv", EVENTS, customer_id="cust", channel="rest", reason="sharp", transcript_turns=3, now=9.0)
    again = build_case("conv", EVENTS, customer_id="cust", channel="rest", reason="sharp", transcript_turns=3, now=20.0)
    later = build_case(
        "conv", [*EVENTS, user("more", 5.0, angry=1.0)], customer_id="c", channel="r", reason="s", transcript_turns=3
    )
    assert first["dedupe_key"] == again["dedupe_key"] != later["dedupe_key"]
    long = build_case("x" * 5000, EVENTS, customer_id="y" * 5000, channel="rest", reason="r", transcript_turns=0)
    assert len(long["conversation_id"]) <= 128 and len(long["customer_id"]) <= 128


def test_messages_without_an_id_get_distinct_ids_from_their_time_not_the_string_none() -> None:
    events = [{**e, "message_id": None} if e.get("event") == "user" else e for e in EVENTS[:4]]
    case = build_case("conv", events, customer_id="c", channel="rest", reason="sharp", transcript_turns=0)
    ids = [t["message_id"] for t in case["emotion_timeline"]]
    assert ids == ["at-1.000000", "at-2.000000"] and case["trigger_message_id"] == "at-2.000000"
    assert message_key("m1", 1.0) == "m1" and message_key("", None) == "unknown"


def test_cases_held_while_redis_is_down_are_written_once_in_order_after_a_restart(
    redis_endpoint: RedisEndpoint, redis_prefix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:

    from plugin.handoff import HandoffOutbox
    from plugin.settings import RedisSettings
    from plugin.state import StateStore
    from scripts.stack import free_port

    monkeypatch.setenv("TONELINE_OUTBOX_DIR", str(tmp_path))
    down = StateStore(
        RedisSettings(
            url=f"redis://127.0.0.1:{free_port()}/0",
            cluster=redis_endpoint.cluster,
            prefix=redis_prefix,
            retry_after_seconds=60,
        )
    )
    before = HandoffOutbox(down)
    cases = [build_case(c, EVENTS, customer_id=c, channel="rest", reason="r", transcript_turns=1) for c in "abc"]
    assert [before.push(case) for case in cases] == [None, None, None]
    assert before.push(cases[0]) is None  # the same decision again (a retry): still one case in the end
    # The process dies; its successor, with Redis back, replays what was held.
    up = RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster, prefix=redis_prefix)
    after = HandoffOutbox(StateStore(up))
    assert after.outbox.flush()
    assert after.push(build_case("d", EVENTS, customer_id="d", channel="rest", reason="r", transcript_turns=1))
    written = [case["conversation_id"] for _, case in after.store.handoff_cases()]
    assert written == ["a", "b", "c", "d"]
    assert after.outbox.pending_bytes() == 0


def test_the_emotion_analysis_notice_is_not_part_of_the_agent_s_transcript() -> None:
    from plugin.handoff import transcript
    from plugin.metadata import DISCLOSURE_KEY

    events: list[Mapping[str, Any]] = [
        {"event": "bot", "text": "This service uses emotion recognition.", "metadata": {DISCLOSURE_KEY: True}},
        {"event": "user", "text": "my bill is wrong", "timestamp": 1.0},
        {"event": "bot", "text": "Let me check.", "timestamp": 2.0},
    ]
    assert [line["text"] for line in transcript(events, 10)] == ["my bill is wrong", "Let me check."]
