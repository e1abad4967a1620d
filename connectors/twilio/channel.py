"""The Twilio Media Streams channel, mounted in Rasa's server; calls run on the call core.

credentials.yml:

    connectors.twilio.channel.TwilioMediaStreamsInput:
      account_sid_env: TWILIO_ACCOUNT_SID   # names of environment variables, never the secrets
      auth_token_env: TWILIO_AUTH_TOKEN
      public_url: https://bot.example.com   # what Twilio calls (signatures cover this URL)
      shared_key_secret_env: TWILIO_SHARED_KEY_SECRET  # optional: webhooks signed with a SharedKey
      shared_key_sid_env: TWILIO_SHARED_KEY_SID        # optional: the only SharedKey accepted
      handoff_queue: support                # or handoff_dial: "+15550100"

Routes under /webhooks/toneline_twilio/: POST `voice` (the number's voice
webhook; answers TwiML `<Connect><Stream>`), WebSocket `stream` (the media
stream), GET `health`. Both are refused without a valid `X-Twilio-Signature`
(the stream before the WebSocket handshake: 403, never 101); with no auth
token configured every request is refused, and so is one signed with a
SharedKey when none is configured. Signatures are checked over the raw form as
Twilio sent it and over the URL as Twilio reached it (`CallChannel.public_base`),
with and without the default port, exactly as Twilio's SDK validates them.
"""

from __future__ import annotations

import logging
from typing import Any, Dict
from xml.sax.saxutils import quoteattr

from rasa.core.channels.channel import InputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.call.channel import CallChannel, credential, is_upgrade
from connectors.call.session import Provider
from connectors.speech.codec import MULAW_8K
from connectors.twilio import serializer as wire
from connectors.twilio import signature
from connectors.twilio.rest import DEFAULT_API_BASE, TwilioRest, TwilioTransfer, TwilioTransferTarget
from models.logs import log_event

logger = logging.getLogger(__name__)
FORM_TYPE = "application/x-www-form-urlencoded"


class TwilioMediaStreamsInput(CallChannel):
    """Rasa input channel for Twilio calls over bidirectional Media Streams."""

    @classmethod
    def name(cls) -> str:
        return "toneline_twilio"

    @classmethod
    def from_credentials(cls, credentials: Dict[str, Any] | None) -> InputChannel:
        creds = credentials or {}
        handoff = TwilioTransferTarget(
            dial=creds.get("handoff_dial") or None,
            queue=str(creds.get("handoff_queue") or "support"),
            announcement=creds.get("handoff_announcement") or None,
        )
        return cls(
            account_sid=credential(creds, "account_sid", "TWILIO_ACCOUNT_SID"),
            auth_token=credential(creds, "auth_token", "TWILIO_AUTH_TOKEN"),
            shared_key=(
                credential(creds, "shared_key_sid", "TWILIO_SHARED_KEY_SID"),
                credential(creds, "shared_key_secret", "TWILIO_SHARED_KEY_SECRET"),
            ),
            handoff=handoff,
            **cls.common_credentials(creds, wire.PROVIDER),
        )

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        handoff: TwilioTransferTarget | None = None,
        api_base: str | None = None,
        shared_key: tuple[str, str] = ("", ""),  # a SharedKey's SID (empty: any) and secret, for webhooks signed so
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.auth_token = auth_token
        self.shared_key_sid, self.shared_key_secret = shared_key
        api = api_base or DEFAULT_API_BASE
        self.rest = TwilioRest(account_sid, auth_token, api) if account_sid and auth_token else None
        transfer = TwilioTransfer(self.rest, handoff or TwilioTransferTarget()) if self.rest else None
        self.provider = Provider(wire.PROVIDER, MULAW_8K, wire.TRACKS, transfer)
        if not auth_token:
            log_event(logger, logging.ERROR, "twilio.channel.unconfigured", missing="auth token; all requests refused")

    def serializer(self, request: Request | None = None) -> wire.TwilioSerializer:
        return wire.TwilioSerializer()

    def refusal(self, request: Request) -> str | None:
        return self.signature_refusal(request, [])

    def signed_url(self, request: Request) -> str:
        """The URL Twilio signed: scheme and host as Twilio reached them, path and raw query as received."""
        query = f"?{request.query_string}" if request.query_string else ""
        return f"{self.public_base(request, websocket=is_upgrade(request))}{request.path}{query}"

    def signature_refusal(self, request: Request, params: signature.Params | str) -> str | None:
        """Why the request is not Twilio's (a code, logged), or None; `params` as `signature.is_valid` takes them."""
        settings = signature.SignatureSettings.parse(request.headers.get(signature.SETTINGS_HEADER))
        secret, code = self._secret(settings), "invalid_signature"
        if secret is None:
            code = "unknown_shared_key"
        elif signature.is_valid(
            self.signed_url(request),
            params,
            request.headers.get(signature.SIGNATURE_HEADER),
            secret,
            settings.algorithm,
        ):
            return None
        log_event(
            logger,
            logging.WARNING,
            "twilio.signature.rejected",
            code=code,
            path=request.path,
            algorithm=settings.algorithm[:16],
            shared_key=settings.key is not None,
        )
        return code

    def _secret(self, settings: signature.SignatureSettings) -> str | None:
        """The auth token, or the SharedKey the request names (None when that one is not configured)."""
        if settings.key is None:
            return self.auth_token
        if not self.shared_key_secret or (self.shared_key_sid and settings.key != self.shared_key_sid):
            return None
        return self.shared_key_secret

    def add_routes(self, bp: Blueprint) -> None:
        @bp.route("/voice", methods=["POST"])
        async def voice(request: Request) -> HTTPResponse:
            body = request.body or b""
            is_form = str(request.headers.get("content-type", "")).startswith(FORM_TYPE)
            form = signature.form_pairs(body)
            params = form if is_form else body.decode("utf-8", errors="replace")
            if self.signature_refusal(request, params) is not None:
                return response.text("invalid signature", status=403)
            caller = dict(form).get("From", "") if is_form else ""
            stream = self.stream_url(request)
            return response.text(self.twiml(stream, caller), content_type="text/xml")

    @staticmethod
    def twiml(stream_url: str, caller: str) -> str:
        parameter = f"<Parameter name={quoteattr(wire.CUSTOMER_PARAMETER)} value={quoteattr(caller)}/>"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Connect><Stream url={quoteattr(stream_url)}>{parameter}</Stream></Connect></Response>"
        )
