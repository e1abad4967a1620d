"""The Genesys AudioHook monitoring channel, mounted in Rasa's server; it listens and never speaks.

credentials.yml:

    connectors.audiohook.channel.AudioHookInput:
      api_key_env: TONELINE_AUDIOHOOK_API_KEY            # names of environment variables, never the secrets
      client_secret_env: TONELINE_AUDIOHOOK_CLIENT_SECRET  # base64, as configured in Genesys
      config_env: TONELINE_AUDIOHOOK_CONFIG              # optional: another toneline.yml (default: toneline.yml)
      public_url_env: TONELINE_AUDIOHOOK_PUBLIC_URL      # optional: wss://host the integration connects to

Routes under /webhooks/toneline_audiohook/: WebSocket `ws` (the AudioHook
session), GET `health`. The upgrade is refused with HTTP 401 without the right
`X-API-KEY` or, when a client secret is configured, without a valid signature.
The signature covers `@authority` and `@request-target`, which a proxy may
rewrite: `@authority` is the configured public URL's host, else the host Sanic
reads (a trusted proxy's X-Forwarded-Host, else Host), lower-cased and with the
scheme's default port omitted (RFC 9421); a client that kept the default port
in what it signed is accepted too.
Customer turns go through the plugin's turn service (`plugin.turn.TurnService`,
the same fusion, rules, cooldown and handoff cases as every channel) under
channel `genesys`; Rasa's bot is never called.
"""

from __future__ import annotations

import hmac
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Awaitable, Callable, Dict
from urllib.parse import urlparse

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.audiohook import signature
from connectors.audiohook.protocol import AudioHookServer, ServerConfig
from connectors.audiohook.serializer import Open
from connectors.audiohook.session import AudioHookSession, SessionSettings
from connectors.call.channel import credential, toneline_settings_at
from connectors.speech.runtime import SpeechRuntime, shared_runtime
from connectors.transport import WebSocketTransport
from models.logs import log_event
from models.turns import TurnSettings
from plugin import settings as toneline_settings
from plugin.nlu import turn_service
from plugin.single_use import SingleUse
from plugin.state import StateStore

logger = logging.getLogger(__name__)
WS_PATH = "/ws"


class AudioHookInput(InputChannel):
    """Rasa input channel for Genesys AudioHook (monitoring of calls already with an agent)."""

    @classmethod
    def name(cls) -> str:
        return "toneline_audiohook"

    @classmethod
    def from_credentials(cls, credentials: Dict[str, Any] | None) -> InputChannel:
        creds = credentials or {}
        turn = TurnSettings(end_silence_ms=int(creds.get("end_silence_ms") or TurnSettings.end_silence_ms))
        return cls(
            api_key=credential(creds, "api_key", "TONELINE_AUDIOHOOK_API_KEY"),
            client_secret=credential(creds, "client_secret", "TONELINE_AUDIOHOOK_CLIENT_SECRET"),
            settings=toneline_settings_at(credential(creds, "config", "TONELINE_AUDIOHOOK_CONFIG")),
            session=SessionSettings(turn=turn),
            public_url=credential(creds, "public_url", "TONELINE_AUDIOHOOK_PUBLIC_URL") or None,
        )

    def __init__(
        self,
        api_key: str,
        client_secret: str = "",
        settings: toneline_settings.Settings | None = None,
        session: SessionSettings | None = None,
        runtime: SpeechRuntime | None = None,
        public_url: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.public_url = public_url
        self.client_secret = client_secret
        self.settings = settings or toneline_settings.Settings()
        self.session_settings = session or SessionSettings()
        self._runtime = runtime
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="toneline-audiohook")
        self.store = StateStore(self.settings.redis, self.settings.state)
        self._nonces = SingleUse(self.store, "audiohook_nonce")
        # The same turn service every door gets (plugin.nlu.turn_service): text model, fitted fusion, state store.
        self.service = turn_service(self.settings)
        self.service.start()  # escalations and cases an earlier process held on disk are replayed from now on
        if not api_key:
            log_event(logger, logging.ERROR, "audiohook.channel.unconfigured", missing="api key; all requests refused")
        if not client_secret:
            log_event(
                logger, logging.WARNING, "audiohook.channel.unsigned", detail="no client secret: signatures not checked"
            )

    @property
    def runtime(self) -> SpeechRuntime:
        if self._runtime is None:
            self._runtime = shared_runtime()
        return self._runtime

    def refusal(self, request: Request) -> str | None:
        """Why the upgrade request is refused (a code for the log), or None when it is authentic."""
        key = request.headers.get(signature.API_KEY_HEADER) or ""
        if not self.api_key or not hmac.compare_digest(key.encode(), self.api_key.encode()):
            return "bad_api_key"
        if not self.client_secret:
            return None
        now, path = time.time(), request.path + (f"?{request.query_string}" if request.query_string else "")
        headers = {k.lower(): v for k, v in request.headers.items()}
        code = "invalid_signature"
        for authority in self.authorities(request):  # normalised first, then with the default port kept
            try:
                parsed = signature.verify(
                    signature.SignedRequest(path_and_query=path, authority=authority, headers=headers),
                    request.headers.get("signature-input"),
                    request.headers.get("signature"),
                    self.api_key,
                    self.client_secret,
                    now,
                )
                break
            except signature.SignatureError as exc:
                code = exc.code
        else:
            return code
        if not self._first_use(str(parsed.params["nonce"]), signature.replay_window(parsed, now), now):
            return "replayed_nonce"
        return None

    def authorities(self, request: Request) -> list[str]:
        """`@authority` as the client reached this server (see the module's docstring), then its variant with
        the scheme's default port."""
        if self.public_url:
            parsed = urlparse(self.public_url)
            return signature.authority_variants(parsed.netloc, parsed.scheme in ("https", "wss"))
        return signature.authority_variants(request.host, request.scheme in ("https", "wss"))

    def _first_use(self, nonce: str, ttl: int, now: float) -> bool:
        """A signed request may be used once, on whichever replica it reaches (`plugin.single_use`: Redis, and
        this process's memory while Redis is away, handed to Redis when it is back)."""
        return self._nonces.first_use(nonce, now + ttl, now)

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint("toneline_audiohook", __name__)

        @bp.listener("after_server_start")
        async def preload(app: Any, loop: Any) -> None:
            loop.create_task(self.runtime.recognizer())
            loop.run_in_executor(self._executor, self.service.reader.text_estimate, "warm up", "preload")

        @bp.middleware("request")
        async def authenticate(request: Request) -> HTTPResponse | None:
            # Runs before Sanic's WebSocket handshake, so a refused client gets a plain HTTP 401.
            if not request.path.endswith(WS_PATH):
                return None
            code = self.refusal(request)
            if code is None:
                return None
            log_event(logger, logging.WARNING, "audiohook.auth.rejected", code=code, path=request.path)
            return response.text("unauthorized", status=401)

        @bp.route("/health", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.websocket(WS_PATH)
        async def ws(request: Request, socket: Any) -> None:
            transport = WebSocketTransport(socket, "audiohook")
            config = ServerConfig(session_id=request.headers.get("audiohook-session-id") or "")
            server = AudioHookServer(transport, config, self.start_session)
            await server.run()

        return bp

    def start_session(self, session_id: str, start: Open) -> AudioHookSession:
        return AudioHookSession(session_id, start, self.runtime, self.service, self._executor, self.session_settings)
