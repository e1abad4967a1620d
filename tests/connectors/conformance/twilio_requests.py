"""Requests shaped as Twilio sends them (https://www.twilio.com/docs/voice/twiml#request-parameters)."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.parse
import urllib.request

VOICE_PATH = "/webhooks/toneline_twilio/voice"
STREAM_PATH = "/webhooks/toneline_twilio/stream"

# An incoming call's voice webhook, every documented parameter, as Twilio posts it for a number whose caller
# has no geographic data: the empty fields are in the body and in the signature.
INCOMING_CALL: list[tuple[str, str]] = [
    ("AccountSid", "AC" + "7" * 32),
    ("ApiVersion", "2010-04-01"),
    ("CallSid", "CA" + "0123456789abcdef" * 2),
    ("CallStatus", "ringing"),
    ("CallToken", '{"parentCallInfoToken":"eyJhbGciOiJFUzI1NiJ9.e30.sig","identityHeaderTokens":[]}'),
    ("Called", "+15550199"),
    ("CalledCity", "SAN FRANCISCO"),
    ("CalledCountry", "US"),
    ("CalledState", "CA"),
    ("CalledZip", "94105"),
    ("Caller", "+447700900123"),
    ("CallerCity", ""),
    ("CallerCountry", "GB"),
    ("CallerState", ""),
    ("CallerZip", ""),
    ("Direction", "inbound"),
    ("From", "+447700900123"),
    ("FromCity", ""),
    ("FromCountry", "GB"),
    ("FromState", ""),
    ("FromZip", ""),
    ("StirVerstat", "TN-Validation-Passed-A"),
    ("To", "+15550199"),
    ("ToCity", "SAN FRANCISCO"),
    ("ToCountry", "US"),
    ("ToState", "CA"),
    ("ToZip", "94105"),
]


def insecure_context() -> ssl.SSLContext:
    """For the tests' self-signed loopback certificates."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def post_form(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    """POST as Twilio does (form-encoded); the status and the body of the answer."""
    request = urllib.request.Request(url, body, {"Content-Type": "application/x-www-form-urlencoded", **headers})
    return _open(request)


def get(url: str, headers: dict[str, str]) -> tuple[int, str]:
    return _open(urllib.request.Request(url, headers=headers))


def post_json(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, str]:
    return _open(urllib.request.Request(url, body, {"Content-Type": "application/json", **headers}))


def _open(request: urllib.request.Request) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(request, timeout=20, context=insecure_context()) as response:
            return int(response.status), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")
    except (urllib.error.URLError, ConnectionError) as exc:  # nobody listening yet, or the proxy cut it
        return 0, str(exc)


def encode(pairs: list[tuple[str, str]]) -> bytes:
    return urllib.parse.urlencode(pairs).encode()
