"""Toneline's stored state, in one place: every Redis key, hash field and stream entry it writes.

Every writer (the state store's scripts, the outbox's replay, consent, corrections, single-use records, the
dashboard's sessions, claims and rollups) and every reader (the policy, the doors, the dashboard, erasure) names
keys and fields through this module; `tests/architecture` fails on a key or field spelled anywhere else.
`LAYOUT_VERSION` says which layout this is: change a key, field or entry here, bump it, and make every reader
read the new one (or both) before writers write it.

The same layout serves a single Redis and a Redis Cluster. A cluster refuses a Lua
script or transaction whose keys hash to different slots (CROSSSLOT), so every
multi-key write is confined to one hash tag (the part of a key in braces):

{p}:{sNN}:conv:{id}:turns|seen|meta|escalations   per conversation; NN = crc32(id) % shards
{p}:{sNN}:conv:{id}:retained                      turns' words and voice features kept for adaptation (if on)
{p}:{sNN}:active                                  the shard's conversations by last activity
{p}:{sNN}:events, {p}:{sNN}:handoffs              the shard's streams (turns and decisions; handoff cases)
{p}:{sNN}:handoffs:claims                         who claimed which of the shard's cases
{p}:{sNN}:handoffs:seen:{key}                     stream id of a case already written (replays write it once)
{p}:{sNN}:rollup:{YYYYMMDDHH}[:convs]             the shard's hourly history (counted from its own stream)
{p}:cust:{c:ID}:convs|escalated                   per customer, across conversations (its own tag)
{p}:cust:{c:ID}:consent|corrections               the customer's opt-out choice; supervisors' corrections
{p}:corrections                                   customers with corrections, by the latest (one key, own writes)
{p}:dash:session:{sha256(token)}                  supervisors' dashboard sessions (one key each)
{p}:nonce:{digest}, {p}:once:{kind}:{digest}      single-use records: AudioHook nonces, Vonage stream URLs

Hashes and entries (fields below: `MetaField`, `ConsentField`, `EventField`, `HandoffField`, `RollupField`):
meta         one conversation's who, where, summary, tone, last turn and last escalation (`ConversationMeta`)
turns        a list of `TurnRecord` JSON; escalations a list of decision JSON (`RECORD_LUA`)
consent      opted_out ("1"/"0"), at, source (`plugin.consent.Consent`)
events       type (`EVENT_TURN` / `EVENT_ESCALATION`), conversation_id, customer_id, channel, data (JSON)
handoffs     conversation_id, data (the case, JSON)
rollup       per hour: [channel:C: | intent:I:]turns|neg_turns|valence_sum|escalations, label:L

A turn's write (one Lua script) touches only its conversation's shard: its keys,
the shard's active set and event stream, so the turn, its event and its escalation
stay atomic and idempotent per message id. The customer's two keys are a second,
idempotent script under the customer's tag; consent and corrections are written under
that tag too, and the corrections index by a separate idempotent ZADD. Readers of "everything" (the floor,
the live feed, rollups, the case list) read every shard; a case id names its shard
(`sNN-<stream id>`). With `shards` well above the number of masters, the cluster
spreads the shards' slots over all of them.
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

from plugin.metadata import EVENT_ESCALATION, EVENT_TURN

# The layout on the wire: 2 is the sharded, cluster-ready one (hash tags `{sNN}` and `{c:ID}`). Not written to
# Redis: a process of another layout would read none of these keys, and a bump must move readers first.
LAYOUT_VERSION = 2


class ConvKey(str, Enum):
    """The keys of one conversation (`Keys.conv`), all in the conversation's shard."""

    TURNS = "turns"  # list of TurnRecord JSON, capped at state.max_turns
    SEEN = "seen"  # set of message ids already recorded (idempotence)
    META = "meta"  # hash of MetaField
    ESCALATIONS = "escalations"  # list of decision JSON
    RETAINED = "retained"  # hash: message id (or voice_field(id)) -> material kept for adaptation


class CustKey(str, Enum):
    """The keys of one customer (`Keys.cust`), all under the customer's tag."""

    CONVS = "convs"  # sorted set: conversation id by its start
    ESCALATED = "escalated"  # set of escalated conversation ids
    CONSENT = "consent"  # hash of ConsentField, no TTL
    CORRECTIONS = "corrections"  # hash: correction id -> correction JSON


class MetaField(str, Enum):
    """The fields of a conversation's meta hash (written by `RECORD_LUA`, read as `ConversationMeta`)."""

    CUSTOMER_ID = "customer_id"
    CHANNEL = "channel"
    STARTED_AT = "started_at"
    LAST_AT = "last_at"
    N_TURNS = "n_turns"
    SUMMARY = "summary"  # plugin.routing.Summary JSON
    TONE = "tone"
    LAST_TURN = "last_turn"  # TurnRecord JSON
    ESCALATED_MESSAGE_ID = "escalated_message_id"
    ESCALATION_REASON = "escalation_reason"
    ESCALATION_RULE = "escalation_rule"
    ESCALATED_AT = "escalated_at"


class ConsentField(str, Enum):
    """The fields of a customer's consent hash (`plugin.consent.Consent.to_fields`)."""

    OPTED_OUT = "opted_out"  # "1" or "0"
    AT = "at"
    SOURCE = "source"


class EventField(str, Enum):
    """The fields of an entry of a shard's event stream (a turn or an escalation)."""

    TYPE = "type"  # EVENT_TURN or EVENT_ESCALATION
    CONVERSATION_ID = "conversation_id"
    CUSTOMER_ID = "customer_id"
    CHANNEL = "channel"
    DATA = "data"  # TurnRecord JSON, or the decision JSON


class HandoffField(str, Enum):
    """The fields of an entry of a shard's handoff stream."""

    CONVERSATION_ID = "conversation_id"
    DATA = "data"  # the case JSON (plugin.handoff)


class RollupField(str, Enum):
    """The counters of an hourly rollup hash, each also under `channel:C:` and (turns) `intent:I:`."""

    TURNS = "turns"
    NEG_TURNS = "neg_turns"
    VALENCE_SUM = "valence_sum"
    ESCALATIONS = "escalations"


class OutboxOp(str, Enum):
    """The kinds of write an outbox entry holds (`plugin.state.StateStore.apply` replays them; `plugin.outbox`
    keeps them on disk as `{"op": ..., "args": [...]}` while Redis is away). An entry holds no key names: the
    replaying process derives them from its own layout."""

    RECORD = "record"
    HANDOFF = "handoff"
    CONSENT = "consent"


# The dimensions a rollup counter is kept under (`rollup_field`), and the label counts' prefix.
ROLLUP_CHANNEL, ROLLUP_INTENT, ROLLUP_LABEL = "channel", "intent", "label"


def rollup_field(counter: RollupField, dimension: str = "", name: str = "") -> str:
    """A rollup hash's field: the overall `counter`, or the counter of one channel or intent `name`."""
    return f"{dimension}:{name}:{counter.value}" if dimension else counter.value


def rollup_label_field(label: str) -> str:
    """The rollup hash's count of turns read as `label`."""
    return f"{ROLLUP_LABEL}:{label}"


ROLLUP_CONVS_SUFFIX = ":convs"  # the HyperLogLog of an hour's conversations sits beside its hash

_CASE_ID = re.compile(r"^s(\d{1,4})-(\d{1,20}-\d{1,20})$")


@dataclass(frozen=True)
class Keys:
    """Key names under one prefix, spread over `shards` hash-tag shards."""

    prefix: str
    shards: int = 16

    # -- shards ---------------------------------------------------------------
    def shard_of(self, conversation_id: str) -> int:
        """The conversation's shard: stable across processes and machines (crc32, not Python's salted hash)."""
        return zlib.crc32(conversation_id.encode("utf-8", "surrogatepass")) % self.shards

    def all_shards(self) -> range:
        return range(self.shards)

    def _tag(self, shard: int) -> str:
        return f"{self.prefix}:{{s{shard:02d}}}"

    # -- per conversation (in its shard) ---------------------------------------
    def conv(self, conversation_id: str, kind: ConvKey) -> str:
        return self._conv(conversation_id, ConvKey(kind).value)

    def _conv(self, conversation_id: str, kind: str) -> str:
        return f"{self._tag(self.shard_of(conversation_id))}:conv:{conversation_id}:{kind}"

    def active(self, shard: int) -> str:
        return f"{self._tag(shard)}:active"

    def events(self, shard: int) -> str:
        return f"{self._tag(shard)}:events"

    def handoffs(self, shard: int) -> str:
        return f"{self._tag(shard)}:handoffs"

    def claims(self, shard: int) -> str:
        return f"{self._tag(shard)}:handoffs:claims"

    def handoff_seen(self, shard: int, dedupe_key: str) -> str:
        return f"{self._tag(shard)}:handoffs:seen:{dedupe_key}"

    def rollup(self, shard: int, hour: str) -> str:
        return f"{self._tag(shard)}:rollup:{hour}"

    def rollup_convs(self, shard: int, hour: str) -> str:
        """The HyperLogLog of the conversations of the shard's hour."""
        return self.rollup(shard, hour) + ROLLUP_CONVS_SUFFIX

    # -- per customer -----------------------------------------------------------
    def cust(self, customer_id: str, kind: CustKey) -> str:
        return self._cust(customer_id, CustKey(kind).value)

    def _cust(self, customer_id: str, kind: str) -> str:
        # "c:" keeps the tag non-empty (an empty `{}` is no tag: the two keys would land in different slots).
        return f"{self.prefix}:cust:{{c:{customer_id}}}:{kind}"

    def cust_stem(self, customer_id: str) -> str:
        """What every per-customer key of `customer_id` starts with."""
        return self._cust(customer_id, "")

    def conv_stem(self, conversation_id: str) -> str:
        """What every per-conversation key of `conversation_id` starts with."""
        return self._conv(conversation_id, "")

    def cust_pattern(self, customer_id: str) -> str:
        """A SCAN pattern matching every per-customer key of `customer_id`."""
        return f"{glob_escape(self.cust_stem(customer_id))}*"

    def conv_pattern(self, conversation_id: str) -> str:
        """A SCAN pattern matching every per-conversation key of `conversation_id`."""
        return f"{glob_escape(self.conv_stem(conversation_id))}*"

    def meta_pattern(self) -> str:
        """A SCAN pattern matching every conversation's meta, in every shard."""
        return f"{glob_escape(self.prefix)}:{{s*}}:conv:*:{ConvKey.META.value}"

    def conv_id(self, key: str) -> str:
        """The conversation id of a per-conversation key (`{p}:{sNN}:conv:{id}:{kind}`)."""
        rest = key[len(self.prefix) + 1 :]
        return rest[rest.index("}:conv:") + len("}:conv:") :].rsplit(":", 1)[0]

    # -- global (one key; written on its own, never with another key) ------------
    @property
    def corrections(self) -> str:
        """Customers with supervisors' corrections, by the latest: a separate, idempotent ZADD beside each one."""
        return f"{self.prefix}:corrections"

    # -- single keys --------------------------------------------------------------
    def nonce(self, digest: str) -> str:
        """A request-signature nonce already used (AudioHook replay protection); `digest` is its hash."""
        return f"{self.prefix}:nonce:{digest}"

    def once(self, kind: str, digest: str) -> str:
        """A single-use token of `kind` already used (e.g. a signed Vonage stream URL); `digest` is its hash."""
        return f"{self.prefix}:once:{kind}:{digest}"

    def dash_session(self, digest: str) -> str:
        """A supervisor's dashboard session; `digest` is the hash of its token (the token itself is never stored)."""
        return f"{self.prefix}:dash:session:{digest}"

    # -- case ids ---------------------------------------------------------------
    @staticmethod
    def case_id(shard: int, stream_id: str) -> str:
        """The id supervisors see for a handoff case: its shard and its id in that shard's stream."""
        return f"s{shard:02d}-{stream_id}"

    def parse_case_id(self, case_id: str) -> tuple[int, str] | None:
        """(shard, stream id) of a case id, or None if it is not one of this layout's."""
        match = _CASE_ID.match(case_id)
        if match is None or int(match.group(1)) >= self.shards:
            return None
        return int(match.group(1)), match.group(2)


def glob_escape(text: str) -> str:
    """`text` as a literal in a Redis SCAN pattern (ids may hold glob characters)."""
    return "".join(f"\\{ch}" if ch in "*?[]\\" else ch for ch in text)


# -- the writes, as the scripts that make them -----------------------------------------------------------------
# The scripts name the hash fields and stream entries they write; they live here so that the layout is read in
# one file. Field names are the enums' values, substituted once below.

# One conversation's turn, atomic in its shard's slot: its keys, the shard's active set and events.
_RECORD_LUA = """
local turns, seen, meta, escalations = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local active, events = KEYS[5], KEYS[6]
local conv, customer, channel, now, ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local max_turns, maxlen = tonumber(ARGV[6]), tonumber(ARGV[7])
local summary, decision, batch = ARGV[8], cjson.decode(ARGV[9]), cjson.decode(ARGV[10])
local added = 0
for _, item in ipairs(batch) do
  if redis.call('SADD', seen, item['id']) == 1 then
    redis.call('RPUSH', turns, item['json'])
    redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', '$E_TYPE', '$EVENT_TURN', '$E_CONVERSATION_ID', conv,
      '$E_CUSTOMER_ID', customer, '$E_CHANNEL', channel, '$E_DATA', item['json'])
    added = added + 1
  end
end
redis.call('LTRIM', turns, -max_turns, -1)
if #batch > 0 then redis.call('HSET', meta, '$M_LAST_TURN', batch[#batch]['json']) end
redis.call('HSETNX', meta, '$M_STARTED_AT', now)
redis.call('HSET', meta, '$M_CUSTOMER_ID', customer, '$M_CHANNEL', channel, '$M_LAST_AT', now,
  '$M_N_TURNS', redis.call('SCARD', seen), '$M_SUMMARY', summary, '$M_TONE', decision['tone'])
if decision['escalate'] and redis.call('HGET', meta, '$M_ESCALATED_MESSAGE_ID') ~= decision['message_id'] then
  redis.call('HSET', meta, '$M_ESCALATED_MESSAGE_ID', decision['message_id'],
    '$M_ESCALATION_REASON', decision['reason'], '$M_ESCALATION_RULE', decision['rule'], '$M_ESCALATED_AT', now)
  redis.call('RPUSH', escalations, ARGV[9])
  redis.call('XADD', events, 'MAXLEN', '~', maxlen, '*', '$E_TYPE', '$EVENT_ESCALATION', '$E_CONVERSATION_ID', conv,
    '$E_CUSTOMER_ID', customer, '$E_CHANNEL', channel, '$E_DATA', ARGV[9])
end
redis.call('ZADD', active, now, conv)
redis.call('ZREMRANGEBYSCORE', active, '-inf', tonumber(now) - ttl)
for _, key in ipairs({turns, seen, meta, escalations}) do
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIRE', key, ttl) end
end
return {added, redis.call('HGET', meta, '$M_STARTED_AT')}
"""

# The customer's side of the same turn, under the customer's own tag; idempotent (a set and a sorted set), so
# a crash between the two scripts is repaired by the replay or the next turn.
CUSTOMER_LUA = """
local convs, escalated = KEYS[1], KEYS[2]
local conv, started, ttl, escalate = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4] == '1'
redis.call('ZADD', convs, started, conv)
if escalate then redis.call('SADD', escalated, conv) end
for _, key in ipairs({convs, escalated}) do
  if redis.call('EXISTS', key) == 1 then redis.call('EXPIRE', key, ttl) end
end
return 1
"""

# A handoff case is written once per dedupe key: a replay after an outage, or a retry, finds it already there.
_HANDOFF_LUA = """
local existing = redis.call('GET', KEYS[2])
if existing then return existing end
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', tonumber(ARGV[3]), '*',
  '$H_CONVERSATION_ID', ARGV[1], '$H_DATA', ARGV[2])
redis.call('SET', KEYS[2], id, 'EX', tonumber(ARGV[4]))
return id
"""

# A customer's consent (plugin.consent): kept without a TTL, so a choice never lapses; erasure removes it.
_CONSENT_LUA = """
redis.call('HSET', KEYS[1], '$C_OPTED_OUT', ARGV[1], '$C_AT', ARGV[2], '$C_SOURCE', ARGV[3])
redis.call('PERSIST', KEYS[1])
return 1
"""

# One field of one hash and the hash's TTL in one step (one key: one slot): a turn's material kept for adaptation
# (plugin.state), a supervisor's correction (plugin.corrections). A script, since a cluster pipeline is no transaction.
HSET_TTL_LUA = """
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[3]))
return 1
"""


def _fill(script: str) -> str:
    """`script` with its `$X_NAME` placeholders replaced by this layout's names (longest first)."""
    names = {"$EVENT_TURN": EVENT_TURN, "$EVENT_ESCALATION": EVENT_ESCALATION}
    for letter, enum in (("M", MetaField), ("E", EventField), ("H", HandoffField), ("C", ConsentField)):
        names.update({f"${letter}_{member.name}": member.value for member in enum})
    for placeholder in sorted(names, key=len, reverse=True):
        script = script.replace(placeholder, names[placeholder])
    return script


RECORD_LUA = _fill(_RECORD_LUA)
HANDOFF_LUA = _fill(_HANDOFF_LUA)
CONSENT_LUA = _fill(_CONSENT_LUA)


# -- the reads, typed -------------------------------------------------------------------------------------------
def _json_object(raw: str | None) -> dict[str, Any]:
    """A stored JSON object; {} for a missing or damaged one (a reader never fails on one bad entry)."""
    try:
        value = json.loads(raw or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class ConversationMeta:
    """A conversation's meta hash, parsed; `raw` keeps the fields as stored."""

    customer_id: str
    channel: str
    started_at: float | None
    last_at: float | None
    n_turns: int
    summary: dict[str, Any]
    tone: str | None
    last_turn: dict[str, Any]
    escalated_message_id: str | None
    escalation_reason: str | None

    @classmethod
    def from_hash(cls, fields: Mapping[str, str]) -> ConversationMeta:
        """The meta of `HGETALL` (empty fields for a conversation never recorded)."""
        started, last = fields.get(MetaField.STARTED_AT.value), fields.get(MetaField.LAST_AT.value)
        return cls(
            customer_id=fields.get(MetaField.CUSTOMER_ID.value, ""),
            channel=fields.get(MetaField.CHANNEL.value, "unknown"),
            started_at=float(started) if started else None,
            last_at=float(last) if last else None,
            n_turns=int(fields.get(MetaField.N_TURNS.value) or 0),
            summary=_json_object(fields.get(MetaField.SUMMARY.value)),
            tone=fields.get(MetaField.TONE.value),
            last_turn=_json_object(fields.get(MetaField.LAST_TURN.value)),
            escalated_message_id=fields.get(MetaField.ESCALATED_MESSAGE_ID.value) or None,
            escalation_reason=fields.get(MetaField.ESCALATION_REASON.value),
        )


@dataclass(frozen=True)
class StreamEvent:
    """An entry of a shard's event stream: a recorded turn or an escalation."""

    type: str | None
    conversation_id: str
    customer_id: str
    channel: str
    data: dict[str, Any]

    @classmethod
    def from_fields(cls, fields: Mapping[str, str]) -> StreamEvent:
        return cls(
            type=fields.get(EventField.TYPE.value),
            conversation_id=fields.get(EventField.CONVERSATION_ID.value, ""),
            customer_id=fields.get(EventField.CUSTOMER_ID.value, ""),
            channel=fields.get(EventField.CHANNEL.value, "unknown"),
            data=_json_object(fields.get(EventField.DATA.value)),
        )


def handoff_case(fields: Mapping[str, str]) -> dict[str, Any]:
    """The case of an entry of a shard's handoff stream."""
    return _json_object(fields.get(HandoffField.DATA.value))


def handoff_conversation(fields: Mapping[str, str]) -> str:
    """The conversation id an entry of a shard's handoff stream was written under."""
    return fields.get(HandoffField.CONVERSATION_ID.value, "")


def escalation_entry(
    tone: str, escalate: bool, reason: str | None, rule: str | None, message_id: str, at: float
) -> dict[str, Any]:
    """A decision as `RECORD_LUA` reads it and the escalations list and event stream keep it."""
    return {
        "tone": tone,
        "escalate": escalate,
        "reason": reason or "",
        "rule": rule or "",
        "message_id": message_id,
        "at": at,
    }


def retained_voice_field(ref: str) -> str:
    """Where a connector keeps a turn's pooled voice features in the conversation's retained hash (`ConvKey.RETAINED`;
    the turn's words are under its message id, with `voice_ref` naming this field)."""
    return f"voice:{ref}"


def correction_field(conversation_id: str, message_id: str, kind: str) -> str:
    """A correction's field in the customer's corrections hash (`CustKey.CORRECTIONS`): latest wins."""
    return f"{conversation_id}|{message_id}|{kind}"


def corrections_of(conversation_id: str) -> str:
    """What the fields of one conversation's corrections start with (`correction_field`)."""
    return f"{conversation_id}|"
