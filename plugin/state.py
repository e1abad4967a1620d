"""Per-customer emotion state in Redis, written atomically and idempotently.

Keys: see `plugin.keys` (all under one prefix, all with a TTL).

Writes go through one Lua script so concurrent Rasa instances cannot interleave
half-updates. The client is synchronous because Rasa calls policies
synchronously; short socket timeouts and a breaker keep an outage from stalling
the bot: while Redis is down, calls fail fast with `StateUnavailable`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Sequence, TypeVar

import redis

from models.logs import log_event
from plugin.keys import Keys
from plugin.metadata import EVENT_ESCALATION, EVENT_TURN
from plugin.routing import ConversationState, Decision, Summary, TurnRecord
from plugin.settings import RedisSettings, StateSettings

logger = logging.getLogger(__name__)
T = TypeVar("T")

_RECORD_LUA = """
local turns, seen, meta, convs = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local escalated, active, events, escalations = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local conv, customer, channel, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local max_turns, maxlen = tonumber(ARGV[6]), tonumber(ARGV[7])
local summary, decision, batch = ARGV[8], cjson.decode(ARGV[9]), cjson.decode(ARGV[10])
local added = 0
for _, item in ipairs(batch) do
  if redis.call('SADD', seen, item['id']) == 1 then
    redis.call('RPUSH', turns, item['json'])
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', '$EVENT_TURN', 'conversation_id', conv,
      'customer_id', customer, 'channel', channel, 'data', item['json'])
    added = added + 1
  end
end
redis.call('LTRIM', turns, -max_turns, -1)
if #batch > 0 then redis.call('HSET', meta, 'last_turn', batch[#batch]['json']) end
redis.call('HSETNX', meta, 'started_at', now)
redis.call('HSET', meta, 'customer_id', customer, 'channel', channel, 'last_at', now,
  'n_turns', redis.call('SCARD', seen), 'summary', summary, 'tone', decision['tone'])
if decision['escalate'] and redis.call('HGET', meta, 'escalated_message_id') ~= decision['message_id'] then
  redis.call('HSET', meta, 'escalated_message_id', decision['message_id'], 'escalation_reason', decision['reason'],
    'escalation_rule', decision['rule'], 'escalated_at', now)
  redis.call('SADD', escalated, conv)
  redis.call('RPUSH', escalations, ARGV[9])
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', 'type', '$EVENT_ESCALATION', 'conversation_id', conv,
    'customer_id', customer, 'channel', channel, 'data', ARGV[9])
end
redis.call('ZADD', convs, redis.call('HGET', meta, 'started_at'), conv)
redis.call('ZADD', active, now, conv)
redis.call('ZREMRANGEBYSCORE', active, '-inf', tonumber(now) - ttl)
for _, key in ipairs({turns, seen, meta, convs, escalated, escalations}) do
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIRE', key, ttl) end
end
return added
"""
# The events' types are the turn's contract's (plugin.metadata): the dashboard's rollups read the same names.
_RECORD_LUA = _RECORD_LUA.replace("$EVENT_TURN", EVENT_TURN).replace("$EVENT_ESCALATION", EVENT_ESCALATION)


# A handoff case is written once per dedupe key: a replay after an outage, or a retry, finds it already there.
_HANDOFF_LUA = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[3]), '*',
  'conversation_id', ARGV[1], 'data', ARGV[2])
redis.call('SET', KEYS[2], id, 'EX', tonumber(ARGV[4]))
return id
"""


# A customer's consent (plugin.consent): kept without a TTL, so a choice never lapses; erasure removes it.
_CONSENT_LUA = """
redis.call('HSET', KEYS[1], 'opted_out', ARGV[1], 'at', ARGV[2], 'source', ARGV[3])
redis.call('PERSIST', KEYS[1])
return 1
"""


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
    """Redis-backed emotion state of conversations and customers."""

    def __init__(self, redis_settings: RedisSettings, state_settings: StateSettings | None = None) -> None:
        self.settings = redis_settings
        self.state_settings = state_settings or StateSettings()
        self.keys = Keys(redis_settings.prefix)
        self.client = redis.Redis.from_url(
            redis_settings.url,
            socket_timeout=redis_settings.socket_timeout,
            socket_connect_timeout=redis_settings.socket_timeout,
            decode_responses=True,
        )
        self.breaker = _Breaker(redis_settings.retry_after_seconds)
        self._record = self.client.register_script(_RECORD_LUA)
        self._handoff = self.client.register_script(_HANDOFF_LUA)
        self._consent = self.client.register_script(_CONSENT_LUA)

    # -- keys ---------------------------------------------------------------
    @property
    def events_stream(self) -> str:
        return self.keys.events

    @property
    def handoff_stream(self) -> str:
        return self.keys.handoffs

    # -- guarded calls ------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], T]) -> T:
        if not self.breaker.allow():
            raise StateUnavailable(f"Redis marked unavailable; retrying after {self.settings.retry_after_seconds}s")
        try:
            result = fn()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
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
            raise StateUnavailable(f"Redis unavailable during {what}: {exc}") from exc
        if self.breaker.in_a_row and (failed := self.breaker.closed()):
            log_event(logger, logging.INFO, "toneline.state.recovered", operation=what, failed_in_a_row=failed)
        return result

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
        """The write `record` makes, as plain JSON (`apply` runs it; `plugin.outbox` can hold it on disk)."""
        batch = [
            {"id": t.message_id, "json": json.dumps(t.to_dict())} for t in turns[-self.state_settings.batch_turns :]
        ]
        last_id = turns[-1].message_id if turns else ""
        at = now if now is not None else time.time()
        decision_json = json.dumps(
            {
                "tone": decision.tone,
                "escalate": decision.escalate,
                "reason": decision.reason or "",
                "rule": decision.rule or "",
                "message_id": last_id,
                "at": at,
            }
        )
        keys = [
            self.keys.conv(info.conversation_id, "turns"),
            self.keys.conv(info.conversation_id, "seen"),
            self.keys.conv(info.conversation_id, "meta"),
            self.keys.cust(info.customer_id, "convs"),
            self.keys.cust(info.customer_id, "escalated"),
            self.keys.active,
            self.events_stream,
            self.keys.conv(info.conversation_id, "escalations"),
        ]
        args = [
            info.conversation_id,
            info.customer_id,
            info.channel,
            repr(at),
            self.settings.ttl_seconds,
            self.state_settings.max_turns,
            self.settings.stream_maxlen,
            json.dumps(summary.to_dict()),
            decision_json,
            json.dumps(batch),
        ]
        return {"op": "record", "escalate": decision.escalate, "keys": keys, "args": args}

    def push_handoff(self, case: dict[str, Any]) -> str:
        """Append a handoff case to the handoff stream (once per dedupe key); returns its stream id."""
        return str(self.apply(self.handoff_entry(case)))

    def handoff_entry(self, case: dict[str, Any]) -> dict[str, Any]:
        """The write `push_handoff` makes, as plain JSON; its dedupe key is `case["dedupe_key"]` or the case's hash."""
        data = json.dumps(case, sort_keys=True)
        key = str(case.get("dedupe_key") or hashlib.sha256(data.encode()).hexdigest()[:32])
        keys = [self.handoff_stream, self.keys.handoff_seen(key)]
        args = [str(case.get("conversation_id", "")), data, self.settings.stream_maxlen, self.settings.ttl_seconds]
        return {"op": "handoff", "keys": keys, "args": args}

    def consent_entry(self, customer_id: str, fields: dict[str, str]) -> dict[str, Any]:
        """The write of a customer's consent (`plugin.consent.Consent.to_fields`), as plain JSON."""
        args = [fields["opted_out"], fields["at"], fields["source"]]
        return {"op": "consent", "keys": [self.keys.cust(customer_id, "consent")], "args": args}

    def apply(self, entry: dict[str, Any]) -> Any:
        """Run a write built by `record_entry`, `handoff_entry` or `consent_entry`; raises `StateUnavailable`
        while Redis is away."""
        script = {"record": self._record, "handoff": self._handoff, "consent": self._consent}[entry["op"]]
        return self._call(entry["op"], lambda: script(keys=entry["keys"], args=entry["args"]))

    # -- reads --------------------------------------------------------------
    def turns(self, conversation_id: str) -> list[TurnRecord]:
        raw = self._call("turns", lambda: self.client.lrange(self.keys.conv(conversation_id, "turns"), 0, -1))
        return [TurnRecord.from_dict(json.loads(item)) for item in raw]

    def escalations(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every escalation of the conversation, oldest first."""
        raw = self._call(
            "escalations", lambda: self.client.lrange(self.keys.conv(conversation_id, "escalations"), 0, -1)
        )
        return [json.loads(item) for item in raw]

    def meta(self, conversation_id: str) -> dict[str, str]:
        return dict(self._call("meta", lambda: self.client.hgetall(self.keys.conv(conversation_id, "meta"))))

    def retain(self, conversation_id: str, field: str, material: Any, ttl_seconds: int) -> None:
        """Keep a turn's material (JSON) for adaptation (`plugin.corrections`) for `ttl_seconds`."""
        key = self.keys.conv(conversation_id, "retained")
        pipe = self.client.pipeline(transaction=True)
        pipe.hset(key, field, json.dumps(material))
        pipe.expire(key, ttl_seconds)
        self._call("retain", pipe.execute)

    def consent(self, customer_id: str) -> dict[str, str]:
        """The customer's stored consent fields (empty when they never chose)."""
        return dict(self._call("consent", lambda: self.client.hgetall(self.keys.cust(customer_id, "consent"))))

    def claim_nonce(self, nonce: str, ttl_seconds: int) -> bool:
        """True the first time `nonce` is claimed within `ttl_seconds` (shared by every instance)."""
        key = self.keys.nonce(hashlib.sha256(nonce.encode()).hexdigest()[:32])
        return bool(self._call("nonce", lambda: self.client.set(key, 1, nx=True, ex=max(1, ttl_seconds))))

    def previous_escalations(self, customer_id: str, conversation_id: str) -> int:
        """How many of the customer's other conversations were escalated."""
        members = self._call(
            "previous_escalations", lambda: self.client.smembers(self.keys.cust(customer_id, "escalated"))
        )
        return len(set(members) - {conversation_id})

    def history(self, customer_id: str, limit: int = 20) -> list[dict[str, str]]:
        """The customer's most recent conversations (newest first) with their meta."""
        convs = self._call("history", lambda: self.client.zrevrange(self.keys.cust(customer_id, "convs"), 0, limit - 1))
        pipe = self.client.pipeline(transaction=False)
        for conv in convs:
            pipe.hgetall(self.keys.conv(conv, "meta"))
        metas = self._call("history", pipe.execute)
        return [{"conversation_id": conv, **meta} for conv, meta in zip(convs, metas)]

    def state(self, info: ConversationInfo) -> ConversationState:
        """The recorded state of a conversation, as the routing rules see it."""
        meta = self.meta(info.conversation_id)
        turns = self.turns(info.conversation_id)
        escalated_at = None
        if meta.get("escalated_message_id"):
            ids = [t.message_id for t in turns]
            if meta["escalated_message_id"] in ids:
                escalated_at = ids.index(meta["escalated_message_id"]) + 1
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
