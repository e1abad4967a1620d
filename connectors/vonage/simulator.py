"""A Vonage-side simulator: places a call the way the Voice API does, for tests, benchmarks and local trials.

It GETs the answer URL with the call's facts and a signed-webhook JWT, takes
the websocket endpoint of the NCCO's `connect` action, opens its URI, sends
`websocket:connected` with the endpoint's content type and headers, then 640
bytes of 16 kHz linear PCM every 20 ms (caller speech, else silence), and plays
back what the bot sends (connectors/call/simulator.py): binary audio is queued
for playback, each `notify` comes back as `websocket:notify` when the audio
before it has played, and `clear` drops the queued audio (pending notifies
with it) and is acknowledged with `websocket:cleared`. Hanging up closes the
socket, as Vonage does when the caller's leg ends.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
import urllib.request
import uuid
from typing import Any

from connectors.call.simulator import Reply, SimulatedCall
from connectors.speech.codec import Linear16Codec
from connectors.vonage import serializer as wire
from connectors.vonage import signature

__all__ = ["Reply", "VonageCall", "answer", "place_call"]


class VonageCall(SimulatedCall):
    """One Vonage call in progress; create with `place_call`."""

    def __init__(self, ws: Any, call_uuid: str, speed: float = 1.0) -> None:
        super().__init__(ws, Linear16Codec(wire.SAMPLE_RATE), speed)
        self.call_uuid = call_uuid

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def send_audio(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def return_mark(self, name: str) -> None:
        await self.send_json({"event": "websocket:notify", "payload": {wire.MARK_KEY: name}})

    def on_message(self, message: Any) -> None:
        if isinstance(message, bytes):
            self.received.append({"audio": len(message)})
            self.played(message)
            return
        decoded = json.loads(message)
        self.received.append(decoded)
        if decoded.get("action") == "notify":
            self.marked(decoded["payload"][wire.MARK_KEY])
        elif decoded.get("action") == "clear":
            self.cleared_playback(return_marks=False)
            self._tasks.append(asyncio.ensure_future(self.send_json({"event": "websocket:cleared"})))


def answer(base_url: str, secret: str, call_uuid: str, caller: str) -> list[dict[str, Any]]:
    """GET the signed answer webhook, as Vonage does for an inbound call; returns the NCCO."""
    query = {"uuid": call_uuid, "conversation_uuid": "CON-" + call_uuid, "from": caller, "to": "15550199"}
    url = f"{base_url}/webhooks/toneline_vonage/answer?{urllib.parse.urlencode(query)}"
    token = signature.webhook_token(secret, query=list(query.items()))
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        ncco = json.loads(response.read())
    if not isinstance(ncco, list):
        raise ValueError(f"the answer webhook did not return an NCCO: {ncco!r}")
    return ncco


def websocket_endpoint(ncco: list[dict[str, Any]]) -> dict[str, Any]:
    """The websocket endpoint of the NCCO's `connect` action."""
    for action in ncco:
        for endpoint in action.get("endpoint", []) if action.get("action") == "connect" else []:
            if endpoint.get("type") == "websocket":
                return dict(endpoint)
    raise ValueError(f"no websocket connect in the NCCO: {ncco!r}")


async def place_call(
    base_url: str, secret: str, caller: str = "15550100", speed: float = 1.0, call_uuid: str | None = None
) -> VonageCall:
    """Start a call the way Vonage does and return it streaming (`say`, `wait_reply`, `hang_up`)."""
    from websockets.client import connect

    call_uuid = call_uuid or str(uuid.uuid4())
    ncco = await asyncio.get_running_loop().run_in_executor(None, answer, base_url, secret, call_uuid, caller)
    endpoint = websocket_endpoint(ncco)
    ws = await connect(endpoint["uri"], max_size=2**20)
    call = VonageCall(ws, call_uuid, speed)
    await call.send_json(
        {"event": "websocket:connected", "content-type": endpoint["content-type"], **endpoint.get("headers", {})}
    )
    call.start()
    return call
