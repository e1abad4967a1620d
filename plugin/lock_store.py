"""Rasa's Redis lock store, with each change of a conversation's lock made atomically.

Rasa open source 3.6's `RedisLockStore` reads a conversation's ticket lock, changes
it in Python and writes it back (issue a ticket, finish serving, clean up). With
one Rasa process the event loop serialises those steps; with two replicas, two
turns of one conversation arriving together both read "no tickets", both take
ticket 0 and run at once, and with the SQL tracker store the second save then
drops the first turn's user message (tests/e2e/test_scale.py caught it). Here each
read-change-write runs in a Redis transaction that WATCHes the lock's key and is
retried if another replica changed it meanwhile: the same lock format, the same
keys, so replicas with either class can share a lock Redis during an upgrade
(only the atomicity needs all of them on this one).

endpoints.scale.yml:

    lock_store:
      type: plugin.lock_store.AtomicRedisLockStore
      url: <host>          # ONE Redis primary, never a cluster (RedisLockStore speaks to one node)
      port: 6379
      key_prefix: <letters and digits>
"""

from __future__ import annotations

import json
from typing import Any, Callable, Tuple, TypeVar

from rasa.core.lock import TicketLock
from rasa.core.lock_store import LOCK_LIFETIME, LockError, RedisLockStore
from rasa.utils.endpoints import EndpointConfig

T = TypeVar("T")
Change = Callable[[TicketLock | None], Tuple[TicketLock | None, T]]


class AtomicRedisLockStore(RedisLockStore):
    """`RedisLockStore` whose lock changes are WATCH/MULTI transactions (safe across Rasa replicas)."""

    def __init__(self, endpoint_config: EndpointConfig | None = None, **kwargs: Any) -> None:
        # Rasa builds a lock store named by module path with the endpoint config alone.
        if endpoint_config is not None:
            kwargs = {"host": endpoint_config.url or "localhost", **endpoint_config.kwargs}
        super().__init__(**kwargs)

    def _atomically(self, conversation_id: str, change: Change[T]) -> T:
        """Apply `change` to the stored lock (None if there is none) and store what it returns (None: delete)."""
        key = self.key_prefix + conversation_id
        result: list[T] = []

        def attempt(pipe: Any) -> None:
            raw = pipe.get(key)  # WATCHed: if another replica writes the key before EXEC, redis-py retries
            new_lock, value = change(TicketLock.from_dict(json.loads(raw)) if raw else None)
            pipe.multi()
            if new_lock is None:
                pipe.delete(key)
            else:
                pipe.set(key, new_lock.dumps())
            result[:] = [value]

        self.red.transaction(attempt, key)
        return result[0]

    def issue_ticket(self, conversation_id: str, lock_lifetime: float = LOCK_LIFETIME) -> int:
        def issue(lock: TicketLock | None) -> tuple[TicketLock | None, int]:
            lock = lock or self.create_lock(conversation_id)
            return lock, lock.issue_ticket(lock_lifetime)

        try:
            return self._atomically(conversation_id, issue)
        except Exception as exc:  # as Rasa's own: the caller handles LockError
            raise LockError(f"Error while acquiring lock. Error:\n{exc}") from exc

    def update_lock(self, conversation_id: str) -> None:
        def expire(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_expired_tickets()
            return lock, None

        self._atomically(conversation_id, expire)

    def finish_serving(self, conversation_id: str, ticket_number: int) -> None:
        def finish(lock: TicketLock | None) -> tuple[TicketLock | None, None]:
            if lock is not None:
                lock.remove_ticket_for(ticket_number)
            return lock, None

        self._atomically(conversation_id, finish)

    def cleanup(self, conversation_id: str, ticket_number: int) -> None:
        """Finish the ticket and delete the lock if nobody waits, in one step: a ticket another replica issues
        between the two is never deleted with the lock."""

        def finish_and_drop(lock: TicketLock | None) -> tuple[TicketLock | None, bool]:
            if lock is None:
                return None, False
            lock.remove_ticket_for(ticket_number)
            waiting = lock.is_someone_waiting()
            return (lock if waiting else None), not waiting

        deleted = self._atomically(conversation_id, finish_and_drop)
        self._log_deletion(conversation_id, deleted)
