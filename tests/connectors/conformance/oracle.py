"""The providers' SDKs as an oracle: one JSON request a line on stdin, one JSON answer a line on stdout.

Runs in the SDK venv (scripts/sdk-env.sh), never in the project's: it imports nothing of Toneline, so what it
signs and accepts is the providers' code, not ours. Every answer is {"ok": true, "result": ...} or
{"ok": false, "error": "..."} (an SDK that raises did not accept the request).
"""

from __future__ import annotations

import json
import sys
import time
import uuid
from typing import Any, Callable

import jwt
from twilio.request_validator import RequestValidator, get_signature_algorithm
from vonage_jwt import verify_signature
from vonage_voice.models.connect_endpoints import WebsocketEndpoint


class Form(dict):  # type: ignore[type-arg]
    """A multi-valued form as web frameworks hand it to the SDK (`getall`, as aiohttp's and Flask's MultiDicts)."""

    def __init__(self, pairs: list[list[str]]) -> None:
        super().__init__()
        self.pairs = [(name, value) for name, value in pairs]
        for name, value in self.pairs:
            self.setdefault(name, value)

    def getall(self, name: str) -> list[str]:
        return [value for key, value in self.pairs if key == name]


def _params(request: dict[str, Any]) -> Any:
    return request["body"] if request.get("body") is not None else Form(request.get("params") or [])


def twilio_sign(request: dict[str, Any]) -> str:
    validator = RequestValidator(request["secret"])
    return str(validator.compute_signature(request["url"], _params(request), request.get("algorithm")))


def twilio_validate(request: dict[str, Any]) -> bool:
    validator = RequestValidator(request["secret"])
    return bool(validator.validate(request["url"], _params(request), request["signature"], request.get("algorithm")))


def twilio_algorithm(request: dict[str, Any]) -> str:
    return str(get_signature_algorithm(request.get("header")))


def vonage_sign(request: dict[str, Any]) -> str:
    """A signed-webhook JWT shaped as Vonage's (claims as its documentation shows them), signed with PyJWT."""
    claims = {
        "iat": int(request.get("iat") or time.time()),
        "jti": str(uuid.uuid4()),
        "iss": "Vonage",
        "api_key": "a1b2c3d4",
        "application_id": "aaaaaaaa-bbbb-cccc-dddd-0123456789ab",
    }
    if request.get("payload_hash") is not None:
        claims["payload_hash"] = request["payload_hash"]
    return jwt.encode(claims, request["secret"], algorithm=request.get("algorithm") or "HS256")


def vonage_verify(request: dict[str, Any]) -> bool:
    return bool(verify_signature(request["token"], request["secret"]))


def vonage_websocket_endpoint(request: dict[str, Any]) -> dict[str, Any]:
    """The SDK's own model of a websocket endpoint read from ours, dumped as the SDK sends it."""
    endpoint = dict(request["endpoint"])
    model = WebsocketEndpoint(
        uri=endpoint["uri"], contentType=endpoint.get("content-type"), headers=endpoint.get("headers")
    )
    return dict(model.model_dump(by_alias=True, exclude_none=True, mode="json"))


OPS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "twilio_sign": twilio_sign,
    "twilio_validate": twilio_validate,
    "twilio_algorithm": twilio_algorithm,
    "vonage_sign": vonage_sign,
    "vonage_verify": vonage_verify,
    "vonage_websocket_endpoint": vonage_websocket_endpoint,
}


def answer(line: str) -> dict[str, Any]:
    try:
        request = json.loads(line)
        return {"ok": True, "result": OPS[request["op"]](request)}
    except Exception as exc:  # the SDK refusing by raising is an answer too
        return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}


def main() -> None:
    for line in sys.stdin:
        sys.stdout.write(json.dumps(answer(line)) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
