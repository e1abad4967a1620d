"""Moving a live call to a person: the one thing the call core asks of a provider's REST API.

Each provider implements `TransferAdapter` (Twilio: update the call with new
TwiML; Vonage: transfer the call to a new NCCO); the core decides when, the
adapter only knows how.
"""

from __future__ import annotations

from typing import Any, Protocol

import aiohttp

from connectors.frames import CallStart


class TransferError(RuntimeError):
    """The provider refused the transfer or could not be reached; `status` is the HTTP status (0 if none)."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"call transfer failed ({status}): {detail}")
        self.status = status


class TransferAdapter(Protocol):
    """Moves one live call to the configured handoff target."""

    async def transfer(self, call: CallStart) -> None:
        """Hand the call over; raises `TransferError`."""


async def rest_call(method: str, url: str, timeout_s: float, **request: Any) -> str:
    """One request to a provider's REST API; the response body, or `TransferError` on an error status or none."""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http,
            http.request(method, url, **request) as response,
        ):
            body = await response.text()
            if response.status >= 300:
                raise TransferError(response.status, body[:200])
            return body
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise TransferError(0, repr(exc)) from None
