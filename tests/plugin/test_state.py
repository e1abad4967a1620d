import json
import logging
import threading

import pytest
import redis

from plugin.routing import Decision, RoutingConfig, TurnRecord, summarize
from plugin.schema import ConvKey
from plugin.settings import RedisSettings, StateSettings
from plugin.state import ConversationInfo, StateStore, StateUnavailable
from scripts.stack import RedisEndpoint, free_port

CFG = RoutingConfig()


def turns(n: int, start: int = 0, valence: float = -0.5) -> list[TurnRecord]:
    return [TurnRecord(f"m{i}", 1000.0 + i, "angry", valence, 0.7, 0.8, {"text": 1.0}) for i in range(start, start + n)]


def store_for(endpoint: RedisEndpoint, prefix: str, **kw: object) -> StateStore:
    settings = RedisSettings(url=endpoint.url, cluster=endpoint.cluster, prefix=prefix, **kw)  # type: ignore[arg-type]
    return StateStore(settings, StateSettings(max_turns=50))


def record(store: StateStore, info: ConversationInfo, ts: list[TurnRecord], escalate: bool = False) -> int:
    decision = Decision("calm", escalate, "because" if escalate else None, "rule" if escalate else None)
    return store.record(info, ts, summarize(ts, CFG), decision)


INFO = ConversationInfo("conv-1", "cust-1", "rest")


def test_turns_are_recorded_once_per_message_id(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    store = store_for(redis_endpoint, redis_prefix)
    assert record(store, INFO, turns(2)) == 2
    assert record(store, INFO, turns(3)) == 1, "only the new third turn is appended"
    assert record(store, INFO, turns(3)) == 0, "a retry adds nothing"
    assert [t.message_id for t in store.turns("conv-1")] == ["m0", "m1", "m2"]
    meta = store.meta("conv-1")
    assert meta["n_turns"] == "3" and meta["customer_id"] == "cust-1" and meta["tone"] == "calm"
    assert json.loads(meta["summary"])["negative_streak"] == 3
    assert json.loads(meta["summary"])["negative_recent"] == 3
    assert [e["type"] for e in store.conversation_events("conv-1")] == ["turn", "turn", "turn"]


def test_escalation_is_recorded_once_and_counts_for_the_customer(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    store = store_for(redis_endpoint, redis_prefix)
    record(store, INFO, turns(3), escalate=True)
    record(store, INFO, turns(3), escalate=True)
    kinds = [e["type"] for e in store.conversation_events("conv-1")]
    assert kinds.count("escalation") == 1
    assert store.previous_escalations("cust-1", "conv-1") == 0, "the current conversation does not count"
    assert store.previous_escalations("cust-1", "conv-2") == 1
    state = store.state(ConversationInfo("conv-1", "cust-1", "rest"))
    assert state.escalated_at_turn == 3 and len(state.turns) == 3


def test_history_across_conversations_and_ttl(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    store = store_for(redis_endpoint, redis_prefix, ttl_seconds=120)
    record(store, ConversationInfo("a", "cust", "rest"), turns(1), escalate=True)
    record(store, ConversationInfo("b", "cust", "twilio"), turns(2, valence=0.5))
    history = store.history("cust")
    assert {h["conversation_id"] for h in history} == {"a", "b"}
    assert {h["channel"] for h in history} == {"rest", "twilio"}
    conversations = list(store.client.scan_iter(match=f"{redis_prefix}:*:conv:*"))
    customer = list(store.client.scan_iter(match=f"{redis_prefix}:cust:*"))
    assert len(conversations) == 4 + 3 and len(customer) == 2, "a: 4 keys (escalated), b: 3, the customer: 2"
    for key in conversations + customer:
        assert 0 < store.client.ttl(key) <= 120


def test_turn_list_is_capped(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    store = StateStore(
        RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster, prefix=redis_prefix),
        StateSettings(max_turns=5, batch_turns=20),
    )
    record(store, INFO, turns(8))
    assert [t.message_id for t in store.turns("conv-1")] == ["m3", "m4", "m5", "m6", "m7"]


def test_concurrent_writers_never_duplicate_a_turn(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    stores = [store_for(redis_endpoint, redis_prefix) for _ in range(4)]
    threads = [threading.Thread(target=lambda s=s: [record(s, INFO, turns(k)) for k in range(1, 11)]) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [t.message_id for t in stores[0].turns("conv-1")] == [f"m{i}" for i in range(10)]


def test_unreachable_redis_fails_fast_and_recovers() -> None:
    port = free_port()  # nothing listens here
    store = StateStore(RedisSettings(url=f"redis://127.0.0.1:{port}/0", retry_after_seconds=60))
    with pytest.raises(StateUnavailable):
        record(store, INFO, turns(1))
    assert store.breaker.failures == 1
    with pytest.raises(StateUnavailable, match="marked unavailable"):
        store.turns("conv-1")  # refused at once, no new connection attempt
    assert store.breaker.failures == 1


def test_an_outage_warns_on_its_1st_2nd_4th_failure_and_says_when_redis_is_back(
    redis_endpoint: RedisEndpoint, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_for(redis_endpoint, redis_prefix, retry_after_seconds=0.0)

    def refused() -> None:
        raise redis.ConnectionError("Connection refused")

    caplog.set_level(logging.DEBUG, logger="plugin.state")
    for _ in range(5):
        with pytest.raises(StateUnavailable):
            store._call("replay", refused)
    warnings = [r for r in caplog.records if "toneline.state.unavailable" in r.getMessage()]
    assert [r.levelno for r in warnings] == [logging.WARNING] * 2 + [logging.DEBUG, logging.WARNING, logging.DEBUG]
    assert record(store, INFO, turns(1)) == 1, "a real call goes through once the pause is over"
    back = [r.getMessage() for r in caplog.records if "toneline.state.recovered" in r.getMessage()]
    assert len(back) == 1 and "failed_in_a_row=5" in back[0]
    assert store.breaker.in_a_row == 0 and store.breaker.failures == 5


def test_breaker_retries_after_the_pause(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    store = store_for(redis_endpoint, redis_prefix, retry_after_seconds=0.0)
    store.breaker.trip()
    assert record(store, INFO, turns(1)) == 1
    assert store.client.exists(store.keys.conv("conv-1", ConvKey.TURNS))


def test_meta_keeps_the_last_turn_and_every_escalation(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    store = store_for(redis_endpoint, redis_prefix)
    record(store, INFO, turns(2), escalate=True)
    record(store, INFO, turns(4), escalate=True)
    assert json.loads(store.meta("conv-1")["last_turn"])["message_id"] == "m3"
    assert [e["message_id"] for e in store.escalations("conv-1")] == ["m1", "m3"]
    assert all(e["reason"] == "because" and e["at"] > 0 for e in store.escalations("conv-1"))


def test_decisions_wait_for_a_replica_and_say_so_when_none_has_them(
    redis_endpoint: RedisEndpoint, redis_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    store = store_for(redis_endpoint, redis_prefix, replica_acks=1, replica_wait_ms=50)
    caplog.set_level(logging.WARNING, logger="plugin.state")
    record(store, INFO, turns(2))  # a turn without a decision does not wait
    record(store, INFO, turns(3), escalate=True)
    store.push_handoff({"conversation_id": "conv-1", "dedupe_key": "k"})
    assert len(store.escalations("conv-1")) == 1 and len(store.handoff_cases()) == 1, "written either way"
    unreplicated = [r for r in caplog.records if "toneline.state.unreplicated" in r.getMessage()]
    if redis_endpoint.cluster:  # every master of the test cluster has a replica
        assert not unreplicated
    else:  # the suite's single Redis has none: said, and not waited for longer than asked
        assert redis.Redis.from_url(redis_endpoint.url).info("replication")["connected_slaves"] == 0
        assert len(unreplicated) == 2
