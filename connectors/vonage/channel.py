"""The Vonage Voice API channel, mounted in Rasa's server; calls run on the call core.

credentials.yml:

    connectors.vonage.channel.VonageVoiceInput:
      application_id_env: VONAGE_APPLICATION_ID         # names of environment variables, never the secrets
      private_key_path_env: VONAGE_PRIVATE_KEY_PATH     # the application's private key (PEM), for transfers
      signature_secret_env: VONAGE_SIGNATURE_SECRET     # the account's signature secret (signed webhooks)
      public_url_env: TONELINE_VONAGE_PUBLIC_URL        # https URL Vonage reaches this server at
      handoff_number_env: TONELINE_VONAGE_HANDOFF_NUMBER  # or handoff_sip: sip:agents@pbx.example.com

Routes under /webhooks/toneline_vonage/: GET or POST `answer` (the
application's answer URL: answers an NCCO whose `connect` action opens a
websocket to `stream`, 16 kHz linear PCM), POST `event` (call status events,
logged), WebSocket `stream`, GET `health`. `answer` and `event` need Vonage's
signed-webhook JWT; the stream's upgrade needs the URL the answer handed out
(signed for that call, single use, valid for two minutes) and is refused before
the handshake (401, never 101). With no signature secret every request is refused.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Dict
from urllib.parse import parse_qsl, urlencode

from rasa.core.channels.channel import InputChannel
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.call.channel import CallChannel, credential, log_refusal, toneline_settings_at
from connectors.call.session import Provider
from connectors.frames import ProtocolError
from connectors.speech.codec import Linear16Codec
from connectors.vonage import serializer as wire
from connectors.vonage import signature
from connectors.vonage.rest import DEFAULT_API_BASE, VonageRest, VonageTransfer, VonageTransferTarget
from connectors.wire import identifier
from models.logs import log_event
from plugin import settings as toneline_settings
from plugin.single_use import SingleUse
from plugin.state import StateStore

logger = logging.getLogger(__name__)


class VonageVoiceInput(CallChannel):
    """Rasa input channel for Vonage calls over the Voice API's WebSocket endpoint."""

    refused_status = 401

    @classmethod
    def name(cls) -> str:
        return "toneline_vonage"

    @classmethod
    def from_credentials(cls, credentials: Dict[str, Any] | None) -> InputChannel:
        creds = credentials or {}
        key_path = credential(creds, "private_key_path", "VONAGE_PRIVATE_KEY_PATH")
        handoff = VonageTransferTarget(
            number=credential(creds, "handoff_number", "TONELINE_VONAGE_HANDOFF_NUMBER") or None,
            sip=credential(creds, "handoff_sip", "TONELINE_VONAGE_HANDOFF_SIP") or None,
            announcement=creds.get("handoff_announcement") or None,
        )
        return cls(
            signature_secret=credential(creds, "signature_secret", "VONAGE_SIGNATURE_SECRET"),
            application=(
                credential(creds, "application_id", "VONAGE_APPLICATION_ID"),
                Path(key_path).read_text() if key_path else "",
            ),
            handoff=handoff,
            toneline=toneline_settings_at(credential(creds, "config", "TONELINE_VONAGE_CONFIG")),
            **cls.common_credentials(creds, wire.PROVIDER),
        )

    def __init__(
        self,
        signature_secret: str,
        application: tuple[str, str] = ("", ""),  # application id and its private key (PEM), for transfers
        handoff: VonageTransferTarget | None = None,
        api_base: str | None = None,
        toneline: toneline_settings.Settings | None = None,
        **common: Any,
    ) -> None:
        super().__init__(**common)
        self.secret = signature_secret
        # Signed stream URLs already opened: in Redis, so a URL replayed to another replica is refused too.
        state = toneline or toneline_settings.load(None)
        self._used_streams = SingleUse(lambda: StateStore(state.redis, state.state), "vonage_stream")
        target, (application_id, private_key) = handoff or VonageTransferTarget(), application
        rest = VonageRest(application_id, private_key, api_base or DEFAULT_API_BASE)
        transfer = VonageTransfer(rest, target) if application_id and private_key and target.configured else None
        self.provider = Provider(wire.PROVIDER, Linear16Codec(wire.SAMPLE_RATE), wire.TRACKS, transfer)
        if not signature_secret:
            log_event(logger, logging.ERROR, "vonage.channel.unconfigured", missing="signature secret; all refused")

    def serializer(self, request: Request | None = None) -> wire.VonageSerializer:
        return wire.VonageSerializer(expected_call=request.args.get(signature.CALL_PARAM) if request else None)

    def refusal(self, request: Request) -> str | None:
        query = {key: request.args.get(key, "") for key in request.args}
        code = signature.stream_refusal(query, self.secret) or self._first_use(query)
        return None if code is None else log_refusal(wire.PROVIDER, code, request)

    def _first_use(self, query: dict[str, str]) -> str | None:
        """A signed stream URL opens one stream, on any replica, until it expires (`plugin.single_use`)."""
        if self._used_streams.first_use(query[signature.SIG_PARAM], float(query[signature.EXPIRES_PARAM])):
            return None
        return "replayed_stream_url"

    def webhook_refusal(self, request: Request) -> str | None:
        # A GET's payload is its query (bound by payload_hash as Vonage computes it), a POST's its body.
        query = _query_pairs(request) if request.method == "GET" else []
        authorization = request.headers.get("authorization")
        code = signature.webhook_refusal(authorization, self.secret, request.body or b"", query=query)
        return None if code is None else log_refusal(wire.PROVIDER, code, request)

    def add_routes(self, bp: Blueprint) -> None:
        @bp.route("/answer", methods=["GET", "POST"])
        async def answer(request: Request) -> HTTPResponse:
            if self.webhook_refusal(request) is not None:
                return response.text("unauthorized", status=401)
            facts = _answer_facts(request)
            try:
                call = identifier(str(facts.get("uuid") or ""), "uuid")
            except ProtocolError:
                call = ""
            if not call:
                return response.text("the answer webhook needs the call's uuid", status=400)
            return response.json(self.ncco(request, call, facts))

        @bp.route("/event", methods=["POST"])
        async def event(request: Request) -> HTTPResponse:
            if self.webhook_refusal(request) is not None:
                return response.text("unauthorized", status=401)
            facts = _answer_facts(request)
            status = str(facts.get("status") or "")[:40]
            log_event(
                logger, logging.INFO, "vonage.call.event", call_id=str(facts.get("uuid") or "")[:64], status=status
            )
            return response.empty(status=204)

    def ncco(self, request: Request, call: str, facts: dict[str, Any]) -> list[dict[str, Any]]:
        """Connect the call to this channel's stream: 16 kHz L16, with the call's ids as headers."""
        uri = f"{self.stream_url(request)}?{urlencode(signature.stream_query(self.secret, call))}"
        headers = {wire.CALL_HEADER: call, wire.CUSTOMER_HEADER: str(facts.get("from") or "")[:64]}
        if facts.get("conversation_uuid"):
            headers[wire.CONVERSATION_HEADER] = str(facts["conversation_uuid"])[:128]
        endpoint = {"type": "websocket", "uri": uri, "content-type": wire.CONTENT_TYPE, "headers": headers}
        return [{"action": "connect", "endpoint": [endpoint]}]


def _answer_facts(request: Request) -> dict[str, Any]:
    """Vonage sends the call's facts as query parameters (GET) or a JSON body (POST)."""
    if request.method == "POST":
        try:
            body = request.json
        except Exception:  # Sanic raises InvalidUsage on a body that is not JSON
            body = None
        return dict(body) if isinstance(body, dict) else {}
    return dict(_query_pairs(request))  # as the signed payload reads them: a repeated name's last value


def _query_pairs(request: Request) -> list[tuple[str, str]]:
    """The query's parameters as Vonage sent them (Sanic's `request.args` drops blank values)."""
    return parse_qsl(request.query_string, keep_blank_values=True)
