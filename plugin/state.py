"""Per-customer emotion state in Redis, written atomically and idempotently.

Keys, fields and entries: see `plugin.schema` (all under one prefix, all with a TTL but consent).

Writes go through Lua scripts so concurrent Rasa instances cannot interleave
half-updates: one per conversation (in its shard's slot) and one per customer, so
the same code runs on a single Redis and on a Redis Cluster (`plugin.redis_client`).
The client is synchronous because Rasa calls policies synchronously; short socket
timeouts and a breaker keep an outage from stalling the bot: while Redis is down,
calls fail fast with `StateUnavailable`.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import redis
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from models.logs import log_event
from plugin.redis_client import SyncClient, connect, is_unavailable
from plugin.routing import ConversationState, Decision, Summary, TurnRecord
from plugin.schema import (
    CONSENT_LUA,
    CUSTOMER_LUA,
    HANDOFF_LUA,
    HSET_TTL_LUA,
    RECORD_LUA,
    ConsentField,
    ConversationMeta,
    ConvKey,
    CustKey,
    EventField,
    Keys,
    OutboxOp,
    escalation_entry,
    handoff_case,
)
from plugin.settings import RedisSettings, StateSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:32]


class StateUnavailable(RuntimeError):
    """Redis could not be reached; the caller should carry on without state."""


@dataclass(frozen=True)
class ConversationInfo:
    """Who and where a conversation is: the identity under which it is recorded."""

    conversation_id: str
    customer_id: str
    channel: str


class _Breaker:
    """After a failure, refuse calls for `retry_after` seconds instead of waiting on timeouts."""

    def __init__(self, retry_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.retry_after = retry_after
        self.clock = clock
        self.open_until = 0.0
        self.failures = 0  # in all, for the process's life
        self.in_a_row = 0  # since the last call that went through
        self._lock = threading.Lock()

    def allow(self) -> bool:
        return self.clock() >= self.open_until

    def trip(self) -> int:
        """Count a failure and open; returns the failures in a row, this one included."""
        with self._lock:
            self.failures += 1
            self.in_a_row += 1
            self.open_until = self.clock() + self.retry_after
            return self.in_a_row

    def closed(self) -> int:
        """A call went through: returns how many failed in a row before it (0 when none did)."""
        with self._lock:
            before, self.in_a_row = self.in_a_row, 0
            return before


def worth_a_warning(in_a_row: int) -> bool:
    """The 1st, 2nd, 4th, 8th... failure of an outage: a long outage (the outbox retries every
    `retry_after` seconds) stays visible in the log without a line per retry."""
    return in_a_row & (in_a_row - 1) == 0


class StateStore:
    """Redis-backed emotion state of conversations and customers, on a single Redis or a Redis Cluster."""

    def __init__(self, redis_settings: RedisSettings, state_settings: StateSettings | None = None) -> None:
        self.settings = redis_settings
        self.state_settings = state_settings or StateSettings()
        self.keys = Keys(redis_settings.prefix, redis_settings.shards)
        self.breaker = _Breaker(redis_settings.retry_after_seconds)
        self._client: SyncClient | None = None
        self._client_lock = threading.Lock()

    @property
    def shard_maxlen(self) -> int:
        """Each shard's stream keeps its share of `stream_maxlen`, so all shards together keep about as many
        events as one stream did (a floor keeps a small setting from starving the live view)."""
        return max(1000, self.settings.stream_maxlen // self.settings.shards)

    @property
    def client(self) -> SyncClient:
        """Connected on first use: a cluster client reads the slot map when it is made, and that must be able to
        fail like any other call (StateUnavailable) rather than stop the process that builds the store."""
        with self._client_lock:
            if self._client is None:
                self._client = connect(self.settings)
            return self._client

    # -- guarded calls ------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        if not self.breaker.allow():
            raise StateUnavailable(f"Redis marked unavailable; retrying after {self.settings.retry_after_seconds}s")
        try:
            result = fn()
        except (redis.RedisError, RedisClusterException) as exc:
            if not is_unavailable(exc):
                raise
            self._unavailable(what, exc)
            raise StateUnavailable(f"Redis unavailable during {what}: {exc}") from exc
        if self.breaker.in_a_row and (failed := self.breaker.closed()):
            log_event(logger, logging.INFO, "toneline.state.recovered", operation=what, failed_in_a_row=failed)
        return result

    def _unavailable(self, what: str, exc: Exception) -> None:
        in_a_row = self.breaker.trip()
        log_event(
            logger,
            logging.WARNING if worth_a_warning(in_a_row) else logging.DEBUG,
            "toneline.state.unavailable",
            operation=what,
            error=str(exc),
            failures=self.breaker.failures,
            in_a_row=in_a_row,
        )

    def _script(self, body: str, keys: Sequence[str], args: Sequence[Any]) -> Any:
        # EVAL rather than a registered script: a cluster routes it by its keys, and a master promoted after a
        # failover (which never saw SCRIPT LOAD) runs it all the same.
        return self.client.eval(body, len(keys), *keys, *args)

    # -- writes -------------------------------------------------------------
    def record(
        self,
        info: ConversationInfo,
        turns: Sequence[TurnRecord],
        summary: Summary,
        decision: Decision,
        now: float | None = None,
    ) -> int:
        """Append the turns not yet recorded, store summary and decision; returns turns added.

        Idempotent per message id: sending the same turns again (a retry, another
        Rasa instance, or a backfill after an outage) adds nothing twice.
        """
        return int(self.apply(self.record_entry(info, turns, summary, decision, now)))

    def record_entry(
        self,
        info: ConversationInfo,
        turns: Sequence[TurnRecord],
        summary: Summary,
        decision: Decision,
        now: float | None = None,
    ) -> dict[str, Any]:
        """The write `record` makes, as plain JSON (`apply` runs it; `plugin.outbox` can hold it on disk).

        An entry holds no key names: `apply` derives them, so an entry held on disk replays into the key layout
        of the process that replays it.
        """
        batch = [
            {"id": t.message_id, "json": json.dumps(t.to_dict())} for t in turns[-self.state_settings.batch_turns :]
        ]
        last_id = turns[-1].message_id if turns else ""
        at = now if now is not None else time.time()
        decision_json = json.dumps(
            escalation_entry(decision.tone, decision.escalate, decision.reason, decision.rule, last_id, at)
        )
        args = [
            info.conversation_id,
            info.customer_id,
            info.channel,
            repr(at),
            self.settings.ttl_seconds,
            self.state_settings.max_turns,
            self.shard_maxlen,
            json.dumps(summary.to_dict()),
            decision_json,
            json.dumps(batch),
        ]
        return {"op": OutboxOp.RECORD.value, "escalate": decision.escalate, "args": args}

    def push_handoff(self, case: dict[str, Any]) -> str:
        """Append a handoff case to its shard's stream (once per dedupe key); returns its case id."""
        return str(self.apply(self.handoff_entry(case)))

    def handoff_entry(self, case: dict[str, Any]) -> dict[str, Any]:
        """The write `push_handoff` makes, as plain JSON; its dedupe key is `case["dedupe_key"]` or the case's hash."""
        data = json.dumps(case, sort_keys=True)
        args = [str(case.get("conversation_id", "")), data, self.shard_maxlen, self.settings.ttl_seconds]
        return {"op": OutboxOp.HANDOFF.value, "args": args}

    def consent_entry(self, customer_id: str, fields: dict[str, str]) -> dict[str, Any]:
        """The write of a customer's consent (`plugin.consent.Consent.to_fields`), as plain JSON."""
        args = [
            customer_id,
            *(fields[name.value] for name in (ConsentField.OPTED_OUT, ConsentField.AT, ConsentField.SOURCE)),
        ]
        return {"op": OutboxOp.CONSENT.value, "args": args}

    def apply(self, entry: dict[str, Any]) -> Any:
        """Run a write built by `record_entry`, `handoff_entry` or `consent_entry`; raises `StateUnavailable`
        while Redis is away."""
        op, args = entry["op"], entry["args"]
        if op == OutboxOp.RECORD.value:
            return self._call(op, lambda: self._apply_record(args, bool(entry.get("escalate"))))
        if op == OutboxOp.CONSENT.value:
            return self._call(op, lambda: self._apply_consent(args))
        return self._call(op, lambda: self._apply_handoff(args))

    def _apply_consent(self, args: Sequence[Any]) -> int:
        # One key under the customer's tag; a choice is a decision too, so it waits for a replica like them.
        key = self.keys.cust(str(args[0]), CustKey.CONSENT)
        written = int(self._script(CONSENT_LUA, [key], list(args[1:])))
        self._replicated(key)
        return written

    def _apply_record(self, args: Sequence[Any], escalate: bool) -> int:
        conversation_id, customer_id = str(args[0]), str(args[1])
        shard = self.keys.shard_of(conversation_id)
        conv_keys = [
            self.keys.conv(conversation_id, kind)
            for kind in (ConvKey.TURNS, ConvKey.SEEN, ConvKey.META, ConvKey.ESCALATIONS)
        ]
        added, started = self._script(RECORD_LUA, [*conv_keys, self.keys.active(shard), self.keys.events(shard)], args)
        customer_keys = [self.keys.cust(customer_id, CustKey.CONVS), self.keys.cust(customer_id, CustKey.ESCALATED)]
        self._script(CUSTOMER_LUA, customer_keys, [conversation_id, started, args[4], "1" if escalate else "0"])
        if escalate:
            self._replicated(conv_keys[2])
        return int(added)

    def _apply_handoff(self, args: Sequence[Any]) -> str:
        conversation_id, data = str(args[0]), str(args[1])
        case = json.loads(data)
        dedupe = str(case.get("dedupe_key") or hashlib.sha256(data.encode()).hexdigest()[:32])
        shard = self.keys.shard_of(conversation_id)
        keys = [self.keys.handoffs(shard), self.keys.handoff_seen(shard, dedupe)]
        case_id = Keys.case_id(shard, str(self._script(HANDOFF_LUA, keys, args)))
        self._replicated(keys[0])
        return case_id

    def _replicated(self, key: str) -> None:
        """Wait (briefly) until `redis.replica_acks` replicas of the master holding `key` have the writes so far.

        Redis replicates asynchronously: a decision a master acknowledged just before it died may be missing on
        the replica that takes over. Decisions (escalations, handoff cases) wait for a replica; turns need not,
        since every turn re-sends the last `state.batch_turns`. A replica that does not answer in time is
        logged, not waited for: a cluster missing a replica must not stall the bot.
        """
        wanted, timeout_ms = self.settings.replica_acks, self.settings.replica_wait_ms
        if wanted <= 0:
            return
        if isinstance(self.client, RedisCluster):
            node = self.client.get_node_from_key(key)
            acked = self.client.execute_command("WAIT", wanted, timeout_ms, target_nodes=node)
        else:
            acked = self.client.wait(wanted, timeout_ms)
        if int(acked) < wanted:
            log_event(
                logger, logging.WARNING, "toneline.state.unreplicated", key=key, replicas=int(acked), wanted=wanted
            )

    # -- reads --------------------------------------------------------------
    def turns(self, conversation_id: str) -> list[TurnRecord]:
        raw = self._call("turns", lambda: self.client.lrange(self.keys.conv(conversation_id, ConvKey.TURNS), 0, -1))
        return [TurnRecord.from_dict(json.loads(item)) for item in raw]

    def escalations(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every escalation of the conversation, oldest first."""
        raw = self._call(
            "escalations", lambda: self.client.lrange(self.keys.conv(conversation_id, ConvKey.ESCALATIONS), 0, -1)
        )
        return [json.loads(item) for item in raw]

    def meta(self, conversation_id: str) -> dict[str, str]:
        return dict(self._call("meta", lambda: self.client.hgetall(self.keys.conv(conversation_id, ConvKey.META))))

    def retain(self, conversation_id: str, field: str, material: Any, ttl_seconds: int) -> None:
        """Keep a turn's material (JSON) for adaptation (`plugin.corrections`) for `ttl_seconds`."""
        key = self.keys.conv(conversation_id, ConvKey.RETAINED)
        self._call("retain", lambda: self._script(HSET_TTL_LUA, [key], [field, json.dumps(material), ttl_seconds]))

    def consent(self, customer_id: str) -> dict[str, str]:
        """The customer's stored consent fields (empty when they never chose)."""
        return dict(self._call("consent", lambda: self.client.hgetall(self.keys.cust(customer_id, CustKey.CONSENT))))

    def conversation_events(self, conversation_id: str) -> list[dict[str, str]]:
        """The conversation's turn and escalation events still in its shard's stream, oldest first.

        Reads the whole shard stream: for checks and diagnostics, not for a hot path.
        """
        stream = self.keys.events(self.keys.shard_of(conversation_id))
        entries = self._call("events", lambda: self.client.xrange(stream))
        conv_field = EventField.CONVERSATION_ID.value
        return [fields for _, fields in entries if fields.get(conv_field) == conversation_id]

    def handoff_cases(self) -> list[tuple[str, dict[str, Any]]]:
        """Every handoff case still in the shards' streams, as (case id, case), oldest first."""
        cases = []
        for shard in self.keys.all_shards():
            entries = self._call("handoffs", functools.partial(self.client.xrange, self.keys.handoffs(shard)))
            cases += [(Keys.case_id(shard, entry_id), handoff_case(fields)) for entry_id, fields in entries]
        return sorted(cases, key=lambda pair: float(pair[1].get("created_at") or 0.0))

    def claim_nonce(self, nonce: str, ttl_seconds: int) -> bool:
        """True the first time `nonce` is claimed within `ttl_seconds` (shared by every instance)."""
        return self._claim(self.keys.nonce(_digest(nonce)), ttl_seconds)

    def claim_once(self, kind: str, token: str, ttl_seconds: int) -> bool:
        """True the first time a single-use `token` of `kind` is used within `ttl_seconds`, on any replica."""
        return self._claim(self.keys.once(kind, _digest(token)), ttl_seconds)

    def _claim(self, key: str, ttl_seconds: int) -> bool:
        return bool(self._call("claim", lambda: self.client.set(key, 1, nx=True, ex=max(1, ttl_seconds))))

    def previous_escalations(self, customer_id: str, conversation_id: str) -> int:
        """How many of the customer's other conversations were escalated."""
        members = self._call(
            "previous_escalations", lambda: self.client.smembers(self.keys.cust(customer_id, CustKey.ESCALATED))
        )
        return len(set(members) - {conversation_id})

    def history(self, customer_id: str, limit: int = 20) -> list[dict[str, str]]:
        """The customer's most recent conversations (newest first) with their meta."""
        convs = self._call(
            "history", lambda: self.client.zrevrange(self.keys.cust(customer_id, CustKey.CONVS), 0, limit - 1)
        )
        metas = self._call("history", lambda: self._metas(convs))
        return [{"conversation_id": conv, **meta} for conv, meta in zip(convs, metas)]

    def _metas(self, conversation_ids: Sequence[str]) -> list[dict[str, str]]:
        # Not a transaction: the conversations live in different shards (a cluster pipeline splits them by node).
        pipe = self.client.pipeline(transaction=False)
        for conv in conversation_ids:
            pipe.hgetall(self.keys.conv(conv, ConvKey.META))
        return list(pipe.execute())

    def state(self, info: ConversationInfo) -> ConversationState:
        """The recorded state of a conversation, as the routing rules see it."""
        escalated_id = ConversationMeta.from_hash(self.meta(info.conversation_id)).escalated_message_id
        turns = self.turns(info.conversation_id)
        escalated_at = None
        if escalated_id:
            ids = [t.message_id for t in turns]
            if escalated_id in ids:
                escalated_at = ids.index(escalated_id) + 1
        return ConversationState(
            conversation_id=info.conversation_id,
            customer_id=info.customer_id,
            turns=tuple(turns),
            escalated_at_turn=escalated_at,
            previous_escalations=self.previous_escalations(info.customer_id, info.conversation_id),
        )


if __name__ == "__main__":
    # `python -m plugin.state erase CUSTOMER_ID` is the erasure tool's command line (plugin.erasure.main). It is
    # run, not imported: the erasure module needs this one (and the outbox), never the other way round.
    import runpy

    runpy.run_module("plugin.erasure", run_name="__main__", alter_sys=True)
