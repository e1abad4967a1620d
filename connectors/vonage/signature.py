"""Authenticating Vonage: signed webhooks (JWT, HS256) and the signed stream URL our NCCO hands out.

Signed webhooks (https://developer.vonage.com/en/getting-started/concepts/webhooks#decoding-signed-webhooks):
Vonage sends `Authorization: Bearer <JWT>` signed HS256 with the account's
signature secret; its claims carry `iat` and a `payload_hash`: the SHA-256 hex
of the body of a POST, and of a GET's query parameters as a compact JSON object
in their order (Vonage's own recipe: "create an object of the query parameters
for GET or the request body for POST, in the order of the parameters, convert it
to a JSON string with no whitespace, hash it with SHA-256"; `query_payload`).
A request that carries a payload (a body, a query) is refused unless the hash
binds it, so a query changed after signing (another call's `uuid`) is refused
like a changed body. A token older than `MAX_AGE_S` is refused, so a captured
request cannot be replayed later. Vonage's SDK (`vonage_jwt.verify_signature`)
checks the JWT's signature only; the conformance tests check that every token
it refuses is refused here too.

The WebSocket upgrade is authenticated by its URL: the answer webhook (itself
verified) puts the call's UUID, an expiry and an HMAC-SHA256 of both, keyed by
the same secret, into the `uri` of the NCCO's websocket endpoint. Vonage opens
exactly that URL, so the upgrade can be checked before the handshake, like
Twilio's signed stream URL, and the stream is bound to the call it was issued for.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Mapping, Sequence, Tuple

import jwt

MAX_AGE_S = 300  # a signed webhook older than this is refused
CLOCK_SKEW_S = 30
STREAM_TTL_S = 120  # how long after the answer webhook Vonage may open the stream
CALL_PARAM, EXPIRES_PARAM, SIG_PARAM = "call", "expires", "sig"
EMPTY_QUERY_PAYLOADS = ("", "{}")  # what a GET without parameters may have been hashed over
Query = Sequence[Tuple[str, str]]  # a query's parameters in order, blank values and repeats kept


def query_payload(query: Query) -> str:
    """The JSON text Vonage hashes for a GET: JavaScript's `JSON.stringify(Object.fromEntries(params))`.

    As in a JavaScript object, a repeated name keeps its first place and its last value, and names that are
    array indices ("0", "17") come first in ascending order; the text has no whitespace and keeps non-ASCII."""
    values: dict[str, str] = {}
    for name, value in query:
        values[name] = value
    indices = sorted((name for name in values if _array_index(name)), key=int)
    ordered = indices + [name for name in values if not _array_index(name)]
    return json.dumps({name: values[name] for name in ordered}, ensure_ascii=False, separators=(",", ":"))


def _array_index(name: str) -> bool:
    """A canonical array index (ECMAScript orders these keys first): "0", "1", ... below 2**32 - 1."""
    return name.isascii() and name.isdigit() and (name == "0" or name[0] != "0") and int(name) < 2**32 - 1


def payload_hash(body: bytes = b"", query: Query = ()) -> str:
    """`payload_hash` as Vonage computes it for a request with this body (POST) or query (GET)."""
    return hashlib.sha256(body if body else query_payload(query).encode("utf-8")).hexdigest()


def webhook_token(secret: str, body: bytes = b"", now: float | None = None, query: Query = (), **claims: str) -> str:
    """A JWT as Vonage signs a webhook (the simulator signs with it; the conformance tests sign with PyJWT and
    check against Vonage's SDK)."""
    issued = int(time.time() if now is None else now)
    payload: dict[str, object] = {"iat": issued, "jti": hashlib.sha256(f"{issued}{claims}".encode()).hexdigest()}
    if body or query:
        payload["payload_hash"] = payload_hash(body, query)
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


def webhook_refusal(
    authorization: str | None, secret: str, body: bytes, now: float | None = None, query: Query = ()
) -> str | None:
    """Why a webhook request is not Vonage's (a code for the log), or None when its JWT checks out and its
    `payload_hash` binds its body (POST) or its query (GET)."""
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
    return None if _payload_bound(str(claims.get("payload_hash", "")), body, query) else "payload_hash_mismatch"


def _payload_bound(claimed: str, body: bytes, query: Query) -> bool:
    """The claimed hash covers what the request carries; a request that carries nothing needs no hash."""
    if body:
        return hmac.compare_digest(claimed.encode(), hashlib.sha256(body).hexdigest().encode())
    if query:
        return hmac.compare_digest(claimed.encode(), payload_hash(query=query).encode())
    empty = [hashlib.sha256(text.encode()).hexdigest() for text in EMPTY_QUERY_PAYLOADS]
    return not claimed or any(hmac.compare_digest(claimed.encode(), h.encode()) for h in empty)


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
