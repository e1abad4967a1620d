"""Twilio's doors as Twilio signs its requests, checked with Twilio's own SDK (twilio 9.13's RequestValidator).

Toneline's signer stays the production code; these tests make Twilio's SDK the judge: for any request the SDK's
`validate()` accepts, Toneline accepts it, and for any it refuses, Toneline refuses it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import urllib.parse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.client import connect
from websockets.exceptions import InvalidStatusCode

from connectors.twilio import signature
from tests.connectors.conformance.conftest import AUTH_TOKEN, SHARED_KEY_SECRET, SHARED_KEY_SID, DoorsFactory
from tests.connectors.conformance.sdk import Sdk
from tests.connectors.conformance.twilio_requests import INCOMING_CALL, STREAM_PATH, VOICE_PATH, encode, post_form

PUBLIC = "https://bot.example.com"

# --- the signature itself, against the SDK, on random requests ---------------------------------------------

names = st.text(st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=8)
values = st.one_of(st.just(""), st.text(st.characters(blacklist_categories=["Cs"]), max_size=12))
pairs = st.lists(st.tuples(names, values), max_size=8).flatmap(
    lambda ps: st.just(ps) if not ps else st.one_of(st.just(ps), st.sampled_from(ps).map(lambda p: ps + [p]))
)  # sometimes a pair sent twice, as a repeated form field
hosts = st.sampled_from(["bot.example.com", "127.0.0.1", "Bot.Example.com", "xn--bcher-kva.example"])
ports = st.sampled_from(["", ":443", ":80", ":8443", ":99999", ":x"])
paths = st.sampled_from(["/webhooks/toneline_twilio/voice", "/webhooks/toneline_twilio/stream", "/", "/a b/%20"])
queries = st.one_of(
    st.just(""), st.lists(st.tuples(names, values), max_size=3).map(lambda q: "?" + urllib.parse.urlencode(q))
)
urls = st.builds(
    lambda s, h, p, path, q: f"{s}://{h}{p}{path}{q}",
    st.sampled_from(["https", "http", "wss", "ws"]),
    hosts,
    ports,
    paths,
    queries,
)
algorithms = st.sampled_from([None, "HMAC_SHA1", "HMAC_SHA256", "hmac_sha256", "HMAC_MD5"])


def port_variant(url: str, how: str) -> str:
    """The URL Twilio may have signed instead: with the scheme's default port, without any, or another one."""
    parsed = urllib.parse.urlparse(url)
    host = parsed.netloc.split(":")[0]
    netloc = {"same": parsed.netloc, "bare": host, "443": f"{host}:443", "80": f"{host}:80", "other": f"{host}:8080"}
    return parsed._replace(netloc=netloc[how]).geturl()


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    url=urls,
    form=pairs,
    secret=st.text(min_size=1, max_size=40),
    signed_url_kind=st.sampled_from(["same", "bare", "443", "80", "other"]),
    mutation=st.sampled_from(["none", "none", "drop", "change", "add", "secret"]),
    algorithm=algorithms,
)
def test_toneline_accepts_exactly_what_the_sdk_accepts(
    sdk: Sdk,
    url: str,
    form: list[tuple[str, str]],
    secret: str,
    signed_url_kind: str,
    mutation: str,
    algorithm: str | None,
) -> None:
    try:
        signed_url = port_variant(url, signed_url_kind)
    except ValueError:
        signed_url = url
    signed_form = list(form)
    if mutation == "drop" and form:
        signed_form = form[1:]
    elif mutation == "change" and form:
        signed_form = [(form[0][0], form[0][1] + "x"), *form[1:]]
    elif mutation == "add":
        signed_form = [*form, ("Digits", "9")]
    try:
        sig = sdk.twilio_sign(
            signed_url, signed_form, secret=secret + ("!" if mutation == "secret" else ""), algorithm=algorithm
        )
    except Exception:
        sig = "not-a-signature"
    ours = signature.is_valid(url, form, sig, secret, algorithm or "HMAC_SHA1")
    assert ours == sdk.twilio_accepts(url, form, sig, secret=secret, algorithm=algorithm)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    url=urls,
    form=pairs,
    secret=st.text(min_size=1, max_size=40),
    algorithm=st.sampled_from(["HMAC_SHA1", "HMAC_SHA256"]),
)
def test_toneline_signs_as_the_sdk_signs(
    sdk: Sdk, url: str, form: list[tuple[str, str]], secret: str, algorithm: str
) -> None:
    """The project's signer (the simulator's and the bench's) computes the SDK's signature for any input."""
    assert signature.compute(url, form, secret, algorithm) == sdk.twilio_sign(
        url, form, secret=secret, algorithm=algorithm
    )


@settings(max_examples=150, deadline=None)
@given(body=st.text(max_size=60), tamper=st.booleans(), with_hash=st.booleans())
def test_json_bodies_bound_by_body_sha256_agree_with_the_sdk(
    sdk: Sdk, body: str, tamper: bool, with_hash: bool
) -> None:
    digest = hashlib.sha256(body.encode()).hexdigest()
    url = f"{PUBLIC}/webhooks/toneline_twilio/voice" + (f"?bodySHA256={digest}" if with_hash else "")
    sig = sdk.twilio_sign(url, secret=AUTH_TOKEN)
    received = body + ("x" if tamper else "")
    ours = signature.is_valid(url, received, sig, AUTH_TOKEN)
    assert ours == sdk.twilio_accepts(url, received, sig, secret=AUTH_TOKEN)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "key=KSx,algorithm=HMAC_SHA256",
        "algorithm=HMAC_SHA1",
        "key=KSx",
        " algorithm = hmac_sha256 , key=K",
        "algorithm=,algorithm=HMAC_SHA256",
        "garbage",
        "algorithm=HMAC_MD5",
    ],
)
def test_the_settings_header_names_the_algorithm_the_sdk_reads(sdk: Sdk, header: str | None) -> None:
    assert signature.SignatureSettings.parse(header).algorithm == sdk.call("twilio_algorithm", header=header)


# --- the doors, as Twilio calls them -----------------------------------------------------------------------


def signed_post(sdk: Sdk, base: str, url: str, form: list[tuple[str, str]], **headers: str) -> tuple[int, str]:
    return post_form(base + VOICE_PATH, encode(form), headers)


def test_a_real_incoming_call_with_blank_fields_is_answered(sdk: Sdk, doors: DoorsFactory) -> None:
    """Twilio signs over every parameter, the empty CallerCity= and FromZip= too (Sanic's form drops them)."""
    door = doors(TONELINE_TWILIO_PUBLIC_URL=PUBLIC)
    sig = sdk.twilio_sign(PUBLIC + VOICE_PATH, INCOMING_CALL, secret=AUTH_TOKEN)
    status, twiml = post_form(door.url + VOICE_PATH, encode(INCOMING_CALL), {"X-Twilio-Signature": sig})
    assert status == 200, twiml
    assert f'<Stream url="wss://bot.example.com{STREAM_PATH}">' in twiml
    assert 'value="+447700900123"' in twiml
    # A signature over the form without its blank fields is not Twilio's: the SDK and Toneline both refuse it.
    without_blanks = [(k, v) for k, v in INCOMING_CALL if v]
    bad = sdk.twilio_sign(PUBLIC + VOICE_PATH, without_blanks, secret=AUTH_TOKEN)
    assert not sdk.twilio_accepts(PUBLIC + VOICE_PATH, INCOMING_CALL, bad, secret=AUTH_TOKEN)
    assert post_form(door.url + VOICE_PATH, encode(INCOMING_CALL), {"X-Twilio-Signature": bad})[0] == 403


@pytest.mark.parametrize("signed", [f"{PUBLIC}:443{VOICE_PATH}", f"{PUBLIC}{VOICE_PATH}"])
def test_twilio_may_sign_the_url_with_or_without_its_port(sdk: Sdk, doors: DoorsFactory, signed: str) -> None:
    door = doors(TONELINE_TWILIO_PUBLIC_URL=PUBLIC)
    sig = sdk.twilio_sign(signed, INCOMING_CALL, secret=AUTH_TOKEN)
    assert sdk.twilio_accepts(PUBLIC + VOICE_PATH, INCOMING_CALL, sig, secret=AUTH_TOKEN)
    assert post_form(door.url + VOICE_PATH, encode(INCOMING_CALL), {"X-Twilio-Signature": sig})[0] == 200


def test_repeated_fields_a_changed_field_and_a_query(sdk: Sdk, doors: DoorsFactory) -> None:
    door = doors(TONELINE_TWILIO_PUBLIC_URL=PUBLIC)
    form = [*INCOMING_CALL, ("SipHeader_X-Tag", "b"), ("SipHeader_X-Tag", "a"), ("Note", "café ☎")]
    url = f"{PUBLIC}{VOICE_PATH}?tenant=north&lang=en-GB"
    sig = sdk.twilio_sign(url, form, secret=AUTH_TOKEN)
    post = f"{door.url}{VOICE_PATH}?tenant=north&lang=en-GB"
    assert post_form(post, encode(form), {"X-Twilio-Signature": sig})[0] == 200
    changed = [(k, "+15550000" if k == "From" else v) for k, v in form]
    assert post_form(post, encode(changed), {"X-Twilio-Signature": sig})[0] == 403
    assert post_form(post.replace("north", "south"), encode(form), {"X-Twilio-Signature": sig})[0] == 403
    assert "twilio.signature.rejected code=invalid_signature" in door.log()


def test_a_shared_key_signature_when_one_is_configured(sdk: Sdk, doors: DoorsFactory) -> None:
    settings_header = f"key={SHARED_KEY_SID},algorithm=HMAC_SHA256"
    sig = sdk.twilio_sign(PUBLIC + VOICE_PATH, INCOMING_CALL, secret=SHARED_KEY_SECRET, algorithm="HMAC_SHA256")
    headers = {"X-Twilio-Signature": sig, "X-Twilio-Webhooks-Signature-Settings": settings_header}
    unconfigured = doors(TONELINE_TWILIO_PUBLIC_URL=PUBLIC)
    assert post_form(unconfigured.url + VOICE_PATH, encode(INCOMING_CALL), headers)[0] == 403
    assert "code=unknown_shared_key" in unconfigured.log()
    door = doors(
        TONELINE_TWILIO_PUBLIC_URL=PUBLIC,
        TWILIO_SHARED_KEY_SID=SHARED_KEY_SID,
        TWILIO_SHARED_KEY_SECRET=SHARED_KEY_SECRET,
    )
    assert post_form(door.url + VOICE_PATH, encode(INCOMING_CALL), headers)[0] == 200
    other_key = {**headers, "X-Twilio-Webhooks-Signature-Settings": "key=KSother,algorithm=HMAC_SHA256"}
    assert post_form(door.url + VOICE_PATH, encode(INCOMING_CALL), other_key)[0] == 403
    # the auth token's signature still opens the door without the header, and never with it
    token_sig = sdk.twilio_sign(PUBLIC + VOICE_PATH, INCOMING_CALL, secret=AUTH_TOKEN)
    assert post_form(door.url + VOICE_PATH, encode(INCOMING_CALL), {"X-Twilio-Signature": token_sig})[0] == 200
    assert (
        post_form(door.url + VOICE_PATH, encode(INCOMING_CALL), {**headers, "X-Twilio-Signature": token_sig})[0] == 403
    )


def test_a_json_webhook_bound_by_body_sha256(sdk: Sdk, doors: DoorsFactory) -> None:
    from tests.connectors.conformance.twilio_requests import post_json

    door = doors(TONELINE_TWILIO_PUBLIC_URL=PUBLIC)
    body = json.dumps({"CallSid": "CA1", "From": "+15550100"}).encode()
    query = f"?bodySHA256={hashlib.sha256(body).hexdigest()}"
    sig = sdk.twilio_sign(PUBLIC + VOICE_PATH + query, secret=AUTH_TOKEN)
    assert post_json(door.url + VOICE_PATH + query, body, {"X-Twilio-Signature": sig})[0] == 200
    assert post_json(door.url + VOICE_PATH + query, body + b" ", {"X-Twilio-Signature": sig})[0] == 403


@pytest.mark.parametrize("signed", [f"wss://bot.example.com{STREAM_PATH}", f"wss://bot.example.com:80{STREAM_PATH}"])
def test_the_media_stream_upgrade_signed_as_twilio_signs_it(sdk: Sdk, doors: DoorsFactory, signed: str) -> None:
    door = doors(TONELINE_TWILIO_PUBLIC_URL=PUBLIC)
    sig = sdk.twilio_sign(signed, secret=AUTH_TOKEN)
    assert sdk.twilio_accepts(f"wss://bot.example.com{STREAM_PATH}", [], sig, secret=AUTH_TOKEN)

    async def upgrade(signature_value: str) -> int:
        try:
            ws = await connect(
                door.url.replace("http://", "ws://") + STREAM_PATH,
                extra_headers={"X-Twilio-Signature": signature_value},
            )
        except InvalidStatusCode as refused:
            return refused.status_code
        await ws.close()
        return 101

    assert asyncio.run(upgrade(sig)) == 101
    assert asyncio.run(upgrade(sdk.twilio_sign(f"https://bot.example.com{STREAM_PATH}", secret=AUTH_TOKEN))) == 403
