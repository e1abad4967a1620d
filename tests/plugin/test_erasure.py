"""Erasure of one customer: afterwards no key, stream entry or held write under the prefix names them.

The state is written by the real turn service (turns, an escalation and its handoff case, the
customer's consent), the dashboard's claim and a write held on disk while Redis was away; then
every key under the prefix is scanned, names and values, for the customer id.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

from models.emotion import EmotionEstimate
from plugin.analytics.data import Dashboard
from plugin.consent import Consent
from plugin.erasure import Eraser, scan
from plugin.handoff import HandoffOutbox, build_case_from_records
from plugin.metadata import TurnMetadata
from plugin.outbox import outbox_for
from plugin.redis_client import SyncClient, connect, connect_async
from plugin.schema import CustKey, Keys
from plugin.settings import PrivacySettings, RedisSettings, Settings
from plugin.state import ConversationInfo, StateStore
from plugin.turn import ConversationLog, TurnService
from scripts.stack import RedisEndpoint

ANGRY = EmotionEstimate.from_probs("voice", {"angry": 0.95, "neutral": 0.05})
GONE = "cust-erase-7f3a"
KEPT = "cust-keep-91b2"
REPO = Path(__file__).resolve().parents[2]


def values(client: SyncClient, key: str) -> Iterator[str]:
    """Every string stored at `key`, whatever its type."""
    kind = client.type(key)
    if kind == "string":
        yield str(client.get(key))
    elif kind == "hash":
        for field, value in client.hgetall(key).items():
            yield from (field, value)
    elif kind == "list":
        yield from client.lrange(key, 0, -1)
    elif kind == "set":
        yield from client.smembers(key)
    elif kind == "zset":
        yield from client.zrange(key, 0, -1)
    elif kind == "stream":
        for entry_id, fields in client.xrange(key):
            yield entry_id
            for field, value in fields.items():
                yield from (field, value)


def mentions(client: SyncClient, prefix: str, customer: str) -> list[str]:
    """Keys under `prefix` that name the customer, in every shard (on a cluster, on every master)."""
    found = []
    for key in scan(client, f"{prefix}:*"):
        if ":rollup:" in key:
            continue  # counts and a HyperLogLog: no id can be read back (docs/compliance.md)
        if customer in key or any(customer in value for value in values(client, key)):
            found.append(key)
    return found


def converse(service: TurnService, customer: str, conversation: str, channel: str) -> None:
    """Angry turns until the rules escalate (the turn service opens the case), with their words kept."""
    log = ConversationLog(ConversationInfo(conversation, customer, channel))
    for i in range(4):
        service.turn(
            log,
            f"{customer} is furious, turn {i}",
            TurnMetadata(customer, channel, estimates=(ANGRY,)),
            f"{conversation}:{i}",
        )


def redis_on(redis_endpoint: RedisEndpoint, prefix: str) -> RedisSettings:
    return RedisSettings(url=redis_endpoint.url, cluster=redis_endpoint.cluster, prefix=prefix)


def populate(redis_endpoint: RedisEndpoint, prefix: str) -> tuple[TurnService, SyncClient]:
    settings = Settings(redis=redis_on(redis_endpoint, prefix), privacy=PrivacySettings(store_transcripts=True))
    service = TurnService.connected(settings)
    for customer in (GONE, KEPT):
        converse(service, customer, f"{customer}-chat", "rest")
        converse(service, customer, f"call-{customer[-4:]}", "twilio")  # a conversation id without the customer's
        service.keep_consent(customer, Consent(True, time.time(), "intent"))
    client = connect(settings.redis)
    cases = service.store.handoff_cases()  # type: ignore[union-attr]
    assert len(cases) == 4, "one case per escalated conversation"
    shards = {Keys(prefix).shard_of(case["conversation_id"]) for _, case in cases}
    assert len(shards) > 1, "the customers' data must be spread over several shards"

    async def claim_all() -> None:
        async with connect_async(settings.redis) as async_client:
            dashboard = Dashboard(async_client, prefix, 1800, settings.redis.shards)
            for case_id, _ in cases:
                assert await dashboard.claim(case_id, "agent-1")

    asyncio.run(claim_all())
    # A write held on disk while Redis was away, for each customer.
    down = StateStore(RedisSettings(url="redis://127.0.0.1:1/0", prefix=prefix, retry_after_seconds=60))
    for customer in (GONE, KEPT):
        info = ConversationInfo(f"late-{customer[-4:]}", customer, "rest")
        held = build_case_from_records(info, [], reason="requested", transcript_turns=0)
        assert HandoffOutbox(down).push(held) is None
    return service, client


def test_erasure_leaves_nothing_that_names_the_customer_and_keeps_everyone_else(
    redis_endpoint: RedisEndpoint, redis_prefix: str
) -> None:
    service, client = populate(redis_endpoint, redis_prefix)
    assert mentions(client, redis_prefix, GONE), "the test must start with the customer's data in Redis"
    store = service.store
    assert store is not None
    report = Eraser(store).erase(GONE)
    assert sorted(report.conversations) == sorted([f"{GONE}-chat", "call-7f3a"])
    keys = store.keys
    handoffs = {keys.handoffs(shard) for shard in keys.all_shards()}
    events = {keys.events(shard) for shard in keys.all_shards()}
    assert sum(n for s, n in report.stream_entries.items() if s in handoffs) == 2 and report.claims == 2
    assert sum(n for s, n in report.stream_entries.items() if s in events) >= 8  # 8 turns and 2 escalations
    assert report.outbox_records == 1
    assert keys.cust(GONE, CustKey.CONSENT) in report.keys
    assert mentions(client, redis_prefix, GONE) == []
    held = outbox_for(StateStore(redis_on(redis_endpoint, redis_prefix)), "handoffs").path.read_text()
    assert GONE not in held and KEPT in held
    # Everyone else is untouched.
    assert mentions(client, redis_prefix, KEPT)
    assert len(store.handoff_cases()) == 2
    assert client.hget(keys.cust(KEPT, CustKey.CONSENT), "opted_out") == "1"
    assert client.zscore(keys.active(keys.shard_of(f"{KEPT}-chat")), f"{KEPT}-chat") is not None
    assert client.zscore(keys.active(keys.shard_of(f"{GONE}-chat")), f"{GONE}-chat") is None


def test_the_command_line_erases_and_prints_what_it_removed(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    _, client = populate(redis_endpoint, redis_prefix)
    env = {**os.environ, "TONELINE_REDIS_URL": redis_endpoint.url, "TONELINE_PREFIX": redis_prefix}
    env["TONELINE_REDIS_CLUSTER"] = "1" if redis_endpoint.cluster else "0"
    command = [sys.executable, "-m", "plugin.state", "erase", GONE]
    done = subprocess.run([*command, "--json"], cwd=REPO, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["customer_id"] == GONE and len(report["conversations"]) == 2 and report["keys"]
    assert mentions(client, redis_prefix, GONE) == []
    human = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    assert human.returncode == 0 and "0 conversation(s)" in human.stdout and "tracker" in human.stdout


def test_an_erasure_while_redis_is_away_says_so(redis_prefix: str) -> None:
    env = {**os.environ, "TONELINE_REDIS_URL": "redis://127.0.0.1:1/0", "TONELINE_PREFIX": redis_prefix}
    done = subprocess.run(
        [sys.executable, "-m", "plugin.state", "erase", GONE], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 1 and "erasure failed" in done.stdout


def test_glob_characters_in_an_id_erase_only_that_customer(redis_endpoint: RedisEndpoint, redis_prefix: str) -> None:
    store = StateStore(redis_on(redis_endpoint, redis_prefix))
    service = TurnService(Settings(redis=store.settings), store=store)
    for customer in ("a*", "ab"):
        service.keep_consent(customer, Consent(True, time.time(), "metadata"))
    Eraser(store).erase("a*")
    assert store.client.exists(store.keys.cust("ab", CustKey.CONSENT))
    assert not store.client.exists(store.keys.cust("a*", CustKey.CONSENT))
