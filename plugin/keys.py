"""Toneline's Redis key layout, in one place for the state store, the doors and the dashboard.

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

import re
import zlib
from dataclasses import dataclass

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
    def conv(self, conversation_id: str, kind: str) -> str:
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

    # -- per customer -----------------------------------------------------------
    def cust(self, customer_id: str, kind: str) -> str:
        # "c:" keeps the tag non-empty (an empty `{}` is no tag: the two keys would land in different slots).
        return f"{self.prefix}:cust:{{c:{customer_id}}}:{kind}"

    def cust_pattern(self, customer_id: str) -> str:
        """A SCAN pattern matching every per-customer key of `customer_id`."""
        return f"{glob_escape(self.cust(customer_id, ''))}*"

    def conv_pattern(self, conversation_id: str) -> str:
        """A SCAN pattern matching every per-conversation key of `conversation_id`."""
        return f"{glob_escape(self.conv(conversation_id, ''))}*"

    def meta_pattern(self) -> str:
        """A SCAN pattern matching every conversation's meta, in every shard."""
        return f"{glob_escape(self.prefix)}:{{s*}}:conv:*:meta"

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
