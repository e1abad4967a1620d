"""Authenticating Vonage: signed webhooks (JWT, HS256) and the signed stream URL our NCCO hands out.

Signed webhooks (https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks):
Vonage sends `Authorization: Bearer <JWT>` signed HS256 with the account's
signature secret; its claims carry `iat` and, for a request with a body, a
`payload_hash` (SHA-256 hex of the body). A token older than `MAX_AGE_S` is
refused, so a captured request cannot be replayed later.

The WebSocket upgrade is authenticated by its URL: the answer webhook (itself
verified) puts the call's UUID, an expiry and an HMAC-SHA256 of both, keyed by
the same secret, into the `uri` of the NCCO's websocket endpoint. Vonage opens
exactly that URL, so the upgrade can be checked before the handshake, like
Twilio's signed stream URL, and the stream is bound to the call it was issued for.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Mapping

import jwt

MAX_AGE_S = 300  # a signed webhook older than this is refused
CLOCK_SKEW_S = 30
STREAM_TTL_S = 120  # how long after the answer webhook Vonage may open the stream
CALL_PARAM, EXPIRES_PARAM, SIG_PARAM = "call", "expires", "sig"


def webhook_token(secret: str, body: bytes = b"", now: float | None = None, **claims: str) -> str:
    """A JWT as Vonage signs a webhook (the simulator and the tests sign with it)."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, object] = {"iat": issued, "jti": hashlib.sha256(f"{issued}{claims}".encode()).hexdigest()}
    if body:
        payload["payload_hash"] = hashlib.sha256(body).hexdigest()
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


def webhook_refusal(authorization: str | None, secret: str, body: bytes, now: float | None = None) -> str | None:
    """Why a webhook request is not Vonage's (a code for the log), or None when its JWT checks out."""
    if not secret:
        return "no_secret_configured"
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        return "missing_token"
    try:
        claims = jwt.decode(token, secret, algorithms=["HS256"], options={"require": ["iat"]}, leeway=CLOCK_SKEW_S)
    except jwt.InvalidTokenError:
        return "invalid_token"
    issued = claims.get("iat")
    current = time.time() if now is None else now
    if not isinstance(issued, (int, float)) or current - issued > MAX_AGE_S:
        return "expired_token"
    if body and not hmac.compare_digest(str(claims.get("payload_hash", "")), hashlib.sha256(body).hexdigest()):
        return "payload_hash_mismatch"
    return None


def _stream_mac(secret: str, call: str, expires: str) -> str:
    return hmac.new(secret.encode(), f"{call}.{expires}".encode(), hashlib.sha256).hexdigest()


def stream_query(secret: str, call: str, now: float | None = None) -> dict[str, str]:
    """The query parameters of a stream URL for `call`, valid for `STREAM_TTL_S`."""
    expires = str(int((time.time() if now is None else now) + STREAM_TTL_S))
    return {CALL_PARAM: call, EXPIRES_PARAM: expires, SIG_PARAM: _stream_mac(secret, call, expires)}


def stream_refusal(query: Mapping[str, str], secret: str, now: float | None = None) -> str | None:
    """Why a stream upgrade is refused (a code for the log), or None when its URL was signed by us and is fresh."""
    if not secret:
        return "no_secret_configured"
    call, expires, sig = (query.get(CALL_PARAM, ""), query.get(EXPIRES_PARAM, ""), query.get(SIG_PARAM, ""))
    if not (call and expires and sig):
        return "unsigned_stream"
    if not hmac.compare_digest(_stream_mac(secret, call, expires), sig):
        return "invalid_stream_signature"
    if not (expires.isascii() and expires.isdigit()) or int(expires) < (time.time() if now is None else now):
        return "expired_stream_url"
    return None
