"""Supervisor sign-in: PBKDF2 password hashes, Redis-backed sessions, CSRF tokens.

Sessions are opaque random tokens in an HttpOnly, SameSite=Strict cookie; Redis
stores only their SHA-256, so a copy of Redis cannot be replayed as a login.
Every state-changing request must echo the session's CSRF token in a header.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from typing import Mapping

from plugin.redis_client import AsyncClient
from plugin.schema import Keys

ALGORITHM = "pbkdf2_sha256"
ITERATIONS = 310_000  # OWASP 2023 guidance for PBKDF2-HMAC-SHA256


def hash_password(password: str, *, iterations: int = ITERATIONS, salt: bytes | None = None) -> str:
    """`pbkdf2_sha256$iterations$salt$hash`, both base64."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    return "$".join([ALGORITHM, str(iterations), base64.b64encode(salt).decode(), base64.b64encode(digest).decode()])


def verify_password(password: str, encoded: str) -> bool:
    """Constant-time check of `password` against a `hash_password` string; False if malformed."""
    try:
        algorithm, iterations, salt, expected = encoded.split("$")
        if algorithm != ALGORITHM:
            return False
        digest = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
        return hmac.compare_digest(digest, base64.b64decode(expected))
    except (ValueError, TypeError):
        return False


@dataclass(frozen=True)
class Session:
    """A signed-in supervisor."""

    username: str
    csrf: str


class Sessions:
    """Sessions in Redis with an absolute expiry."""

    def __init__(self, redis: AsyncClient, prefix: str, ttl_seconds: int) -> None:
        self.redis = redis
        self.keys = Keys(prefix)
        self.ttl = ttl_seconds

    def _key(self, token: str) -> str:
        return self.keys.dash_session(hashlib.sha256(token.encode()).hexdigest())

    async def create(self, username: str) -> tuple[str, Session]:
        token, session = secrets.token_urlsafe(32), Session(username, secrets.token_urlsafe(24))
        await self.redis.set(self._key(token), json.dumps(session.__dict__), ex=self.ttl)
        return token, session

    async def get(self, token: str | None) -> Session | None:
        if not token or len(token) > 200:
            return None
        raw = await self.redis.get(self._key(token))
        return Session(**json.loads(raw)) if raw else None

    async def delete(self, token: str) -> None:
        await self.redis.delete(self._key(token))


class Supervisors:
    """Who may sign in: username -> password hash."""

    def __init__(self, hashes: Mapping[str, str]) -> None:
        self.hashes = dict(hashes)

    def check(self, username: str, password: str) -> bool:
        encoded = self.hashes.get(username)
        if encoded is None:
            # Same cost for unknown users, so timing does not reveal who exists.
            verify_password(password, _DUMMY_HASH)
            return False
        return verify_password(password, encoded)


_DUMMY_HASH = hash_password("not-a-password", iterations=ITERATIONS, salt=b"\0" * 16)
