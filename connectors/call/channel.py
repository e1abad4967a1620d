"""The Rasa side of a telephony channel on the call core: routes, authentication and one stream per call.

A provider subclasses `CallChannel` and adds what is its own: its name, its
answer webhook, how its requests are authenticated (checked before the
WebSocket upgrade: a refused client gets a plain HTTP error, never a 101), its
serializer and its `Provider` (codec, tracks, transfer adapter).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Awaitable, Callable, Dict

from rasa.core.channels.channel import InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from connectors.bot import BotGateway, RasaBot
from connectors.call.session import (
    BARGE_IN_MODES,
    CallServices,
    CallSession,
    CallSettings,
    ConsentLookup,
    NoInputSettings,
    Provider,
    RepromptSettings,
    RetainVoice,
    SendFrame,
)
from connectors.call.stream import CallStream
from connectors.frames import CallStart
from connectors.serializer import CallSerializer
from connectors.speech.runtime import SpeechRuntime, shared_runtime
from connectors.transport import WebSocketTransport
from models.logs import log_event
from models.turns import TurnSettings
from plugin import settings as toneline_settings
from plugin.consent import StoredConsent
from plugin.corrections import VoiceRetainer
from plugin.state import StateStore

logger = logging.getLogger(__name__)
STREAM_PATH = "/stream"


def toneline_settings_at(path: str) -> toneline_settings.Settings:
    """Toneline's settings for a door: the YAML at `path` (relative to Rasa's working directory), else
    ./toneline.yml, else the defaults; the environment overrides either (TONELINE_REDIS_URL, _CLUSTER...)."""
    chosen = Path(path) if path else Path("toneline.yml")
    return toneline_settings.load(chosen if chosen.is_file() else None)


def credential(credentials: Dict[str, Any], key: str, default_env: str) -> str:
    """`key` from the environment variable credentials.yml names (`<key>_env`, else `default_env`), else the
    value written in credentials.yml itself (for what is not secret)."""
    return os.environ.get(str(credentials.get(f"{key}_env") or default_env), "") or str(credentials.get(key) or "")


def turn_settings(credentials: Dict[str, Any], prefix: str) -> TurnSettings:
    """`end_silence_ms` and `prepare_silence_ms` from credentials.yml, the latter overridable by
    `TONELINE_<PREFIX>_PREPARE_SILENCE_MS` (`off`: no early ASR pass, only when the turn is cut)."""
    raw = os.environ.get(
        f"TONELINE_{prefix.upper()}_PREPARE_SILENCE_MS", credentials.get("prepare_silence_ms", "default")
    )
    if raw is None or str(raw).lower() in ("off", "none", "null"):
        prepare: int | None = None
    elif str(raw) == "default":
        prepare = TurnSettings.prepare_silence_ms
    else:
        try:
            prepare = int(raw)
        except ValueError:
            raise ValueError(f"prepare_silence_ms must be a number of milliseconds or 'off', got {raw!r}") from None
    end = int(credentials.get("end_silence_ms") or TurnSettings.end_silence_ms)
    return TurnSettings(end_silence_ms=end, prepare_silence_ms=prepare)


def switched_off(raw: Any) -> bool:
    """A credentials.yml value that turns a feature off (YAML 1.1 reads a bare `off` as false)."""
    return raw is None or raw is False or str(raw).strip().lower() in ("off", "none", "null", "false")


def reprompt_settings(credentials: Dict[str, Any]) -> RepromptSettings | None:
    """`reprompt` (the sentence, or `off`), `reprompt_min_speech_ms` and `reprompt_max_in_a_row` from
    credentials.yml; the defaults of `RepromptSettings` where they are not given."""
    raw = credentials.get("reprompt", "default")
    if switched_off(raw):
        return None
    default = RepromptSettings()
    text = default.text if raw in ("default", True) else str(raw)  # `reprompt: on` keeps the default sentence
    try:
        min_ms = float(credentials.get("reprompt_min_speech_ms", default.min_speech_s * 1000))
        in_a_row = int(credentials.get("reprompt_max_in_a_row", default.max_in_a_row))
    except (TypeError, ValueError):
        raise ValueError("reprompt_min_speech_ms and reprompt_max_in_a_row must be numbers") from None
    return RepromptSettings(text=text, min_speech_s=min_ms / 1000, max_in_a_row=in_a_row)


def no_input_settings(credentials: Dict[str, Any]) -> NoInputSettings | None:
    """`no_input_s` (seconds, or `off`), `no_input_prompt` and `no_input_max_in_a_row` from credentials.yml;
    the defaults of `NoInputSettings` where they are not given."""
    default = NoInputSettings()
    raw = credentials.get("no_input_s", default.after_s)
    if switched_off(raw):
        return None
    try:
        after_s, in_a_row = float(raw), int(credentials.get("no_input_max_in_a_row", default.max_in_a_row))
    except (TypeError, ValueError):
        raise ValueError("no_input_s and no_input_max_in_a_row must be numbers (no_input_s may be off)") from None
    return NoInputSettings(after_s, str(credentials.get("no_input_prompt") or default.text), in_a_row)


def barge_in_mode(credentials: Dict[str, Any], prefix: str) -> str:
    """`barge_in` from credentials.yml (`speech`, `words` or `off`), overridable by `TONELINE_<PREFIX>_BARGE_IN`."""
    raw = os.environ.get(f"TONELINE_{prefix.upper()}_BARGE_IN") or credentials.get("barge_in", "speech")
    mode = "off" if switched_off(raw) else str(raw).strip().lower()
    if mode not in BARGE_IN_MODES:
        raise ValueError(f"barge_in must be one of {', '.join(BARGE_IN_MODES)}, got {raw!r}")
    return mode


class CallChannel(InputChannel):
    """Base of the telephony input channels whose calls run on `CallSession`."""

    refused_status = 403  # the HTTP status of a refused WebSocket upgrade
    provider: Provider  # codec, tracks and transfer adapter of this provider, set by each provider's channel

    def __init__(
        self,
        settings: CallSettings | None = None,
        runtime: SpeechRuntime | None = None,
        public_url: str | None = None,
        consent: ConsentLookup | None = None,
        retain: RetainVoice | None = None,
    ) -> None:
        self.settings = settings or CallSettings()
        self.consent = consent
        self.retain = retain
        self._runtime = runtime
        self.public_url = public_url.rstrip("/") if public_url else None

    @staticmethod
    def common_credentials(credentials: Dict[str, Any], provider: str) -> Dict[str, Any]:
        """What every call channel reads from credentials.yml: the URL the provider reaches it at, the provider's
        API base (tests point it at a fake) and the turn settings."""
        upper = provider.upper()
        toneline = toneline_settings.load_beside(credential(credentials, "config", "TONELINE_CONFIG"))
        store = StateStore(toneline.redis, toneline.state)
        return {
            # Callers who opted out (on any channel) are not read: the store the plugin keeps consent in.
            "consent": StoredConsent(store),
            # Only when the deployment retains material for adaptation: each answered turn's pooled voice statistics.
            "retain": VoiceRetainer(store, toneline.adaptation) if toneline.adaptation.retain else None,
            "public_url": credential(credentials, "public_url", f"TONELINE_{upper}_PUBLIC_URL") or None,
            "api_base": credential(credentials, "api_base", f"TONELINE_{upper}_API_BASE") or None,
            "settings": CallSettings(
                turn=turn_settings(credentials, provider),
                reprompt=reprompt_settings(credentials),
                barge_in=barge_in_mode(credentials, provider),
                no_input=no_input_settings(credentials),
                disclosure=toneline.disclosure.for_channel(provider),
            ),
        }

    @property
    def runtime(self) -> SpeechRuntime:
        if self._runtime is None:
            self._runtime = shared_runtime()
        return self._runtime

    def serializer(self, request: Request | None = None) -> CallSerializer:
        """A fresh serializer for the connection `request` upgraded."""
        raise NotImplementedError

    def refusal(self, request: Request) -> str | None:
        """Why the stream's upgrade request is refused (a code, logged by the provider), or None if authentic."""
        raise NotImplementedError

    def add_routes(self, bp: Blueprint) -> None:
        """The provider's own routes (its answer webhook)."""
        raise NotImplementedError

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        bp = Blueprint(self.name(), __name__)

        @bp.listener("after_server_start")
        async def preload(app: Any, loop: Any) -> None:
            # Load Whisper and the voice head now, not on the first caller's first turn.
            loop.create_task(self.runtime.recognizer())

        @bp.middleware("request")
        async def authenticate(request: Request) -> HTTPResponse | None:
            # Runs before Sanic's WebSocket handshake: an unauthenticated upgrade gets a plain error, never a 101.
            if not request.path.rstrip("/").endswith(f"/{self.name()}{STREAM_PATH}") or self.refusal(request) is None:
                return None
            return response.text("unauthorized", status=self.refused_status)

        @bp.route("/health", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @bp.websocket(STREAM_PATH)
        async def stream(request: Request, ws: Any) -> None:
            transport = WebSocketTransport(ws, self.provider.channel)
            bot = RasaBot(on_new_message, self.name())
            await self.serve(transport, bot, self.serializer(request))

        self.add_routes(bp)
        return bp

    async def serve(
        self, transport: WebSocketTransport, bot: BotGateway, serializer: CallSerializer | None = None
    ) -> None:
        """Run one call's stream to its end (every way out closes the socket and the session cleanly)."""

        def open_session(start: CallStart, send: SendFrame) -> CallSession:
            services = CallServices(self.runtime, self.provider, self.settings, self.consent, self.retain)
            return CallSession(start, send, bot, services)

        await CallStream(transport, serializer or self.serializer(), self.provider.channel, open_session).run()

    def public_base(self, request: Request, websocket: bool) -> str:
        """`scheme://host[/prefix]` as the provider reaches this server: the configured public URL, else what
        Sanic derives from the request (the forwarded proto and host only when Sanic is told to trust the proxy:
        `SANIC_PROXIES_COUNT` or `SANIC_FORWARDED_SECRET`). The scheme follows the kind of request, whatever the
        proxy calls it: a WebSocket upgrade is `wss` when the public side is secure (nginx's `$scheme` and
        HAProxy's `X-Forwarded-Proto` say `https` for it), a plain request `https`."""
        return with_scheme(self.public_url or f"{request.scheme}://{request.host}", websocket)

    def stream_url(self, request: Request) -> str:
        """The wss:// URL of this channel's stream route, as the provider must reach it."""
        return f"{self.public_base(request, websocket=True)}{request.path.rsplit('/', 1)[0]}{STREAM_PATH}"


def with_scheme(url: str, websocket: bool) -> str:
    """`url` with the scheme of a WebSocket (`ws`/`wss`) or of a plain request (`http`/`https`), secure when it
    was (`https` or `wss`)."""
    scheme, _, rest = url.partition("://")
    secure = scheme.lower() in ("https", "wss")
    if websocket:
        return f"{'wss' if secure else 'ws'}://{rest}"
    return f"{'https' if secure else 'http'}://{rest}"


def is_upgrade(request: Request) -> bool:
    """A WebSocket upgrade request (the stream), as opposed to a webhook."""
    return str(request.headers.get("upgrade", "")).lower() == "websocket"


def log_refusal(channel: str, code: str, request: Request) -> str:
    """Log a refused request (never its credentials) and return the code."""
    log_event(logger, logging.WARNING, f"{channel}.auth.rejected", code=code, path=request.path)
    return code
