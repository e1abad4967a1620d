"""The Twilio Media Streams channel, mounted in Rasa's server; calls run on the call core.

credentials.yml:

    connectors.twilio.channel.TwilioMediaStreamsInput:
      account_sid_env: TWILIO_ACCOUNT_SID   # names of environment variables, never the secrets
      auth_token_env: TWILIO_AUTH_TOKEN
      public_url: https://bot.example.com   # what Twilio calls (signatures cover this URL)
      handoff_queue: support                # or handoff_dial: "+15550100"

Routes under /webhooks/toneline_twilio/: POST `voice` (the number's voice
webhook; answers TwiML `<Connect><Stream>`), WebSocket `stream` (the media
stream), GET `health`. Both are refused without a valid `X-Twilio-Signature`
(the stream before the WebSocket handshake: 403, never 101); with no auth
token configured every request is refused.
"""

from __future__ import annotations

import logging
from typing import Any, Dict
from xml.sax.saxutils import quoteattr

from rasa.core.channels.channel import InputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.call.channel import CallChannel, credential
from connectors.call.session import Provider
from connectors.speech.codec import MULAW_8K
from connectors.twilio import serializer as wire
from connectors.twilio import signature
from connectors.twilio.rest import DEFAULT_API_BASE, HandoffTarget, TwilioRest, TwilioTransfer
from models.logs import log_event

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Signature"


class TwilioMediaStreamsInput(CallChannel):
    """Rasa input channel for Twilio calls over bidirectional Media Streams."""

    @classmethod
    def name(cls) -> str:
        return "toneline_twilio"

    @classmethod
    def from_credentials(cls, credentials: Dict[str, Any] | None) -> InputChannel:
        creds = credentials or {}
        handoff = HandoffTarget(
            dial=creds.get("handoff_dial") or None,
            queue=str(creds.get("handoff_queue") or "support"),
            announcement=creds.get("handoff_announcement") or None,
        )
        return cls(
            account_sid=credential(creds, "account_sid", "TWILIO_ACCOUNT_SID"),
            auth_token=credential(creds, "auth_token", "TWILIO_AUTH_TOKEN"),
            handoff=handoff,
            **cls.common_credentials(creds, wire.PROVIDER),
        )

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        handoff: HandoffTarget | None = None,
        api_base: str | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.auth_token = auth_token
        api = api_base or DEFAULT_API_BASE
        self.rest = TwilioRest(account_sid, auth_token, api) if account_sid and auth_token else None
        transfer = TwilioTransfer(self.rest, handoff or HandoffTarget()) if self.rest else None
        self.provider = Provider(wire.PROVIDER, MULAW_8K, wire.TRACKS, transfer)
        if not auth_token:
            log_event(logger, logging.ERROR, "twilio.channel.unconfigured", missing="auth token; all requests refused")

    def serializer(self, request: Request | None = None) -> wire.TwilioSerializer:
        return wire.TwilioSerializer()

    def refusal(self, request: Request) -> str | None:
        return None if self.verified(request, {}) else "invalid_signature"

    def signed_url(self, request: Request) -> str:
        """The URL Twilio signed: the public URL when configured (proxies change scheme and host)."""
        if self.public_url is None:
            return request.url
        query = f"?{request.query_string}" if request.query_string else ""
        base = self.public_url
        if request.scheme in ("ws", "wss"):
            base = base.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        return f"{base}{request.path}{query}"

    def verified(self, request: Request, params: signature.Params) -> bool:
        ok = signature.is_valid(
            self.signed_url(request), params, request.headers.get(SIGNATURE_HEADER), self.auth_token
        )
        if not ok:
            log_event(logger, logging.WARNING, "twilio.signature.rejected", path=request.path)
        return ok

    def add_routes(self, bp: Blueprint) -> None:
        @bp.route("/voice", methods=["POST"])
        async def voice(request: Request) -> HTTPResponse:
            params = {k: v for k, v in request.form.items()}
            if not self.verified(request, params):
                return response.text("invalid signature", status=403)
            caller = request.form.get("From") or ""
            stream = self.stream_url(request)
            return response.text(self.twiml(stream, caller), content_type="text/xml")

    @staticmethod
    def twiml(stream_url: str, caller: str) -> str:
        parameter = f"<Parameter name={quoteattr(wire.CUSTOMER_PARAMETER)} value={quoteattr(caller)}/>"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Connect><Stream url={quoteattr(stream_url)}>{parameter}</Stream></Connect></Response>"
        )
