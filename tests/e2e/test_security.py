"""Every door of the running stack, tried without its key: Rasa's API, the action server, the WebSockets."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import socket
import urllib.error
import urllib.request
from typing import cast
from urllib.parse import urlparse

import pytest
from websockets.client import WebSocketClientProtocol, connect
from websockets.frames import OP_TEXT

from plugin.action_server import SECRET_HEADER
from scripts.stack import api_url
from tests.e2e.conftest import Stack

pytestmark = pytest.mark.e2e

# Rasa answers these without a token by design: a greeting and its version number, nothing of any customer.
PUBLIC_RASA_ROUTES = {"/", "/version"}


def rasa_api_routes() -> list[tuple[str, str]]:
    """(method, path) of every route Rasa's HTTP API registers, read from Rasa's own Sanic app."""
    import rasa.server

    app = rasa.server.create_app(cors_origins=None, auth_token="enumerate-only")
    routes = set()
    for route in app.router.routes:
        path = "/" + route.path.lstrip("/")
        path = re.sub(r"<[^>]+>", "e2e-probe", path)
        for method in route.methods - {"OPTIONS", "HEAD"}:
            routes.add((method, path))
    return sorted(routes)


def status_of(method: str, url: str, headers: dict[str, str] | None = None, body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def upgrade_status(url: str, headers: dict[str, str] | None = None) -> int:
    """Status line of a WebSocket upgrade request: 101 means the handshake was granted."""
    parts = urlparse(url)
    conn = http.client.HTTPConnection(cast(str, parts.hostname), parts.port, timeout=10)
    conn.request(
        "GET",
        parts.path,
        headers={
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
            **(headers or {}),
        },
    )
    status = conn.getresponse().status
    conn.close()
    return status


def test_every_rasa_api_route_refuses_requests_without_the_token(stack: Stack) -> None:
    routes = [(m, p) for m, p in rasa_api_routes() if p not in PUBLIC_RASA_ROUTES]
    assert len(routes) >= 15, routes  # tracker, events, story, execute, predict, messages, model, domain, status...
    refused = {}
    for method, path in routes:
        body = b"{}" if method in ("POST", "PUT") else None
        headers = {"Content-Type": "application/json"}
        refused[(method, path)] = (
            status_of(method, stack.url + path, headers, body),
            status_of(method, api_url(stack.url, path, "not-the-token"), headers, body),
        )
    allowed = {route: codes for route, codes in refused.items() if not set(codes) <= {401, 403}}
    assert not allowed, f"answered without the right token: {allowed}"
    assert status_of("GET", api_url(stack.url, "/status", stack.token)) == 200


def test_a_customers_tracker_needs_the_token(stack: Stack) -> None:
    stack.say("e2e-secret-holder", "my account number is 12345")
    assert status_of("GET", f"{stack.url}/conversations/e2e-secret-holder/tracker") == 401
    assert "12345" in json.dumps(stack.tracker("e2e-secret-holder"))


def test_the_action_server_refuses_requests_without_the_secret(stack: Stack) -> None:
    assert stack.actions is not None
    forged = json.dumps(
        {
            "next_action": "action_handoff",
            "sender_id": "vip-42",
            "tracker": {"sender_id": "vip-42", "slots": {}, "latest_message": {}, "events": []},
            "domain": {},
            "version": "3.6.2",
        }
    ).encode()
    url = stack.actions.url
    assert status_of("POST", f"{url}/webhook", {"Content-Type": "application/json"}, forged) == 401
    assert status_of("POST", f"{url}/webhook", {SECRET_HEADER: "guess-guess-guess"}, forged) == 401
    assert status_of("GET", f"{url}/actions") == 401
    assert status_of("GET", f"{url}/actions", {SECRET_HEADER: stack.env["TONELINE_ACTION_SECRET"]}) == 200
    assert status_of("GET", f"{url}/health") == 200
    assert stack.handoffs("vip-42") == [], "no forged case reached the agents"
    assert "actions.auth.rejected" in stack.log_path.read_text()


def test_the_action_server_listens_on_loopback_only(stack: Stack) -> None:
    assert stack.actions is not None
    address = outward_address()
    if address is None:
        pytest.skip("this machine has no non-loopback address to try")
    with pytest.raises(OSError):
        socket.create_connection((address, stack.actions.port), timeout=2).close()


async def send_invalid_utf8(ws: WebSocketClientProtocol) -> None:
    """A text frame whose bytes are not UTF-8 (the client library refuses to build one with `send`)."""
    await ws.write_frame(True, OP_TEXT, b'{"type": "chat", "text": "\xff\xfe"}')


def outward_address() -> str | None:
    """This machine's address on its default route (a UDP `connect` sends nothing), if it has one."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("10.255.255.255", 1))
        except OSError:
            return None
        address = str(probe.getsockname()[0])
    return None if address.startswith("127.") or address == "0.0.0.0" else address


def ws_url(stack: Stack, path: str) -> str:
    return stack.url.replace("http://", "ws://") + path


def test_unsigned_telephony_upgrades_are_refused_before_the_handshake(stack: Stack) -> None:
    twilio = ws_url(stack, "/webhooks/toneline_twilio/stream")
    assert upgrade_status(twilio) == 403
    assert upgrade_status(twilio, {"X-Twilio-Signature": "bm90IGEgc2lnbmF0dXJl"}) == 403
    audiohook = ws_url(stack, "/webhooks/toneline_audiohook/ws")
    assert upgrade_status(audiohook) == 401
    assert upgrade_status(audiohook, {"X-API-KEY": "guess", "Audiohook-Session-Id": "s"}) == 401
    # No signature secret in this stack: every Vonage request is refused, signed-looking or not.
    vonage = ws_url(stack, "/webhooks/toneline_vonage/stream")
    assert upgrade_status(vonage) == 401
    assert upgrade_status(vonage + "?call=c&expires=9999999999&sig=00") == 401
    assert status_of("GET", stack.url + "/webhooks/toneline_vonage/answer?uuid=c") == 401


def test_the_video_socket_refuses_other_sites(stack: Stack) -> None:
    video = ws_url(stack, "/webhooks/toneline_video/ws")
    host = urlparse(stack.url).netloc
    assert upgrade_status(video, {"Origin": "https://evil.example"}) == 403
    assert upgrade_status(video, {"Origin": f"http://{host}.evil.example"}) == 403
    assert upgrade_status(video, {"Origin": "null"}) == 403
    assert upgrade_status(video, {"Origin": f"http://{host}"}) == 101  # the page itself
    assert "video.ws.origin_refused" in stack.log_path.read_text()


@pytest.mark.asyncio
async def test_invalid_utf8_in_a_text_frame_closes_the_video_socket_with_1007(stack: Stack) -> None:
    ws = await connect(ws_url(stack, "/webhooks/toneline_video/ws"))
    await ws.recv()  # ready
    await send_invalid_utf8(ws)
    await asyncio.wait_for(ws.wait_closed(), 10)
    assert ws.close_code == 1007
    await asyncio.sleep(0.2)
    assert "transport.receive.invalid_utf8" in stack.log_path.read_text()
