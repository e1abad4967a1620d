"""`X-Twilio-Signature`: HMAC-SHA1 over the URL and the sorted POST parameters, base64.

https://www.twilio.com/docs/usage/webhooks/webhooks-security : take the full URL
Twilio requested (with the query string), append each POST parameter name and
value sorted by name, sign with the account's auth token. The WebSocket upgrade
of a Media Stream is signed the same way with no parameters.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Iterable, Mapping, Sequence, Union

Params = Mapping[str, Union[str, Sequence[str]]]


def _values(value: str | Sequence[str]) -> Iterable[str]:
    return [value] if isinstance(value, str) else sorted(value)


def compute(url: str, params: Params, auth_token: str) -> str:
    """The signature Twilio sends for a request to `url` with form `params`."""
    payload = url + "".join(name + v for name in sorted(params) for v in _values(params[name]))
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def is_valid(url: str, params: Params, signature: str | None, auth_token: str) -> bool:
    """True only for a present signature that matches; constant-time comparison."""
    if not signature or not auth_token:
        return False
    return hmac.compare_digest(compute(url, params, auth_token), signature)
