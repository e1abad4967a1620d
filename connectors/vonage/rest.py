"""Transfer a live Vonage call to a person: the Voice API's call update with a new NCCO.

PUT {api_base}/v1/calls/{uuid} with `{"action": "transfer", "destination":
{"type": "ncco", "ncco": [...]}}`, authenticated by a JWT the application signs
(RS256) with its private key (claims `application_id`, `iat`, `exp`, `jti`).
Vonage leaves the websocket `connect` (the stream closes) and runs the new NCCO:
an optional `talk`, then `connect` to the agents' number or SIP URI. Vonage
answers 204 No Content.
https://developer.vonage.com/en/api/voice#updateCall
`api_base` is configurable so tests point it at a fake with the same endpoint.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from connectors.call.transfer import rest_call
from connectors.frames import CallStart

DEFAULT_API_BASE = "https://api.nexmo.com"
TOKEN_TTL_S = 300


@dataclass(frozen=True)
class VonageTransferTarget:
    """Where a handed-off call goes: a phone number (E.164 digits) or a SIP URI, after an optional announcement."""

    number: str | None = None
    sip: str | None = None
    announcement: str | None = None

    @property
    def configured(self) -> bool:
        return bool(self.number or self.sip)

    def ncco(self) -> list[dict[str, Any]]:
        endpoint = {"type": "phone", "number": self.number} if self.number else {"type": "sip", "uri": self.sip}
        talk = [{"action": "talk", "text": self.announcement}] if self.announcement else []
        return [*talk, {"action": "connect", "endpoint": [endpoint]}]


class VonageRest:
    """The one Voice API call the connector needs; one client per channel, shared by its calls."""

    def __init__(self, application_id: str, private_key: str, api_base: str = DEFAULT_API_BASE, timeout: float = 10):
        self.application_id = application_id
        self._private_key = private_key
        self.api_base = api_base.rstrip("/")
        self._timeout = timeout

    def token(self, now: float | None = None) -> str:
        """A fresh application JWT (RS256), as Vonage's own SDKs make them."""
        issued = int(time.time() if now is None else now)
        claims = {"application_id": self.application_id, "iat": issued, "exp": issued + TOKEN_TTL_S}
        return jwt.encode({**claims, "jti": str(uuid.uuid4())}, self._private_key, algorithm="RS256")

    async def transfer(self, call_uuid: str, ncco: list[dict[str, Any]]) -> None:
        """Replace the call's NCCO; raises `TransferError`."""
        body = {"action": "transfer", "destination": {"type": "ncco", "ncco": ncco}}
        headers = {"Authorization": f"Bearer {self.token()}"}
        await rest_call("PUT", f"{self.api_base}/v1/calls/{call_uuid}", self._timeout, json=body, headers=headers)


@dataclass(frozen=True)
class VonageTransfer:
    """The call core's `TransferAdapter` for Vonage."""

    rest: VonageRest
    target: VonageTransferTarget

    async def transfer(self, call: CallStart) -> None:
        await self.rest.transfer(call.call_id, self.target.ncco())
