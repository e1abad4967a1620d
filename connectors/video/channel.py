"""The browser video chat channel, mounted in Rasa's server.

credentials.yml:

    connectors.video.channel.VideoInput:
      fps: 4                                  # frames analysed per second while the camera is on
      turn_window_s: 10                       # a turn's face estimate covers at most its last 10 s
      face_weights_env: TONELINE_FACE_WEIGHTS # env variable naming the face weights (wins over face_weights)
      # face_weights: models/weights/face_cnn.pt
      # ice_servers: ["stun:stun.example.com:3478"]   # beyond one LAN; none by default
      # allowed_origins: ["https://chat.example.com"]  # pages that may open the socket; default: same origin
      #                                                # (or TONELINE_VIDEO_ALLOWED_ORIGINS, comma-separated)

Routes under /webhooks/toneline_video/: GET `/` (the chat page), GET `app.js`,
GET `health`, WebSocket `ws` (chat, camera consent and WebRTC signalling).
Without face weights the page still chats; the camera button says analysis is unavailable.
The socket refuses (403, before the handshake) an upgrade whose `Origin` is not allowed.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict
from urllib.parse import urlparse

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.bot import BotGateway, RasaBot
from connectors.frames import ProtocolError
from connectors.receive import EndOfStream, receive_loop
from connectors.transport import NORMAL, TOO_BIG, WebSocketTransport
from connectors.video import serializer
from connectors.video.faces import FaceWorker, weights_path
from connectors.video.frames import ErrorOut, OutboundFrame, Ready
from connectors.video.session import CHANNEL, VideoSession, VideoSettings
from models.logs import log_event
from plugin import settings as toneline_settings
from plugin.consent import StoredConsent
from plugin.state import StateStore

logger = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parent / "static"
DISCLOSURE_MARK = "<!-- toneline:disclosure -->"
_ASSETS = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8"}
WS_PATH = "/ws"
ORIGINS_ENV = "TONELINE_VIDEO_ALLOWED_ORIGINS"
_CLOSING = {"oversized_message"}  # everything else is answered with an error and the chat goes on


def allowed_origins(credentials: Dict[str, Any]) -> frozenset[str]:
    """TONELINE_VIDEO_ALLOWED_ORIGINS (comma-separated) or `allowed_origins` of credentials.yml; empty: same origin."""
    raw = os.environ.get(ORIGINS_ENV) or credentials.get("allowed_origins") or []
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list):
        raise ValueError("toneline_video: allowed_origins must be a list of origins like https://chat.example.com")
    return frozenset(str(item).strip().rstrip("/").lower() for item in items if str(item).strip())


def origin_refused(origin: str | None, host: str | None, allowed: frozenset[str]) -> bool:
    """True when a browser page from another site opens the socket (cross-site WebSocket hijacking).

    Browsers always send `Origin` on a WebSocket upgrade; a client without one is not a
    browser and gains nothing a plain HTTP client would not have. With no allow-list the
    page's own origin is the only one: the Origin's host:port must equal the Host header.
    """
    if origin is None:
        return False
    origin = origin.strip().rstrip("/").lower()
    if allowed:
        return origin not in allowed
    netloc = urlparse(origin).netloc
    return not netloc or netloc != (host or "").strip().lower()


def settings_from(credentials: Dict[str, Any]) -> VideoSettings:
    """`VideoSettings` from the channel's credentials.yml block; a bad value raises naming its key."""
    try:
        fps = float(credentials.get("fps") or VideoSettings.fps)
        window = float(credentials.get("turn_window_s") or VideoSettings.turn_window_s)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"toneline_video: fps and turn_window_s must be numbers ({exc})") from None
    servers = credentials.get("ice_servers") or []
    if not isinstance(servers, list):
        raise ValueError("toneline_video: ice_servers must be a list of STUN/TURN URLs")
    toneline = toneline_settings.load_beside(str(credentials.get("config") or os.environ.get("TONELINE_CONFIG", "")))
    return VideoSettings(
        fps=fps,
        turn_window_s=window,
        ice_servers=tuple(str(s) for s in servers),
        disclosure=toneline.disclosure.for_channel(CHANNEL),
    )


class VideoInput(InputChannel):
    """Rasa input channel for the browser video chat (text turns, optional camera, WebRTC via aiortc)."""

    @classmethod
    def name(cls) -> str:
        return "toneline_video"

    @classmethod
    def from_credentials(cls, credentials: Dict[str, Any] | None) -> InputChannel:
        creds = credentials or {}
        toneline = toneline_settings.load_beside(str(creds.get("config") or os.environ.get("TONELINE_CONFIG", "")))
        consent = StoredConsent(StateStore(toneline.redis, toneline.state))
        return cls(settings_from(creds), FaceWorker(weights_path(creds)), allowed_origins(creds), consent)

    def __init__(
        self,
        settings: VideoSettings | None = None,
        faces: FaceWorker | None = None,
        origins: frozenset[str] = frozenset(),
        consent: Callable[[str], bool | None] | None = None,
    ) -> None:
        self.settings = settings or VideoSettings()
        self.faces = faces or FaceWorker()
        self.origins = origins
        self.consent = consent  # customers who opted out never have their camera read

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("toneline_video", __name__)

        @bp.listener("after_server_start")
        async def preload(app: Any, loop: Any) -> None:
            # Load the face model now (off the event loop), not when the first customer opts in.
            loop.create_task(self.faces.model())

        @bp.middleware("request")
        async def same_origin(request: Request) -> HTTPResponse | None:
            # Before the handshake: a page on another site never gets a socket that speaks as the customer.
            if not request.path.endswith(f"/{self.name()}{WS_PATH}"):
                return None
            origin = request.headers.get("origin")
            if not origin_refused(origin, request.headers.get("host"), self.origins):
                return None
            log_event(logger, logging.WARNING, "video.ws.origin_refused", origin=str(origin)[:200])
            return response.text("origin not allowed", status=403)

        @bp.route("/", methods=["GET"])
        async def page(_: Request) -> HTTPResponse:
            return _asset("index.html", self.settings.disclosure)

        @bp.route("/app.js", methods=["GET"])
        async def script(_: Request) -> HTTPResponse:
            return _asset("app.js")

        @bp.route("/health", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok", "face": not self.faces.unavailable})

        @bp.websocket(WS_PATH)
        async def ws(request: Request, socket: Any) -> None:
            bot = RasaBot(on_new_message, self.name())
            await self.serve(WebSocketTransport(socket, "video"), bot)

        return bp

    async def serve(self, transport: WebSocketTransport, bot: BotGateway) -> None:
        """Run one page's session to its end (`connectors.receive`); every way out closes the camera, the session
        and the socket."""
        wire = serializer.VideoSerializer()

        async def send(frame: OutboundFrame) -> bool:
            return await transport.send(wire.encode(frame))

        session = VideoSession(bot, self.faces, send, self.settings, consent=self.consent)
        log_event(logger, logging.INFO, "video.session.started", session_id=session.session_id)
        await receive_loop(transport, VideoStream(transport, wire, session, send, self.faces))


class VideoStream:
    """One page's signalling socket, as the receive loop drives it: messages -> serializer -> session."""

    def __init__(
        self,
        transport: WebSocketTransport,
        wire: serializer.VideoSerializer,
        session: VideoSession,
        send: Callable[[OutboundFrame], Awaitable[bool]],
        faces: FaceWorker,
    ) -> None:
        self.transport = transport
        self.wire = wire
        self.session = session
        self.send = send
        self.faces = faces

    async def begin(self) -> None:
        """The page learns its session id and whether faces can be read before it sends anything."""
        await self.send(Ready(self.session.session_id, face=await self.faces.model() is not None))

    async def on_message(self, message: str | bytes) -> None:
        try:
            frame = self.wire.parse(message)
        except ProtocolError as exc:
            log_event(
                logger,
                logging.WARNING,
                "video.ws.bad_message",
                session_id=self.session.session_id,
                code=exc.code,
                detail=exc.detail[:200],
            )
            if exc.code in _CLOSING:
                await self.transport.close(TOO_BIG, exc.code)
                raise EndOfStream() from None
            await self.send(ErrorOut(exc.code, exc.detail[:200]))
            return
        await self.session.handle(frame)

    def on_disconnect(self) -> None:
        log_event(logger, logging.INFO, "video.ws.disconnected", session_id=self.session.session_id)

    async def finish(self) -> None:
        await self.session.close()
        await self.transport.close(NORMAL, "session ended")


def _asset(name: str, disclosure: str | None = None) -> HTTPResponse:
    # The page is a few kB: read per request so a deployment can restyle it without a restart.
    body = (STATIC / name).read_text(encoding="utf-8")
    if name == "index.html":  # the notice is on the page before the customer can type (AI Act Art. 50(3))
        notice = f'<p id="disclosure" role="note">{html.escape(disclosure)}</p>' if disclosure else ""
        body = body.replace(DISCLOSURE_MARK, notice)
    headers = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
    return response.text(body, content_type=_ASSETS[name], headers=headers)
