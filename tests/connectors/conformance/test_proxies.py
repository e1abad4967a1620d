"""Behind a real nginx or HAProxy that ends TLS (the snippets in deploy/proxy/, as README shows them): Twilio's
signed webhook and Media Streams upgrade, and Vonage's signed answer webhook, validate with Rasa told to trust
the proxy (SANIC_PROXIES_COUNT=1), whether the public URL is configured or read from the forwarded headers."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.parse
from typing import Callable, Iterator

import pytest
from websockets.client import connect
from websockets.exceptions import InvalidStatusCode

from scripts.stack import free_port
from tests.connectors.conformance.conftest import AUTH_TOKEN, VONAGE_SECRET, DoorsFactory
from tests.connectors.conformance.proxies import Proxy, start_haproxy, start_nginx
from tests.connectors.conformance.sdk import Sdk, node_payload_hash
from tests.connectors.conformance.test_vonage_conformance import ANSWER, INBOUND
from tests.connectors.conformance.twilio_requests import (
    INCOMING_CALL,
    STREAM_PATH,
    VOICE_PATH,
    encode,
    get,
    insecure_context,
    post_form,
)

pytestmark = pytest.mark.e2e
PROXIES: dict[str, Callable[[int], Proxy]] = {"nginx": start_nginx, "haproxy": start_haproxy}


@pytest.fixture(
    scope="module",
    params=[(name, configured) for name in PROXIES for configured in (True, False)],
    ids=lambda p: f"{p[0]}-{'public-url' if p[1] else 'forwarded-headers'}",
)
def proxied(request: pytest.FixtureRequest, doors: DoorsFactory) -> Iterator[Proxy]:
    name, configured = request.param
    upstream = free_port()
    proxy = PROXIES[name](upstream)
    door = None
    try:
        public = {"TONELINE_TWILIO_PUBLIC_URL": proxy.public_url, "TONELINE_VONAGE_PUBLIC_URL": proxy.public_url}
        door = doors(port=upstream, SANIC_PROXIES_COUNT="1", **(public if configured else {}))
        wait_until_routed(proxy)
        yield proxy
    finally:
        proxy.stop()
        if door is not None:
            door.stop()


def wait_until_routed(proxy: Proxy, seconds: float = 30) -> None:
    """Until the proxy's health check has seen the door server (HAProxy marks a new server up after 2 checks)."""
    deadline = time.monotonic() + seconds
    while get(proxy.public_url + "/webhooks/toneline_twilio/health", {})[0] != 200:
        assert time.monotonic() < deadline, f"{proxy.name} did not route to the door server in {seconds} s"
        time.sleep(0.25)


def test_twilio_voice_webhook_through_the_proxy(sdk: Sdk, proxied: Proxy) -> None:
    url = proxied.public_url + VOICE_PATH
    sig = sdk.twilio_sign(url, INCOMING_CALL, secret=AUTH_TOKEN)
    status, twiml = post_form(url, encode(INCOMING_CALL), {"X-Twilio-Signature": sig})
    assert status == 200, twiml
    stream = proxied.public_url.replace("https://", "wss://") + STREAM_PATH
    assert f'<Stream url="{stream}">' in twiml
    assert post_form(url, encode(INCOMING_CALL[1:]), {"X-Twilio-Signature": sig})[0] == 403


def test_twilio_stream_upgrade_through_the_proxy(sdk: Sdk, proxied: Proxy) -> None:
    stream = proxied.public_url.replace("https://", "wss://") + STREAM_PATH

    async def upgrade(headers: dict[str, str]) -> int:
        try:
            ws = await connect(stream, extra_headers=headers, ssl=insecure_context())
        except InvalidStatusCode as refused:
            return refused.status_code
        await ws.close()
        return 101

    assert asyncio.run(upgrade({"X-Twilio-Signature": sdk.twilio_sign(stream, secret=AUTH_TOKEN)})) == 101
    assert asyncio.run(upgrade({})) == 403
    https_signed = sdk.twilio_sign(proxied.public_url + STREAM_PATH, secret=AUTH_TOKEN)
    assert asyncio.run(upgrade({"X-Twilio-Signature": https_signed})) == 403


def test_vonage_answer_through_the_proxy(sdk: Sdk, proxied: Proxy) -> None:
    query = urllib.parse.urlencode(INBOUND)
    token = sdk.call("vonage_sign", secret=VONAGE_SECRET, payload_hash=node_payload_hash(query))
    status, body = get(f"{proxied.public_url}{ANSWER}?{query}", {"Authorization": f"Bearer {token}"})
    assert status == 200, body
    uri = json.loads(body)[0]["endpoint"][0]["uri"]
    assert uri.startswith(proxied.public_url.replace("https://", "wss://") + "/webhooks/toneline_vonage/stream?")
