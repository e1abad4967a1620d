"""One ordered worker per call: items (cut turns) are handled one at a time, a failed one is logged and skipped.

Shared by the bot-facing call core and the AudioHook listener: both must keep
turns in order (replies must not overtake each other; routing depends on the
turns before), both must let turns already cut finish at hang-up for at most
a drain timeout.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Awaitable, Callable, Generic, TypeVar

from models.logs import log_event

logger = logging.getLogger(__name__)
T = TypeVar("T")


class QueueWorker(Generic[T]):
    """Runs `handle` on each queued item, in order, in one task; log events are prefixed with `events`."""

    def __init__(self, handle: Callable[[T], Awaitable[None]], events: str, scope: str, **ids: Any) -> None:
        self._handle = handle
        self._events = events  # the channel's log prefix, e.g. "twilio"
        self._scope = scope  # "call" or "session": what a drain timeout ends
        self._ids = ids  # call_id=... or session_id=..., on every log line
        self._queue: asyncio.Queue[T | None] = asyncio.Queue()
        self._task = asyncio.create_task(self._loop(), name=f"{events}-turns-{'-'.join(map(str, ids.values()))}")

    def put(self, item: T) -> None:
        self._queue.put_nowait(item)

    async def _loop(self) -> None:
        while (item := await self._queue.get()) is not None:
            try:
                await self._handle(item)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed turn must not end the call
                log_event(logger, logging.ERROR, f"{self._events}.turn.failed", **self._ids, error=repr(exc))

    async def drain(self, timeout: float) -> None:
        """Let the items already queued finish (at most `timeout` s), then stop the worker."""
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout)
        except asyncio.TimeoutError:
            log_event(logger, logging.WARNING, f"{self._events}.{self._scope}.drain_timeout", **self._ids)
            self._task.cancel()
        except Exception as exc:
            log_event(
                logger, logging.ERROR, f"{self._events}.{self._scope}.worker_failed", **self._ids, error=repr(exc)
            )
