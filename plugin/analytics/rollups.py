"""Hourly rollups from the event stream, for the history view.

A Redis consumer group on each shard's event stream makes each event count once
however many dashboard instances run (a batch is counted and acknowledged in one
script, in the shard's slot); per hour and overall, per channel, per intent: turns, negative
turns, the valence sum, escalations, label counts, and a HyperLogLog of the
conversations. Rollups expire with the rest of Toneline's state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from typing import Any

import redis

from models.logs import log_event
from plugin.analytics.data import hour_key
from plugin.metadata import EVENT_ESCALATION, EVENT_TURN
from plugin.redis_client import AsyncClient, execute_on_key_node
from plugin.routing import RoutingConfig, TurnRecord, is_negative
from plugin.schema import (
    ROLLUP_CHANNEL,
    ROLLUP_INTENT,
    Keys,
    RollupField,
    StreamEvent,
    rollup_field,
    rollup_label_field,
)

logger = logging.getLogger(__name__)
GROUP = "toneline-rollups"


# Counts a batch of one shard's events and acknowledges them in one step, so an event is counted exactly once even
# if the dashboard dies halfway. A script, not MULTI: redis-py's cluster client has no transactions, and every key
# here (the shard's stream and its rollups) shares the shard's hash tag, so one slot runs it.
_APPLY_LUA = """
local ops = cjson.decode(ARGV[1])
for _, op in ipairs(ops) do
  local key = KEYS[op[2]]
  if op[1] == 'pfadd' then redis.call('PFADD', key, op[3])
  elseif op[1] == 'expire' then redis.call('EXPIRE', key, op[3])
  elseif op[1] == 'hincrbyfloat' then redis.call('HINCRBYFLOAT', key, op[3], op[4])
  else redis.call('HINCRBY', key, op[3], op[4]) end
end
local ids = cjson.decode(ARGV[3])
for i = 1, #ids, 500 do
  redis.call('XACK', KEYS[1], ARGV[2], unpack(ids, i, math.min(i + 499, #ids)))
end
return #ids
"""


class _Batch:
    """The rollup writes of one shard's batch of events, as ops on numbered keys (KEYS[1] is the stream)."""

    def __init__(self, stream: str) -> None:
        self.keys = [stream]
        self.ops: list[list[Any]] = []

    def _index(self, key: str) -> int:
        if key not in self.keys:
            self.keys.append(key)
        return self.keys.index(key) + 1

    def hincrby(self, key: str, field: str, amount: int) -> None:
        self.ops.append(["hincrby", self._index(key), field, amount])

    def hincrbyfloat(self, key: str, field: str, amount: float) -> None:
        self.ops.append(["hincrbyfloat", self._index(key), field, repr(amount)])

    def pfadd(self, key: str, member: str) -> None:
        self.ops.append(["pfadd", self._index(key), member])

    def expire(self, key: str, seconds: int) -> None:
        self.ops.append(["expire", self._index(key), seconds])


class Rollups:
    """Consumes each shard's `{p}:{sNN}:events` and keeps that shard's `{p}:{sNN}:rollup:{hour}` hashes."""

    def __init__(self, client: AsyncClient, prefix: str, routing: RoutingConfig, ttl_seconds: int, shards: int = 16):
        self.redis = client
        self.keys = Keys(prefix, shards)
        # The history counts a turn as negative by the same rule that escalates (routing.is_negative).
        self.routing = routing
        self.ttl = ttl_seconds
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    async def ensure_group(self) -> None:
        for shard in self.keys.all_shards():
            try:
                stream = self.keys.events(shard)
                await execute_on_key_node(self.redis, stream, "XGROUP", "CREATE", stream, GROUP, "0", "MKSTREAM")
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    async def step(self, block_ms: int = 1000, pending: bool = False) -> int:
        """Read, apply and acknowledge one batch of every shard; returns how many events it handled.

        Polls rather than blocks (a blocking read waits on one slot only): when no shard had anything new,
        it waits up to `block_ms` before returning 0.
        """
        handled = sum(await asyncio.gather(*(self._shard_step(s, pending) for s in self.keys.all_shards())))
        if not handled and not pending:
            await asyncio.sleep(block_ms / 1000)
        return handled

    async def _shard_step(self, shard: int, pending: bool) -> int:
        stream = self.keys.events(shard)
        response = await self.redis.xreadgroup(GROUP, self.consumer, {stream: "0" if pending else ">"}, count=500)
        entries = [entry for _, batch in response or [] for entry in batch]
        if not entries:
            return 0
        batch = _Batch(stream)
        for _, fields in entries:
            self.apply(batch, shard, fields)
        ids = json.dumps([entry_id for entry_id, _ in entries])
        await self.redis.eval(_APPLY_LUA, len(batch.keys), *batch.keys, json.dumps(batch.ops), GROUP, ids)
        return len(entries)

    def apply(self, batch: _Batch, shard: int, fields: dict[str, str]) -> None:
        event = StreamEvent.from_fields(fields)
        data, channel = event.data, event.channel
        if event.type == EVENT_TURN:
            self._turn(batch, shard, data, channel, event.conversation_id)
        elif event.type == EVENT_ESCALATION and data.get("at"):
            key = self.keys.rollup(shard, hour_key(float(data["at"])))
            for dimension, name in (("", ""), (ROLLUP_CHANNEL, channel)):
                batch.hincrby(key, rollup_field(RollupField.ESCALATIONS, dimension, name), 1)
            batch.expire(key, self.ttl)

    def _turn(self, batch: _Batch, shard: int, turn: dict[str, Any], channel: str, conversation_id: str) -> None:
        try:
            record = TurnRecord.from_dict(turn)
        except (KeyError, TypeError, ValueError):
            return
        key = self.keys.rollup(shard, hour_key(record.ts))
        negative = 1 if is_negative(record, self.routing) else 0
        hour = hour_key(record.ts)
        for dimension, name in (("", ""), (ROLLUP_CHANNEL, channel), (ROLLUP_INTENT, turn.get("intent") or "none")):
            batch.hincrby(key, rollup_field(RollupField.TURNS, dimension, name), 1)
            batch.hincrby(key, rollup_field(RollupField.NEG_TURNS, dimension, name), negative)
            batch.hincrbyfloat(key, rollup_field(RollupField.VALENCE_SUM, dimension, name), record.valence)
        batch.hincrby(key, rollup_label_field(str(turn.get("label", "unknown"))), 1)
        batch.pfadd(self.keys.rollup_convs(shard, hour), conversation_id)
        batch.expire(key, self.ttl)
        batch.expire(self.keys.rollup_convs(shard, hour), self.ttl)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: first this consumer's unacknowledged events, then new ones; survives Redis outages."""
        pending_first = True
        while not stop.is_set():
            try:
                await self.ensure_group()
                handled = await self.step(pending=pending_first)
                pending_first = pending_first and handled > 0
            except (redis.RedisError, OSError) as exc:  # on a cluster, also a failover in progress
                log_event(logger, logging.WARNING, "toneline.analytics.rollups.unavailable", error=str(exc))
                await asyncio.sleep(1.0)
