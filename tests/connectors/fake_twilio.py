"""A fake of the one Twilio REST endpoint the connector calls: update a live call with new TwiML.

Same path and HTTP basic auth as https://api.twilio.com; answers like Twilio
(401 with a JSON error on bad credentials, 404 for an unknown account, the call
resource JSON on success) and records each accepted update for the test.
Runs in its own thread and event loop so it serves a Rasa subprocess (fake_rest.py).
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass, field

from aiohttp import web

from tests.connectors.fake_rest import ThreadedApp


@dataclass
class CallUpdate:
    """One accepted `POST .../Calls/{CallSid}.json`."""

    account_sid: str
    call_sid: str
    twiml: str
    at: float = field(default_factory=time.monotonic)


@dataclass
class FakeTwilioRest(ThreadedApp):
    """Start with `start()`; `url` is the API base to configure; `updates` what it received."""

    account_sid: str
    auth_token: str
    updates: list[CallUpdate] = field(default_factory=list)
    rejected: int = 0
    port: int = 0

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{account}/Calls/{call}.json", self.update_call)
        return app

    def _authorised(self, request: web.Request) -> bool:
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        return request.headers.get("Authorization") == f"Basic {expected}"

    async def update_call(self, request: web.Request) -> web.Response:
        if not self._authorised(request):
            self.rejected += 1
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        account, call = request.match_info["account"], request.match_info["call"]
        if account != self.account_sid:
            return web.json_response({"code": 20404, "message": "not found", "status": 404}, status=404)
        form = await request.post()
        twiml = str(form.get("Twiml", ""))
        if not twiml.startswith("<Response>"):
            return web.json_response({"code": 21205, "message": "Invalid TwiML", "status": 400}, status=400)
        self.updates.append(CallUpdate(account, call, twiml))
        return web.json_response({"sid": call, "account_sid": account, "status": "in-progress"})
