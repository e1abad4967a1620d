"""Transfer a live call through Twilio's REST API: update the call with new TwiML.

POST {api_base}/2010-04-01/Accounts/{AccountSid}/Calls/{CallSid}.json with the
form field `Twiml`, HTTP basic auth (account SID, auth token). Twilio then leaves
the `<Connect><Stream>` (the media stream stops) and runs the new TwiML.
https://www.twilio.com/docs/voice/api/call-resource#update-a-call-resource
`api_base` is configurable so tests point it at a fake with the same endpoint.
`TwilioTransfer` is the call core's transfer adapter (connectors/call/transfer.py).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import aiohttp

from connectors.call.transfer import rest_call
from connectors.frames import CallStart
from models.logs import log_event

logger = logging.getLogger(__name__)
DEFAULT_API_BASE = "https://api.twilio.com"


@dataclass(frozen=True)
class TwilioTransferTarget:
    """Where a handed-off call goes: a number or SIP URI to `<Dial>`, else a TaskRouter/agent queue to `<Enqueue>`."""

    dial: str | None = None
    queue: str = "support"
    announcement: str | None = None

    def twiml(self) -> str:
        say = f"<Say>{escape(self.announcement)}</Say>" if self.announcement else ""
        target = f"<Dial>{escape(self.dial)}</Dial>" if self.dial else f"<Enqueue>{escape(self.queue)}</Enqueue>"
        return f"<Response>{say}{target}</Response>"


class TwilioRest:
    """The one REST call the connector needs; one client per channel, shared by its calls."""

    def __init__(
        self, account_sid: str, auth_token: str, api_base: str = DEFAULT_API_BASE, timeout: float = 10
    ) -> None:
        self.account_sid = account_sid
        self._auth = aiohttp.BasicAuth(account_sid, auth_token)
        self.api_base = api_base.rstrip("/")
        self._timeout = timeout

    def call_url(self, call_sid: str) -> str:
        return f"{self.api_base}/2010-04-01/Accounts/{self.account_sid}/Calls/{call_sid}.json"

    async def update_call(self, call_sid: str, twiml: str) -> dict[str, Any]:
        """Replace the call's TwiML; returns Twilio's call resource JSON; raises `TransferError`."""
        body = await rest_call("POST", self.call_url(call_sid), self._timeout, data={"Twiml": twiml}, auth=self._auth)
        log_event(logger, logging.INFO, "twilio.call.updated", call_id=call_sid)
        try:
            return dict(json.loads(body))
        except ValueError:
            return {}


@dataclass(frozen=True)
class TwilioTransfer:
    """The call core's `TransferAdapter` for Twilio: the live call leaves the stream for the handoff TwiML."""

    rest: TwilioRest
    target: TwilioTransferTarget

    async def transfer(self, call: CallStart) -> None:
        await self.rest.update_call(call.call_id, self.target.twiml())
