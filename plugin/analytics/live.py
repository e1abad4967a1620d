"""Live updates: one reader of Toneline's streams per app, fanned out to every open page.

Each browser holds a Server-Sent Events connection; the hub tails every shard's
event and handoff streams (XREAD per stream, polled every 0.2 s) and pushes the changed floor
rows and new handoff cases to every subscriber's queue. A subscriber too slow
to keep up is dropped; its browser reconnects and gets a fresh snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import redis

from models.logs import log_event
from plugin.analytics.data import Dashboard
from plugin.redis_client import AsyncClient
from plugin.schema import Keys, StreamEvent, handoff_case

logger = logging.getLogger(__name__)
QUEUE_SIZE = 2000
POLL_S = 0.2


class LiveHub:
    """Tails the streams and broadcasts updates to subscribers."""

    def __init__(self, client: AsyncClient, dashboard: Dashboard) -> None:
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

    def _streams(self) -> list[str]:
        keys = self.dashboard.keys
        return [stream for shard in keys.all_shards() for stream in (keys.events(shard), keys.handoffs(shard))]

    async def _positions(self) -> dict[str, str]:
        streams = self._streams()
        return dict(zip(streams, await asyncio.gather(*(self._last_id(s) for s in streams))))

    async def _last_id(self, stream: str) -> str:
        last = await self.redis.xrevrange(stream, count=1)
        return last[0][0] if last else "0-0"

    async def _read(self, positions: dict[str, str]) -> list[tuple[str, list[Any]]]:
        # One XREAD per stream (a cluster refuses one XREAD over streams in different slots), side by side.
        async def one(stream: str) -> tuple[str, list[Any]]:
            response = await self.redis.xread({stream: positions[stream]}, count=1000)
            return stream, [entry for _, entries in response or [] for entry in entries]

        return [(stream, entries) for stream, entries in await asyncio.gather(*map(one, positions)) if entries]

    async def step(self, positions: dict[str, str], block_ms: int = 1000) -> None:
        """Read what arrived since `positions` (updated in place) and broadcast it.

        Polls (every `POLL_S`, up to `block_ms`) rather than blocking: a blocking read waits on one slot, and the
        streams of the shards live on every master of a cluster.
        """
        deadline = time.monotonic() + block_ms / 1000
        while not (response := await self._read(positions)) and time.monotonic() < deadline:
            await asyncio.sleep(POLL_S)
        changed: dict[str, None] = {}
        handoff_streams = {self.dashboard.keys.handoffs(shard): shard for shard in self.dashboard.keys.all_shards()}
        for stream, entries in response:
            positions[stream] = entries[-1][0]
            for entry_id, fields in entries:
                if stream in handoff_streams:
                    case_id = Keys.case_id(handoff_streams[stream], entry_id)
                    case = {"case_id": case_id, **handoff_case(fields), "claim": None}
                    self.broadcast({"type": "escalation", "case": case})
                elif conversation_id := StreamEvent.from_fields(fields).conversation_id:
                    changed[conversation_id] = None
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
            except (redis.RedisError, OSError) as exc:  # on a cluster, also a failover in progress
                log_event(logger, logging.WARNING, "toneline.analytics.live.unavailable", error=str(exc))
                await asyncio.sleep(1.0)
            if time.monotonic() - last_tick >= 5:
                # Lets pages age durations and drop conversations that went idle.
                self.broadcast({"type": "tick", "now": time.time()})
                last_tick = time.monotonic()
