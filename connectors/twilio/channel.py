"""The Twilio Media Streams channel, mounted in Rasa's server.

credentials.yml:

    connectors.twilio.channel.TwilioMediaStreamsInput:
      account_sid_env: TWILIO_ACCOUNT_SID   # names of environment variables, never the secrets
      auth_token_env: TWILIO_AUTH_TOKEN
      public_url: https://bot.example.com   # what Twilio calls (signatures cover this URL)
      handoff_queue: support                # or handoff_dial: "+15550100"

Routes under /webhooks/toneline_twilio/: POST `voice` (the number's voice
webhook; answers TwiML `<Connect><Stream>`), WebSocket `stream` (the media
stream), GET `health`. Both are refused without a valid `X-Twilio-Signature`
(the stream before the WebSocket handshake: 403, never 101); with no auth token
configured every request is refused.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable, Dict
from xml.sax.saxutils import quoteattr

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.bot import RasaBot
from connectors.frames import CallStart, CallStop, Connected, OutboundFrame, ProtocolError
from connectors.speech.runtime import SpeechRuntime, shared_runtime
from connectors.speech.turns import TurnSettings
from connectors.transport import NORMAL, PROTOCOL_ERROR, TOO_BIG, UNSUPPORTED_DATA, WebSocketTransport
from connectors.twilio import serializer, signature
from connectors.twilio.rest import DEFAULT_API_BASE, HandoffTarget, TwilioRest
from connectors.twilio.session import CallSettings, TwilioCallSession
from models.logs import log_event

logger = logging.getLogger(__name__)
SIGNATURE_HEADER = "X-Twilio-Signature"
STREAM_PATH = "/stream"
_CLOSE_CODES = {
    "oversized_frame": TOO_BIG,
    "unsupported_codec": UNSUPPORTED_DATA,
    "unexpected_binary": UNSUPPORTED_DATA,
}
# Not worth ending a live call over: logged and skipped (Twilio may add events; a late frame is stale).
_SKIPPABLE = {"unknown_event", "out_of_order"}


def _env(credentials: Dict[str, Any], key: str, default_env: str) -> str:
    return os.environ.get(str(credentials.get(f"{key}_env") or default_env), "") or str(credentials.get(key) or "")


def _prepare_silence(credentials: Dict[str, Any]) -> int | None:
    """`prepare_silence_ms` from credentials.yml, or TONELINE_TWILIO_PREPARE_SILENCE_MS (`off`: no early ASR)."""
    raw = os.environ.get("TONELINE_TWILIO_PREPARE_SILENCE_MS", credentials.get("prepare_silence_ms", "default"))
    if raw is None or str(raw).lower() in ("off", "none", "null"):
        return None
    if str(raw) == "default":
        return TurnSettings.prepare_silence_ms
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"prepare_silence_ms must be a number of milliseconds or 'off', got {raw!r}") from None


class TwilioMediaStreamsInput(InputChannel):
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
        prepare = _prepare_silence(creds)
        turn = TurnSettings(
            end_silence_ms=int(creds.get("end_silence_ms") or TurnSettings.end_silence_ms),
            # Start the ASR pass this far into a pause (null: only when the turn is cut).
            prepare_silence_ms=None if prepare is None else int(prepare),
        )
        return cls(
            account_sid=_env(creds, "account_sid", "TWILIO_ACCOUNT_SID"),
            auth_token=_env(creds, "auth_token", "TWILIO_AUTH_TOKEN"),
            public_url=_env(creds, "public_url", "TONELINE_TWILIO_PUBLIC_URL") or None,
            api_base=_env(creds, "api_base", "TONELINE_TWILIO_API_BASE") or DEFAULT_API_BASE,
            settings=CallSettings(turn=turn, handoff=handoff),
        )

    def __init__(
        self,
        account_sid: str,
        auth_token: str,
        public_url: str | None = None,
        api_base: str = DEFAULT_API_BASE,
        settings: CallSettings | None = None,
        runtime: SpeechRuntime | None = None,
    ) -> None:
        self.auth_token = auth_token
        self.public_url = public_url.rstrip("/") if public_url else None
        self.settings = settings or CallSettings()
        self.rest = TwilioRest(account_sid, auth_token, api_base) if account_sid and auth_token else None
        self._runtime = runtime
        if not auth_token:
            log_event(logger, logging.ERROR, "twilio.channel.unconfigured", missing="auth token; all requests refused")

    @property
    def runtime(self) -> SpeechRuntime:
        if self._runtime is None:
            self._runtime = shared_runtime()
        return self._runtime

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

    def stream_url(self, request: Request) -> str:
        if self.public_url:
            base = self.public_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
        else:
            base = f"{'wss' if request.scheme == 'https' else 'ws'}://{request.host}"
        return f"{base}{request.path.rsplit('/', 1)[0]}/stream"

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("toneline_twilio", __name__)

        @bp.listener("after_server_start")
        async def preload(app: Any, loop: Any) -> None:
            # Load Whisper and the voice head now, not on the first caller's first turn.
            loop.create_task(self.runtime.recognizer())

        @bp.middleware("request")
        async def authenticate(request: Request) -> HTTPResponse | None:
            # Runs before Sanic's WebSocket handshake: an unsigned upgrade gets a plain 403, never a 101.
            if not request.path.endswith(f"/{self.name()}{STREAM_PATH}") or self.verified(request, {}):
                return None
            return response.text("invalid signature", status=403)

        @bp.route("/health", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.route("/voice", methods=["POST"])
        async def voice(request: Request) -> HTTPResponse:
            params = {k: v for k, v in request.form.items()}
            if not self.verified(request, params):
                return response.text("invalid signature", status=403)
            caller = request.form.get("From") or ""
            return response.text(self.twiml(self.stream_url(request), caller), content_type="text/xml")

        @bp.websocket(STREAM_PATH)
        async def stream(request: Request, ws: Any) -> None:
            transport = WebSocketTransport(ws, "twilio")
            bot = RasaBot(on_new_message, self.name(), lambda: getattr(request.app.ctx, "agent", None))
            await self.serve(transport, bot)

        return bp

    @staticmethod
    def twiml(stream_url: str, caller: str) -> str:
        parameter = f"<Parameter name={quoteattr(serializer.CUSTOMER_PARAMETER)} value={quoteattr(caller)}/>"
        return (
            '<?xml version="1.0" encoding="UTF-8"?>'
            f"<Response><Connect><Stream url={quoteattr(stream_url)}>{parameter}</Stream></Connect></Response>"
        )

    async def serve(self, transport: WebSocketTransport, bot: RasaBot) -> None:
        """Run one media stream to its end; every way out closes the socket and the session cleanly."""
        session: TwilioCallSession | None = None
        last_seq: int | None = None
        try:
            while (message := await transport.receive()) is not None:
                try:
                    frame = serializer.parse(message)
                    last_seq = _check_sequence(frame, last_seq)
                except ProtocolError as exc:
                    call_id = session.call_id if session else None
                    log_event(
                        logger,
                        logging.WARNING,
                        "twilio.stream.bad_message",
                        call_id=call_id,
                        code=exc.code,
                        detail=exc.detail,
                    )
                    if exc.code in _SKIPPABLE:
                        continue
                    await transport.close(_CLOSE_CODES.get(exc.code, PROTOCOL_ERROR), exc.code)
                    break
                if isinstance(frame, Connected):
                    continue
                if isinstance(frame, CallStart):
                    session = await self._start(frame, transport, bot, session)
                    if session is None:
                        break
                    continue
                if session is None:
                    log_event(logger, logging.WARNING, "twilio.stream.bad_message", code="before_start")
                    await transport.close(PROTOCOL_ERROR, "before_start")
                    break
                await session.handle(frame)
                if isinstance(frame, CallStop):
                    break
            else:
                self._disconnected(session)
        except asyncio.CancelledError:
            # Sanic cancels the handler when the TCP connection drops without a close frame.
            self._disconnected(session)
            raise
        finally:
            if session is not None:
                await session.close()
            await transport.close(NORMAL, "stream ended")

    @staticmethod
    def _disconnected(session: TwilioCallSession | None) -> None:
        call_id = session.call_id if session else None
        log_event(logger, logging.INFO, "twilio.stream.disconnected", call_id=call_id)

    async def _start(
        self, frame: CallStart, transport: WebSocketTransport, bot: RasaBot, current: TwilioCallSession | None
    ) -> TwilioCallSession | None:
        if current is not None:
            log_event(
                logger, logging.WARNING, "twilio.stream.bad_message", call_id=current.call_id, code="second_start"
            )
            return current
        try:
            serializer.check_media_format(frame)
        except ProtocolError as exc:
            log_event(
                logger,
                logging.WARNING,
                "twilio.stream.bad_message",
                call_id=frame.call_id,
                code=exc.code,
                detail=exc.detail,
            )
            await transport.close(UNSUPPORTED_DATA, exc.code)
            return None

        async def send(out: OutboundFrame) -> bool:
            return await transport.send(serializer.serialize(out, frame.stream_id))

        log_event(logger, logging.INFO, "twilio.call.started", call_id=frame.call_id, stream_id=frame.stream_id)
        return TwilioCallSession(frame, send, self.runtime, bot, self.rest, self.settings)


def _check_sequence(frame: Any, last: int | None) -> int | None:
    seq = getattr(frame, "sequence", None)
    if seq is None:
        return last
    if last is not None and seq <= last:
        raise ProtocolError("out_of_order", f"sequenceNumber {seq} after {last}")
    return seq
