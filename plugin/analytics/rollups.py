"""Hourly rollups from the event stream, for the history view.

A Redis consumer group makes each event count once however many dashboard
instances run; per hour and overall, per channel, per intent: turns, negative
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
from redis.asyncio import Redis

from models.logs import log_event
from plugin.analytics.data import hour_key
from plugin.keys import Keys
from plugin.metadata import EVENT_ESCALATION, EVENT_TURN
from plugin.routing import RoutingConfig, TurnRecord, is_negative

logger = logging.getLogger(__name__)
GROUP = "toneline-rollups"


class Rollups:
    """Consumes `{p}:events` and keeps `{p}:rollup:{hour}` hashes."""

    def __init__(self, client: Redis, prefix: str, routing: RoutingConfig, ttl_seconds: int) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        # The history counts a turn as negative by the same rule that escalates (routing.is_negative).
        self.routing = routing
        self.ttl = ttl_seconds
        self.consumer = f"{socket.gethostname()}-{os.getpid()}"

    async def ensure_group(self) -> None:
        try:
            await self.redis.xgroup_create(self.keys.events, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def step(self, block_ms: int = 1000, pending: bool = False) -> int:
        """Read, apply and acknowledge one batch; returns how many events it handled."""
        response = await self.redis.xreadgroup(
            GROUP,
            self.consumer,
            {self.keys.events: "0" if pending else ">"},
            count=500,
            block=None if pending else block_ms,
        )
        entries = [entry for _, batch in response or [] for entry in batch]
        if not entries:
            return 0
        pipe = self.redis.pipeline(transaction=True)
        for _, fields in entries:
            self.apply(pipe, fields)
        pipe.xack(self.keys.events, GROUP, *[entry_id for entry_id, _ in entries])
        await pipe.execute()
        return len(entries)

    def apply(self, pipe: Any, fields: dict[str, str]) -> None:
        data = json.loads(fields.get("data") or "{}")
        channel, kind = fields.get("channel", "unknown"), fields.get("type")
        if kind == EVENT_TURN:
            self._turn(pipe, data, channel, fields.get("conversation_id", ""))
        elif kind == EVENT_ESCALATION and data.get("at"):
            key = self.keys.rollup(hour_key(float(data["at"])))
            for prefix in ("", f"channel:{channel}:"):
                pipe.hincrby(key, f"{prefix}escalations", 1)
            pipe.expire(key, self.ttl)

    def _turn(self, pipe: Any, turn: dict[str, Any], channel: str, conversation_id: str) -> None:
        try:
            record = TurnRecord.from_dict(turn)
        except (KeyError, TypeError, ValueError):
            return
        key = self.keys.rollup(hour_key(record.ts))
        negative = 1 if is_negative(record, self.routing) else 0
        for prefix in ("", f"channel:{channel}:", f"intent:{turn.get('intent') or 'none'}:"):
            pipe.hincrby(key, f"{prefix}turns", 1)
            pipe.hincrby(key, f"{prefix}neg_turns", negative)
            pipe.hincrbyfloat(key, f"{prefix}valence_sum", record.valence)
        pipe.hincrby(key, f"label:{turn.get('label', 'unknown')}", 1)
        pipe.pfadd(key + ":convs", conversation_id)
        pipe.expire(key, self.ttl)
        pipe.expire(key + ":convs", self.ttl)

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop`: first this consumer's unacknowledged events, then new ones; survives Redis outages."""
        pending_first = True
        while not stop.is_set():
            try:
                await self.ensure_group()
                handled = await self.step(pending=pending_first)
                pending_first = pending_first and handled > 0
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log_event(logger, logging.WARNING, "toneline.analytics.rollups.unavailable", error=str(exc))
                await asyncio.sleep(1.0)
