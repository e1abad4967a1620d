"""`X-Twilio-Signature`: an HMAC over the URL Twilio requested and its POST parameters, base64.

https://www.twilio.com/docs/usage/webhooks/webhooks-security : take the full URL
Twilio requested (with the query string), append each POST parameter's name and
value sorted by name, sign with the account's auth token (HMAC-SHA1). The
WebSocket upgrade of a Media Stream is signed the same way with no parameters.

This module accepts exactly what Twilio's own SDK accepts
(`twilio.request_validator.RequestValidator.validate`, twilio 9.13; the
conformance tests check it against the SDK on random inputs):

- every parameter counts, blank values included (Twilio sends `CallerCity=`
  and signs it); names sorted, a repeated name's distinct values sorted;
- the URL is tried without its port and with the scheme's default port,
  because Twilio's back end signs one or the other;
- a JSON body is bound by `bodySHA256` in the query (SHA-256 hex of the body)
  and the URL is signed with no parameters;
- a webhook signed with a SharedKey names it and its algorithm in
  `X-Twilio-Webhooks-Signature-Settings` (`key=<sid>,algorithm=HMAC_SHA256`)
  and is signed the same way with the SharedKey's secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence, Tuple, Union
from urllib.parse import ParseResult, parse_qs, parse_qsl, urlparse

SIGNATURE_HEADER = "X-Twilio-Signature"
SETTINGS_HEADER = "X-Twilio-Webhooks-Signature-Settings"
HMAC_SHA1, HMAC_SHA256 = "HMAC_SHA1", "HMAC_SHA256"
_HASHES: dict[str, Callable[..., hashlib._Hash]] = {HMAC_SHA1: hashlib.sha1, HMAC_SHA256: hashlib.sha256}
BODY_HASH_PARAM = "bodySHA256"

Pair = Tuple[str, str]
# A form as Twilio sent it: every pair in order, blank values and repeated names kept (a mapping for one value each).
Params = Union[Sequence[Pair], Mapping[str, str]]


def form_pairs(body: bytes) -> list[Pair]:
    """An `application/x-www-form-urlencoded` body as Twilio signed it: blank values and repeats kept.

    (Sanic's `request.form` drops blank values, so a signature over it never matches Twilio's.)"""
    return parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)


@dataclass(frozen=True)
class SignatureSettings:
    """What `X-Twilio-Webhooks-Signature-Settings` says: absent means the auth token and HMAC-SHA1."""

    key: str | None = None  # the SharedKey's SID; None: signed with the account's auth token
    algorithm: str = HMAC_SHA1

    @classmethod
    def parse(cls, header: str | None) -> SignatureSettings:
        """Twilio's own reading (`get_signature_algorithm`): `algorithm=` names it, missing means HMAC-SHA1."""
        if header is None:
            return cls()
        fields: dict[str, str] = {}
        for part in header.split(","):
            name, separator, value = part.partition("=")
            if separator and name.strip() and value.strip():
                fields.setdefault(name.strip(), value.strip())
        return cls(key=fields.get("key"), algorithm=fields.get("algorithm", HMAC_SHA1))


def compute(url: str, params: Params, secret: str, algorithm: str = HMAC_SHA1) -> str:
    """The signature Twilio sends for a request to exactly `url` with form `params`."""
    pairs = list(params.items()) if isinstance(params, Mapping) else list(params)
    names = sorted({name for name, _ in pairs})
    payload = url + "".join(name + value for name in names for value in sorted({v for n, v in pairs if n == name}))
    digest = hmac.new(secret.encode("utf-8"), payload.encode("utf-8"), _HASHES[algorithm.upper()]).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> tuple[str, str] | None:
    """The URL without its port and with the scheme's default one, as Twilio's SDK tries them (its
    `remove_port` / `add_port`: https means 443, any other scheme 80); None for a URL with a bad port."""
    parsed = urlparse(url)
    try:
        port = parsed.port
    except ValueError:
        return None
    without = parsed._replace(netloc=parsed.netloc.split(":")[0]).geturl() if port else parsed.geturl()
    return without, _with_port(parsed, port)


def _with_port(parsed: ParseResult, port: int | None) -> str:
    if port:
        return parsed.geturl()
    return parsed._replace(netloc=f"{parsed.netloc}:{443 if parsed.scheme == 'https' else 80}").geturl()


def is_valid(url: str, params: Params | str, signature: str | None, secret: str, algorithm: str = HMAC_SHA1) -> bool:
    """True only for a present signature that Twilio's SDK would accept; `params` is the form's pairs, or the
    raw body of a JSON request (bound by `bodySHA256` in the URL). Constant-time comparison; never raises."""
    if not signature or not secret or algorithm.upper() not in _HASHES:
        return False
    variants = url_variants(url)
    if variants is None:
        return False
    pairs: Params = params if not isinstance(params, str) else []
    body_ok = True
    if isinstance(params, str):
        claimed = parse_qs(urlparse(url).query).get(BODY_HASH_PARAM)
        if claimed:
            body_ok = _same(hashlib.sha256(params.encode("utf-8")).hexdigest(), claimed[0])
        elif params:  # a body that nothing binds: the SDK fails on it (TypeError), so it is not accepted
            return False
    matches = [_same(compute(variant, pairs, secret, algorithm), signature) for variant in variants]
    return body_ok and any(matches)


def _same(expected: str, given: str) -> bool:
    # Bytes, so that a non-ASCII header compares False instead of raising TypeError.
    return hmac.compare_digest(expected.encode("utf-8"), given.encode("utf-8", errors="replace"))
