"""AudioHook wire format and request signatures: pure unit tests with sample messages as Genesys sends them."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from typing import Any

import pytest

from connectors.audiohook import serializer as wire
from connectors.audiohook import signature
from connectors.frames import ProtocolError

SESSION = "e160e428-53e2-487c-977d-96989bf5c99d"
OPEN: dict[str, Any] = {
    "version": "2",
    "type": "open",
    "seq": 1,
    "serverseq": 0,
    "id": SESSION,
    "position": "PT0S",
    "parameters": {
        "organizationId": "d7934305-0972-4844-938e-9060eef73d05",
        "conversationId": "090eaa2f-72fa-480a-83e0-8667ff89c0ec",
        "participant": {"id": "883efee8-3d6c-4537-b500-6d7ca4b92fa0", "ani": "+1-555-555-1234", "dnis": "+1-800-555"},
        "media": [
            {"type": "audio", "format": "PCMU", "channels": ["external", "internal"], "rate": 8000},
            {"type": "audio", "format": "PCMU", "channels": ["external"], "rate": 8000},
        ],
        "language": "en-US",
    },
}


def msg(kind: str, seq: int = 2, **parameters: object) -> str:
    return json.dumps(
        {"version": "2", "type": kind, "seq": seq, "serverseq": 1, "id": SESSION, "parameters": parameters}
    )


def test_open_is_parsed_into_typed_fields_and_stereo_pcmu_is_chosen() -> None:
    parsed = wire.parse(json.dumps(OPEN))
    assert (parsed.type, parsed.seq, parsed.serverseq, parsed.session_id) == ("open", 1, 0, SESSION)
    body = parsed.body
    assert isinstance(body, wire.Open)
    assert body.conversation_id == "090eaa2f-72fa-480a-83e0-8667ff89c0ec"
    assert body.participant.ani == "+1-555-555-1234"
    assert wire.choose_media(body.media).channels == ("external", "internal")


@pytest.mark.parametrize(
    ("text", "body"),
    [
        (msg("ping"), wire.Ping()),
        (msg("pause"), wire.Pause()),
        (msg("resume"), wire.Resume()),
        (msg("close", reason="end"), wire.Close("end")),
        (msg("dtmf", digit="5", duration="PT0.2S"), wire.DtmfMessage("5")),
        (msg("transcript"), wire.Unknown("transcript")),
    ],
)
def test_client_messages(text: str, body: wire.Body) -> None:
    assert wire.parse(text).body == body


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{not json", "malformed_json"),
        ("[1, 2]", "malformed_message"),
        (msg("ping").replace('"2"', '"1"', 1), "unsupported_version"),
        (msg("ping").replace('"seq": 2', '"seq": "2"'), "malformed_message"),
        (json.dumps({**OPEN, "parameters": {**OPEN["parameters"], "media": []}}), "malformed_message"),
        ("x" * (wire.MAX_TEXT_CHARS + 1), "oversized_frame"),
    ],
)
def test_bad_messages_raise_protocol_errors_with_codes(text: str, code: str) -> None:
    with pytest.raises(ProtocolError) as error:
        wire.parse(text)
    assert error.value.code == code


def test_only_pcmu_8k_with_the_customer_channel_is_accepted() -> None:
    offers = (
        wire.MediaFormat("audio", "L16", ("external", "internal"), 16000),
        wire.MediaFormat("audio", "PCMU", ("internal",), 8000),
    )
    with pytest.raises(ProtocolError, match="unsupported_media"):
        wire.choose_media(offers)


def test_stereo_audio_is_split_by_accepted_channel_order_and_oversize_refused() -> None:
    media = wire.MediaFormat("audio", "PCMU", ("external", "internal"), 8000)
    assert wire.split_audio(bytes([1, 2, 3, 4, 5, 6]), media) == {
        "external": b"\x01\x03\x05",
        "internal": b"\x02\x04\x06",
    }
    mono = wire.MediaFormat("audio", "PCMU", ("external",), 8000)
    assert wire.split_audio(b"abc", mono) == {"external": b"abc"}
    with pytest.raises(ProtocolError, match="oversized_frame"):
        wire.split_audio(bytes(wire.MAX_AUDIO_BYTES + 1), media)


def test_server_messages_carry_the_envelope() -> None:
    media = wire.MediaFormat("audio", "PCMU", ("external",), 8000)
    opened = json.loads(wire.encode(wire.opened(media), 1, 1, SESSION))
    assert opened == {
        "version": "2",
        "type": "opened",
        "seq": 1,
        "clientseq": 1,
        "id": SESSION,
        "parameters": {"startPaused": False, "media": [media.to_wire()]},
    }
    bye = json.loads(wire.encode(wire.disconnect("error", "out_of_order"), 4, 7, SESSION))
    assert (bye["type"], bye["parameters"]["reason"], bye["clientseq"]) == ("disconnect", "error", 7)


# Known answer: the signature base built by hand from the HTTP Message Signatures rules, HMAC'd independently.
API_KEY = "SGVsbG8sIEkgYW0gdGhlIEFQSSBrZXkh"
SECRET = base64.b64encode(b"TheWorldsMostSecretKey").decode()
HEADERS = {
    "audiohook-organization-id": "d7934305-0972-4844-938e-9060eef73d05",
    "audiohook-session-id": SESSION,
    "audiohook-correlation-id": "30b0e395-84d3-4570-ac13-9a62d8f514c0",
    "x-api-key": API_KEY,
}
PARAMS = (
    '("@request-target" "@authority" "audiohook-organization-id" "audiohook-session-id" "audiohook-correlation-id" '
    f'"x-api-key");keyid="{API_KEY}";nonce="VGhpc0lzQVVuaXF1ZU5vbmNl";alg="hmac-sha256";created=1641013200;'
    "expires=3282026430"
)
REQUEST = signature.SignedRequest("/api/v1/audiohook/ws", "audiohook.example.com", HEADERS)


def expected_signature() -> str:
    base = "\n".join(
        [
            '"@request-target": /api/v1/audiohook/ws',
            '"@authority": audiohook.example.com',
            '"audiohook-organization-id": d7934305-0972-4844-938e-9060eef73d05',
            f'"audiohook-session-id": {SESSION}',
            '"audiohook-correlation-id": 30b0e395-84d3-4570-ac13-9a62d8f514c0',
            f'"x-api-key": {API_KEY}',
            f'"@signature-params": {PARAMS}',
        ]
    )
    return base64.b64encode(hmac.new(b"TheWorldsMostSecretKey", base.encode(), hashlib.sha256).digest()).decode()


def test_known_answer_signature_verifies() -> None:
    sig = expected_signature()
    parsed = signature.verify(REQUEST, f"sig1={PARAMS}", f"sig1=:{sig}:", API_KEY, SECRET, now=1641013210)
    assert parsed.params["nonce"] == "VGhpc0lzQVVuaXF1ZU5vbmNl"
    # The nonce must be remembered until the signature expires (plus the clock skew allowed).
    assert signature.replay_window(parsed, now=1641013210) == 3282026430 - 1641013210 + signature.CLOCK_SKEW_S
    signed = signature.sign(
        REQUEST,
        API_KEY,
        SECRET,
        "VGhpc0lzQVVuaXF1ZU5vbmNl",
        1641013200,
        components=signature.parse_input(f"sig1={PARAMS}").components,
        expires_in=3282026430 - 1641013200,
    )
    assert signed == {"Signature-Input": f"sig1={PARAMS}", "Signature": f"sig1=:{sig}:"}


@pytest.mark.parametrize(
    ("change", "code"),
    [
        ({"secret": base64.b64encode(b"another key").decode()}, "bad_signature"),
        ({"api_key": "someone-else"}, "wrong_keyid"),
        ({"header": ("audiohook-session-id", "f00")}, "bad_signature"),
        ({"now": 3282026430 + 600}, "expired"),
        ({"now": 1641013200 - 600}, "created_in_future"),
        ({"signature": None}, "missing_signature"),
        ({"signature": "sig1=not-base64"}, "malformed_signature"),
    ],
)
def test_bad_signatures_are_named(change: dict[str, Any], code: str) -> None:
    headers = dict(HEADERS)
    if "header" in change:
        headers[change["header"][0]] = change["header"][1]
    request = signature.SignedRequest(REQUEST.path_and_query, REQUEST.authority, headers)
    sig = change.get("signature", f"sig1=:{expected_signature()}:")
    with pytest.raises(signature.SignatureError) as error:
        signature.verify(
            request,
            f"sig1={PARAMS}",
            sig,
            change.get("api_key", API_KEY),
            change.get("secret", SECRET),
            now=change.get("now", 1641013210),
        )
    assert error.value.code == code


def test_a_signature_must_cover_the_audiohook_headers() -> None:
    partial = f'("@request-target" "@authority");keyid="{API_KEY}";nonce="n1";alg="hmac-sha256"'
    request = signature.SignedRequest("/ws", "h", HEADERS)
    sig = signature.compute(signature.signature_base(signature.parse_input(f"sig1={partial}"), request), SECRET)
    with pytest.raises(signature.SignatureError, match="uncovered_components"):
        signature.verify(request, f"sig1={partial}", f"sig1=:{sig}:", API_KEY, SECRET)


def test_a_signature_without_a_nonce_cannot_be_protected_from_replay() -> None:
    params = f'("@request-target" "@authority");keyid="{API_KEY}";alg="hmac-sha256"'
    request = signature.SignedRequest("/ws", "h", HEADERS)
    sig = signature.compute(signature.signature_base(signature.parse_input(f"sig1={params}"), request), SECRET)
    with pytest.raises(signature.SignatureError, match="missing_nonce"):
        signature.verify(request, f"sig1={params}", f"sig1=:{sig}:", API_KEY, SECRET)


@pytest.mark.parametrize(
    ("netloc", "secure", "expected"),
    [
        ("AudioHook.Example.com", True, ["audiohook.example.com", "audiohook.example.com:443"]),
        ("audiohook.example.com:443", True, ["audiohook.example.com", "audiohook.example.com:443"]),
        ("audiohook.example.com:80", False, ["audiohook.example.com", "audiohook.example.com:80"]),
        ("audiohook.example.com:8443", True, ["audiohook.example.com:8443"]),
        ("[::1]:443", True, ["[::1]", "[::1]:443"]),
        ("[::1]:9000", True, ["[::1]:9000"]),
        ("", True, [""]),
    ],
)
def test_authority_as_rfc_9421_normalises_it_and_with_the_default_port(
    netloc: str, secure: bool, expected: list[str]
) -> None:
    assert signature.authority_variants(netloc, secure) == expected


@pytest.mark.parametrize("received", ["audiohook.example.com:443", "AUDIOHOOK.example.com"])
def test_a_proxy_that_adds_the_default_port_or_changes_case_keeps_the_documented_signature(received: str) -> None:
    """The known-answer request signed over `audiohook.example.com` verifies when the Host reached us otherwise."""
    sig = expected_signature()
    verified = [
        authority
        for authority in signature.authority_variants(received, secure=True)
        if _verifies(signature.SignedRequest(REQUEST.path_and_query, authority, HEADERS), sig)
    ]
    assert verified == ["audiohook.example.com"]


def _verifies(request: signature.SignedRequest, sig: str) -> bool:
    try:
        signature.verify(request, f"sig1={PARAMS}", f"sig1=:{sig}:", API_KEY, SECRET, now=1641013210)
    except signature.SignatureError:
        return False
    return True
