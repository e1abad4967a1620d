"""A fake of the one Vonage Voice API endpoint the connector calls: transfer a live call to a new NCCO.

Same path and authentication as https://api.nexmo.com: `PUT /v1/calls/{uuid}`
with `Authorization: Bearer <JWT>` signed RS256 by the application's private
key. It checks the token with the application's public key (and its
`application_id`, `iat` and `exp`), answers like Vonage (401 with a JSON error
on a bad token, 400 on a body that is not a transfer to an NCCO, 204 on
success) and records each accepted transfer for the test.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.connectors.fake_rest import ThreadedApp


def key_pair() -> tuple[str, str]:
    """A fresh RSA key pair (private PEM, public PEM), as a Vonage application has."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


@dataclass
class Transfer:
    """One accepted `PUT /v1/calls/{uuid}`."""

    call_uuid: str
    ncco: list[dict[str, Any]]
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeVonageRest(ThreadedApp):
    """Start with `start()`; `url` is the API base to configure; `transfers` what it accepted."""

    application_id: str
    public_key: str
    transfers: list[Transfer] = field(default_factory=list)
    rejected: int = 0
    port: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_put("/v1/calls/{uuid}", self.update_call)
        return app

    def _authorised(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        try:
            claims = jwt.decode(token, self.public_key, algorithms=["RS256"], options={"require": ["iat", "exp"]})
        except jwt.InvalidTokenError:
            return False
        return scheme == "Bearer" and claims.get("application_id") == self.application_id

    async def update_call(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            self.rejected += 1
            return web.json_response({"title": "Unauthorized", "detail": "invalid token"}, status=401)
        ncco = _transfer_ncco(await request.json())
        if ncco is None:
            return web.json_response({"title": "Bad Request", "detail": "not a transfer to an NCCO"}, status=400)
        self.transfers.append(Transfer(request.match_info["uuid"], ncco))
        return web.Response(status=204)


def _transfer_ncco(body: Any) -> list[dict[str, Any]] | None:
    """The NCCO of `{"action": "transfer", "destination": {"type": "ncco", "ncco": [...]}}`, else None."""
    if not isinstance(body, dict) or body.get("action") != "transfer":
        return None
    destination = body.get("destination")
    if not isinstance(destination, dict) or destination.get("type") != "ncco":
        return None
    ncco = destination.get("ncco")
    return ncco if isinstance(ncco, list) and all(isinstance(a, dict) for a in ncco) else None
