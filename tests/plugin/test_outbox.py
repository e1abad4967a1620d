"""The durable outbox: writes Redis refused wait on disk and reach Redis once, in order, also after a restart."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from plugin.outbox import DurableOutbox
from plugin.routing import Decision, RoutingConfig, summarize
from plugin.settings import RedisSettings
from plugin.state import ConversationInfo, StateStore
from scripts.stack import RedisEndpoint, free_port
from tests.plugin.test_state import turns


class Switch:
    """Redis as the outbox sees it: down (a port nobody listens on) until `up()`."""

    def __init__(self, endpoint: RedisEndpoint, prefix: str) -> None:
        self.real = StateStore(RedisSettings(url=endpoint.url, cluster=endpoint.cluster, prefix=prefix))
        nowhere = f"redis://127.0.0.1:{free_port()}/0"  # a cluster client finds no node there either
        self.down = StateStore(
            RedisSettings(url=nowhere, cluster=endpoint.cluster, prefix=prefix, retry_after_seconds=0.0)
        )
        self.current = self.down

    def up(self) -> None:
        self.current = self.real

    def apply(self, entry: dict[str, Any]) -> Any:
        return self.current.apply(entry)


def case(conversation_id: str, at: float) -> dict[str, Any]:
    # Cases of different conversations live in different shards' streams: their creation time orders them.
    return {"conversation_id": conversation_id, "dedupe_key": conversation_id, "created_at": at}


def escalation(store: StateStore, conv: str, customer: str, n: int) -> dict[str, Any]:
    said = turns(n)
    decision = Decision(tone="calm", escalate=True, reason="3 negative turns in a row", rule="sustained")
    info = ConversationInfo(conv, customer, "rest")
    return store.record_entry(info, said, summarize(said, RoutingConfig()), decision, now=100.0)


def test_an_escalation_decided_during_an_outage_reaches_redis_once_after_a_restart(
    redis_endpoint: RedisEndpoint, redis_prefix: str, tmp_path: Path
) -> None:
    redis = Switch(redis_endpoint, redis_prefix)
    path = tmp_path / "state.jsonl"
    first = DurableOutbox(path, redis.apply, retry_after=60)
    assert first.submit(escalation(redis.real, "conv-1", "cust-1", 3)) == (False, None)
    assert first.submit(escalation(redis.real, "conv-2", "cust-2", 2)) == (False, None)
    held = path.read_text()
    redis.up()
    second = DurableOutbox(path, redis.apply, retry_after=60)  # the restarted process
    assert second.flush() and not path.exists()
    path.write_text(held)  # a replay cut short before the file was rewritten: runs again
    assert second.flush()
    meta = redis.real.meta("conv-1")
    assert meta["escalation_reason"] == "3 negative turns in a row" and meta["escalation_rule"] == "sustained"
    assert len(redis.real.escalations("conv-1")) == 1 and len(redis.real.turns("conv-1")) == 3
    assert redis.real.previous_escalations("cust-1", "another-conversation") == 1
    events = redis.real.conversation_events("conv-1") + redis.real.conversation_events("conv-2")
    assert [f["type"] for f in events].count("escalation") == 2, "one escalation event per conversation"


def test_held_entries_keep_their_order_and_a_new_one_never_overtakes_them(
    redis_endpoint: RedisEndpoint, redis_prefix: str, tmp_path: Path
) -> None:
    redis = Switch(redis_endpoint, redis_prefix)
    outbox = DurableOutbox(tmp_path / "handoffs.jsonl", redis.apply, retry_after=60)
    for at, name in enumerate(("a", "b")):
        outbox.submit(redis.real.handoff_entry(case(name, at)))
    redis.up()
    written, _ = outbox.submit(redis.real.handoff_entry(case("c", 2)))
    assert written
    assert [c["conversation_id"] for _, c in redis.real.handoff_cases()] == ["a", "b", "c"]


def test_the_background_replay_writes_without_further_traffic(
    redis_endpoint: RedisEndpoint, redis_prefix: str, tmp_path: Path
) -> None:
    import time

    redis = Switch(redis_endpoint, redis_prefix)
    outbox = DurableOutbox(tmp_path / "handoffs.jsonl", redis.apply, retry_after=0.05)
    outbox.submit(redis.real.handoff_entry(case("a", 0)))
    redis.up()
    deadline = time.monotonic() + 5
    while outbox.pending_bytes() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [c["conversation_id"] for _, c in redis.real.handoff_cases()] == ["a"]


def test_a_torn_last_line_is_skipped_and_the_rest_replayed(
    redis_endpoint: RedisEndpoint, redis_prefix: str, tmp_path: Path
) -> None:
    redis = Switch(redis_endpoint, redis_prefix)
    path = tmp_path / "handoffs.jsonl"
    outbox = DurableOutbox(path, redis.apply, retry_after=60)
    outbox.submit(redis.real.handoff_entry(case("a", 0)))
    with path.open("a") as handle:
        handle.write('{"op": "handoff", "keys": [')  # the process died mid-write...
    outbox.submit(redis.real.handoff_entry(case("b", 1)))  # ...its successor goes on
    redis.up()
    assert outbox.flush()
    assert [c["conversation_id"] for _, c in redis.real.handoff_cases()] == ["a", "b"]
    shutil.rmtree(tmp_path, ignore_errors=True)
