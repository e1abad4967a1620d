"""Vonage's doors as Vonage signs its webhooks, checked with Vonage's own SDK (vonage 4.9 / vonage-jwt 1.1.5) and
with Vonage's documented recipe for `payload_hash`, run in JavaScript as it is written.

The SDK checks a signed webhook's JWT only (`verify_signature`); Vonage's recipe binds the payload: the SHA-256
of a POST's body, or of a GET's query parameters as `JSON.stringify` writes them.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.parse

import jwt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.vonage import signature
from tests.connectors.conformance.conftest import VONAGE_SECRET, DoorsFactory
from tests.connectors.conformance.sdk import Sdk, node_payload_hash
from tests.connectors.conformance.twilio_requests import get, post_json

ANSWER, EVENT = "/webhooks/toneline_vonage/answer", "/webhooks/toneline_vonage/event"
# The answer webhook's query for an inbound call, as Vonage's webhook reference lists it.
INBOUND = [
    ("to", "447700900000"),
    ("from", "447700900001"),
    ("endpoint_type", "phone"),
    ("conversation_uuid", "CON-aaaaaaaa-bbbb-cccc-dddd-0123456789ab"),
    ("uuid", "aaaaaaaa-bbbb-cccc-dddd-0123456789ab"),
    ("region_url", "https://api-eu-3.vonage.com"),
    ("custom_data", ""),
]

texts = st.text(st.characters(blacklist_categories=["Cs"]), max_size=10)
names = st.one_of(texts, st.sampled_from(["uuid", "from", "0", "10", "2", "01", "4294967295", "-1"]))


@settings(max_examples=60, deadline=None)
@given(query=st.lists(st.tuples(names, texts), max_size=6))
def test_the_get_payload_hash_is_vonages_recipe_as_javascript_computes_it(query: list[tuple[str, str]]) -> None:
    raw = urllib.parse.urlencode(query)
    parsed = urllib.parse.parse_qsl(raw, keep_blank_values=True)
    assert signature.payload_hash(query=parsed) == node_payload_hash(raw)


def bearer(sdk: Sdk, payload_hash: str | None, secret: str = VONAGE_SECRET, **extra: object) -> dict[str, str]:
    token = str(sdk.call("vonage_sign", secret=secret, payload_hash=payload_hash, **extra))
    return {"Authorization": f"Bearer {token}"}


def test_a_signed_get_answer_webhook_is_bound_to_its_query(sdk: Sdk, doors: DoorsFactory) -> None:
    door = doors(TONELINE_VONAGE_PUBLIC_URL="https://bot.example.com")
    query = urllib.parse.urlencode(INBOUND)
    headers = bearer(sdk, node_payload_hash(query))
    assert sdk.call("vonage_verify", token=headers["Authorization"][7:], secret=VONAGE_SECRET) is True
    status, body = get(f"{door.url}{ANSWER}?{query}", headers)
    assert status == 200, body
    uri = json.loads(body)[0]["endpoint"][0]["uri"]
    assert uri.startswith("wss://bot.example.com/webhooks/toneline_vonage/stream?call=aaaaaaaa-")
    # The same token on a query changed after signing (another call's uuid): refused, no stream URL handed out.
    changed = query.replace("uuid=aaaaaaaa", "uuid=ffffffff")
    assert get(f"{door.url}{ANSWER}?{changed}", headers)[0] == 401
    # A token with no payload_hash does not cover a query.
    assert get(f"{door.url}{ANSWER}?{query}", bearer(sdk, None))[0] == 401
    assert "vonage.auth.rejected code=payload_hash_mismatch" in door.log()


def test_a_get_without_a_query(sdk: Sdk, doors: DoorsFactory) -> None:
    door = doors(TONELINE_VONAGE_PUBLIC_URL="https://bot.example.com")
    # nothing to bind, so the webhook is authentic; it still needs the call's uuid
    assert get(f"{door.url}{ANSWER}", bearer(sdk, node_payload_hash("")))[0] == 400
    assert get(f"{door.url}{ANSWER}", bearer(sdk, None))[0] == 400


def test_a_signed_post_event_is_bound_to_its_body(sdk: Sdk, doors: DoorsFactory) -> None:
    door = doors(TONELINE_VONAGE_PUBLIC_URL="https://bot.example.com")
    body = json.dumps(
        {"uuid": "aaaaaaaa-bbbb", "status": "answered", "timestamp": "2026-12-07T16:00:00.000Z"}, separators=(",", ":")
    ).encode()
    headers = bearer(sdk, hashlib.sha256(body).hexdigest())
    assert post_json(door.url + EVENT, body, headers)[0] == 204
    assert post_json(door.url + EVENT, body.replace(b"answered", b"completed"), headers)[0] == 401


@pytest.mark.parametrize(
    "token",
    [
        lambda: jwt.encode({"iat": int(time.time())}, "another-secret", algorithm="HS256"),
        lambda: jwt.encode({"iat": int(time.time())}, VONAGE_SECRET, algorithm="HS512"),
        lambda: jwt.encode({"iat": int(time.time())}, None, algorithm="none"),  # type: ignore[arg-type]
        lambda: jwt.encode({"iat": int(time.time()) - 3600, "exp": int(time.time()) - 3000}, VONAGE_SECRET),
        lambda: jwt.encode({"iat": "yesterday"}, VONAGE_SECRET, algorithm="HS256"),
        lambda: "not.a.jwt",
    ],
    ids=["other-secret", "hs512", "alg-none", "expired", "iat-not-a-number", "garbage"],
)
def test_every_token_the_sdk_refuses_is_refused(sdk: Sdk, token: object) -> None:
    value = token()  # type: ignore[operator]
    try:
        sdk_accepts = bool(sdk.call("vonage_verify", token=value, secret=VONAGE_SECRET))
    except Exception:
        sdk_accepts = False
    assert not sdk_accepts
    assert signature.webhook_refusal(f"Bearer {value}", VONAGE_SECRET, b"") is not None


def test_the_answer_ncco_is_the_sdks_websocket_endpoint(sdk: Sdk, doors: DoorsFactory) -> None:
    door = doors(TONELINE_VONAGE_PUBLIC_URL="https://bot.example.com")
    query = urllib.parse.urlencode(INBOUND)
    status, body = get(f"{door.url}{ANSWER}?{query}", bearer(sdk, node_payload_hash(query)))
    assert status == 200
    endpoint = json.loads(body)[0]["endpoint"][0]
    assert sdk.call("vonage_websocket_endpoint", endpoint=endpoint) == endpoint
