"""Live updates: one reader of Toneline's streams per app, fanned out to every open page.

Each browser holds a Server-Sent Events connection; the hub tails the event
and handoff streams (XREAD, blocking up to 1 s) and pushes the changed floor
rows and new handoff cases to every subscriber's queue. A subscriber too slow
to keep up is dropped; its browser reconnects and gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import redis
from redis.asyncio import Redis

from models.logs import log_event
from plugin.analytics.data import Dashboard

logger = logging.getLogger(__name__)
QUEUE_SIZE = 2000


class LiveHub:
    """Tails the streams and broadcasts updates to subscribers."""

    def __init__(self, client: Redis, dashboard: Dashboard) -> None:
        self.redis = client
        self.dashboard = dashboard
        self.subscribers: set[asyncio.Queue[dict[str, Any]]] = set()

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self.subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self.subscribers.discard(queue)

    def broadcast(self, message: dict[str, Any]) -> None:
        for queue in list(self.subscribers):
            try:
                queue.put_nowait(message)
            except asyncio.QueueFull:
                # Too slow: drop it; the page reconnects and starts from a fresh snapshot.
                self.subscribers.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait({"type": "overflow"})

    async def _positions(self) -> dict[str, str]:
        keys = self.dashboard.keys
        return {keys.events: await self._last_id(keys.events), keys.handoffs: await self._last_id(keys.handoffs)}

    async def _last_id(self, stream: str) -> str:
        last = await self.redis.xrevrange(stream, count=1)
        return last[0][0] if last else "0-0"

    async def step(self, positions: dict[str, str], block_ms: int = 1000) -> None:
        """Read what arrived since `positions` (updated in place) and broadcast it."""
        response = await self.redis.xread(positions, count=1000, block=block_ms)
        changed: dict[str, None] = {}
        for stream, entries in response or []:
            positions[stream] = entries[-1][0]
            for entry_id, fields in entries:
                if stream == self.dashboard.keys.handoffs:
                    case = {"case_id": entry_id, **json.loads(fields["data"]), "claim": None}
                    self.broadcast({"type": "escalation", "case": case})
                elif fields.get("conversation_id"):
                    changed[fields["conversation_id"]] = None
        if changed:
            for row in await self.dashboard.rows(list(changed), time.time()):
                self.broadcast({"type": "conversation", "row": row})

    async def run(self, stop: asyncio.Event) -> None:
        positions: dict[str, str] | None = None
        last_tick = 0.0
        while not stop.is_set():
            try:
                positions = positions or await self._positions()
                await self.step(positions)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                log_event(logger, logging.WARNING, "toneline.analytics.live.unavailable", error=str(exc))
                await asyncio.sleep(1.0)
            if time.monotonic() - last_tick >= 5:
                # Lets pages age durations and drop conversations that went idle.
                self.broadcast({"type": "tick", "now": time.time()})
                last_tick = time.monotonic()
