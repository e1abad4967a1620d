"""AudioHook request authentication: the API key and HTTP Message Signatures (HMAC-SHA256).

Genesys signs the WebSocket upgrade request (draft-ietf-httpbis-message-signatures):

    Signature-Input: sig1=("@request-target" "@authority" "audiohook-organization-id" ...);keyid="<api key>";
                     nonce="...";alg="hmac-sha256";created=1641013200;expires=1641013500
    Signature: sig1=:<base64 HMAC-SHA256 of the signature base>:

The signature base is one line per covered component, `"<name>": <value>`, then
`"@signature-params": <the Signature-Input value after "sig1=">`, joined with
"\\n" and no trailing newline. The key is the client secret, which Genesys
configures base64-encoded. Reference:
https://developer.genesys.cloud/devapps/audiohook/security
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import time
from dataclasses import dataclass
from typing import Mapping

API_KEY_HEADER = "x-api-key"
REQUIRED = ("@request-target", "@authority", "audiohook-organization-id", "audiohook-session-id", "x-api-key")
CLOCK_SKEW_S = 30
_INPUT = re.compile(r'^\s*([A-Za-z0-9_\-]+)=\(((?:"[^"]*"\s*)*)\)(.*)$')
_SIGNATURE = re.compile(r"^\s*([A-Za-z0-9_\-]+)=:([A-Za-z0-9+/=]*):\s*$")
_PARAM = re.compile(r';\s*([a-z]+)=("[^"]*"|-?\d+)')


class SignatureError(ValueError):
    """The request is not authentic; `code` names why (for logs and the HTTP status)."""

    def __init__(self, code: str, detail: str = "") -> None:
        super().__init__(f"{code}: {detail}" if detail else code)
        self.code = code


@dataclass(frozen=True)
class SignatureInput:
    """One parsed `Signature-Input` member."""

    label: str
    components: tuple[str, ...]
    params: dict[str, str | int]
    raw: str  # the serialized inner list with parameters: the value of "@signature-params"


@dataclass(frozen=True)
class SignedRequest:
    """What of the upgrade request a signature can cover."""

    path_and_query: str
    authority: str
    headers: Mapping[str, str]  # lower-case names

    def component(self, name: str) -> str:
        if name == "@request-target":
            return self.path_and_query
        if name == "@authority":
            return self.authority.lower()
        if name.startswith("@"):
            raise SignatureError("unsupported_component", name)
        if name not in self.headers:
            raise SignatureError("missing_component", name)
        return self.headers[name].strip()


def parse_input(header: str) -> SignatureInput:
    """Parse `Signature-Input` (first member only, which is what Genesys sends)."""
    match = _INPUT.match(header or "")
    if match is None:
        raise SignatureError("malformed_signature_input")
    label, inner, rest = match.groups()
    components = tuple(re.findall(r'"([^"]*)"', inner))
    params: dict[str, str | int] = {}
    for key, value in _PARAM.findall(rest):
        params[key] = value[1:-1] if value.startswith('"') else int(value)
    raw = header.strip()[len(label) + 1 :]
    return SignatureInput(label, components, params, raw)


def signature_base(sig_input: SignatureInput, request: SignedRequest) -> str:
    """The exact string that is signed."""
    lines = [f'"{name}": {request.component(name)}' for name in sig_input.components]
    lines.append(f'"@signature-params": {sig_input.raw}')
    return "\n".join(lines)


def secret_key(client_secret: str) -> bytes:
    """The HMAC key: the client secret base64-decoded (as Genesys configures it), else its UTF-8 bytes."""
    try:
        return base64.b64decode(client_secret, validate=True)
    except (binascii.Error, ValueError):
        return client_secret.encode()


def compute(base: str, client_secret: str) -> str:
    """Base64 HMAC-SHA256 of a signature base."""
    digest = hmac.new(secret_key(client_secret), base.encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def verify(
    request: SignedRequest,
    signature_input: str | None,
    signature: str | None,
    api_key: str,
    client_secret: str,
    now: float | None = None,
) -> SignatureInput:
    """The verified signature's parameters; raises `SignatureError` unless `client_secret`'s holder signed it.

    Replay protection is the caller's: the returned `nonce` must not have been seen before `expires`.
    """
    if not signature_input or not signature:
        raise SignatureError("missing_signature")
    parsed = parse_input(signature_input)
    match = _SIGNATURE.match(signature)
    if match is None or match.group(1) != parsed.label:
        raise SignatureError("malformed_signature")
    _check_params(parsed, api_key, time.time() if now is None else now)
    missing = [c for c in REQUIRED if c not in parsed.components]
    if missing:
        raise SignatureError("uncovered_components", ",".join(missing))
    expected = compute(signature_base(parsed, request), client_secret)
    if not hmac.compare_digest(expected, match.group(2)):
        raise SignatureError("bad_signature")
    return parsed


def _check_params(parsed: SignatureInput, api_key: str, now: float) -> None:
    if str(parsed.params.get("alg", "hmac-sha256")) != "hmac-sha256":
        raise SignatureError("unsupported_algorithm", str(parsed.params.get("alg")))
    if not hmac.compare_digest(str(parsed.params.get("keyid", "")), api_key):
        raise SignatureError("wrong_keyid")
    if not str(parsed.params.get("nonce", "")):
        raise SignatureError("missing_nonce")
    created, expires = parsed.params.get("created"), parsed.params.get("expires")
    if isinstance(created, int) and created > now + CLOCK_SKEW_S:
        raise SignatureError("created_in_future")
    if isinstance(expires, int) and expires < now - CLOCK_SKEW_S:
        raise SignatureError("expired")


def sign(
    request: SignedRequest,
    api_key: str,
    client_secret: str,
    nonce: str,
    created: int,
    components: tuple[str, ...] = REQUIRED[:4] + ("audiohook-correlation-id", "x-api-key"),
    expires_in: int = 300,
) -> dict[str, str]:
    """The `Signature-Input` and `Signature` headers a Genesys client sends (simulator and tests)."""
    listed = " ".join(f'"{c}"' for c in components)
    params = f'keyid="{api_key}";nonce="{nonce}";alg="hmac-sha256";created={created};expires={created + expires_in}'
    raw = f"({listed});{params}"
    parsed = SignatureInput("sig1", components, {}, raw)
    value = compute(signature_base(parsed, request), client_secret)
    return {"Signature-Input": f"sig1={raw}", "Signature": f"sig1=:{value}:"}


def replay_window(parsed: SignatureInput, now: float, default_s: int = 600) -> int:
    """How long (s) a nonce must be remembered: until the signature expires (plus skew), else `default_s`."""
    expires = parsed.params.get("expires")
    if isinstance(expires, int):
        return max(1, int(expires - now) + CLOCK_SKEW_S)
    return default_s


def authority_variants(netloc: str, secure: bool) -> list[str]:
    """`@authority` normalised as RFC 9421 has it (lower case, the scheme's default port omitted), then, for a
    client that signed the default port, the same with it: the two forms a signer may have used."""
    default = ":443" if secure else ":80"
    host = netloc.lower()
    bare = host[: -len(default)] if host.endswith(default) else host
    has_port = "]:" in bare if bare.startswith("[") else ":" in bare
    return [bare] if has_port or not bare else [bare, bare + default]
