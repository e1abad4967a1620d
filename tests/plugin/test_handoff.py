from models.emotion import EmotionEstimate
from models.fusion import AttentionFusion
from plugin.handoff import build_case


def user(text: str, ts: float, **probs: float) -> dict:
    emotion = AttentionFusion().fuse([EmotionEstimate.from_probs("text", probs)]).to_dict()
    return {
        "event": "user",
        "text": text,
        "timestamp": ts,
        "message_id": f"m{ts}",
        "parse_data": {"intent": {"name": "complain"}, "toneline": emotion},
    }


EVENTS = [
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


def test_outbox_holds_cases_while_redis_is_down_and_writes_them_in_order(redis_endpoint, redis_prefix) -> None:  # type: ignore[no-untyped-def]
    import json

    from plugin.handoff import HandoffOutbox
    from plugin.settings import RedisSettings
    from plugin.state import StateStore
    from scripts.stack import free_port

    down = StateStore(
        RedisSettings(url=f"redis://127.0.0.1:{free_port()}/0", prefix=redis_prefix, retry_after_seconds=0.0)
    )
    outbox = HandoffOutbox(down, capacity=2)
    assert outbox.push({"conversation_id": "a"}) is None
    assert outbox.push({"conversation_id": "b"}) is None
    assert outbox.push({"conversation_id": "c"}) is None  # over capacity: "a" is dropped, with a log line
    outbox.store = StateStore(RedisSettings(url=redis_endpoint.url, prefix=redis_prefix))  # Redis is back
    assert outbox.push({"conversation_id": "d"})
    entries = outbox.store.client.xrange(outbox.store.handoff_stream)
    written = [json.loads(fields["data"])["conversation_id"] for _, fields in entries]
    assert written == ["b", "c", "d"] and not outbox.pending
