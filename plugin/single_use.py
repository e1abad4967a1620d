"""Single-use records shared by every replica: signed-request nonces, signed stream URLs.

A replay must be refused whichever replica the proxy sends it to, so the record
lives in Redis (`SET NX` with the token's remaining lifetime; one key each, which
a Redis Cluster places anywhere). While Redis is away this process's memory stands
in (logged: refusing every call would be worse), and what it remembered is copied
to Redis as soon as Redis answers again, so a token used here during the outage is
refused by every replica afterwards. The gap left: a token replayed to another
replica while Redis is down.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from models.logs import log_event
from plugin.state import StateStore, StateUnavailable

logger = logging.getLogger(__name__)


class SingleUse:
    """Tokens of one kind, each accepted once across all replicas until it expires."""

    def __init__(self, store: StateStore | Callable[[], StateStore], kind: str) -> None:
        self._source = store
        self._store = store if isinstance(store, StateStore) else None
        self.kind = kind
        self._local: dict[str, float] = {}  # token -> expiry (epoch seconds), only while Redis is away
        self._lock = threading.Lock()

    @property
    def store(self) -> StateStore:
        # Made on first use: a channel is built when Rasa loads credentials, before Redis need answer.
        if self._store is None:
            self._store = self._source() if callable(self._source) else self._source
        return self._store

    def first_use(self, token: str, expires_at: float, now: float | None = None) -> bool:
        """True the first time `token` is presented before `expires_at`; False for a replay (or an expired token)."""
        now = time.time() if now is None else now
        if expires_at <= now:
            return False
        try:
            self._copy_local_to_redis(now)
            return self.store.claim_once(self.kind, token, int(expires_at - now) + 1)
        except StateUnavailable as exc:
            log_event(logger, logging.WARNING, "toneline.single_use.local_only", kind=self.kind, error=str(exc))
            return self._first_use_here(token, expires_at, now)

    def _first_use_here(self, token: str, expires_at: float, now: float) -> bool:
        with self._lock:
            self._local = {t: until for t, until in self._local.items() if until > now}
            if token in self._local:
                return False
            self._local[token] = expires_at
            return True

    def _copy_local_to_redis(self, now: float) -> None:
        """Hand what this process remembered during an outage to Redis (raises StateUnavailable if still away)."""
        with self._lock:
            held = [(t, until) for t, until in self._local.items() if until > now]
        for token, until in held:
            self.store.claim_once(self.kind, token, int(until - now) + 1)
            with self._lock:
                self._local.pop(token, None)
        if held:
            log_event(logger, logging.INFO, "toneline.single_use.copied_to_redis", kind=self.kind, tokens=len(held))
