"""The AudioHook server side of one WebSocket: sequence numbers, the message exchange, clean endings.

Between the transport (bytes and text) and the session (domain): it parses with
the serializer, checks `seq`, answers `open`/`ping`/`pause`/`resume`/`close`,
routes audio to the session, and ends every failure the same way: a
`disconnect` with reason `error`, a short wait for the client's `close`
(answered with `closed`), then the socket closes. It never raises to Sanic.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Callable

from connectors.audiohook import serializer as wire
from connectors.audiohook.session import AudioHookSession
from connectors.frames import ProtocolError
from connectors.receive import EndOfStream, receive_loop
from connectors.transport import NORMAL, PROTOCOL_ERROR, TOO_BIG, UNSUPPORTED_DATA, WebSocketTransport
from models.logs import log_event

logger = logging.getLogger(__name__)
_CLOSE_CODES = {"oversized_frame": TOO_BIG, "unsupported_media": UNSUPPORTED_DATA}
SessionFactory = Callable[[str, wire.Open], AudioHookSession]


@dataclass(frozen=True)
class ServerConfig:
    """One connection's fixed facts."""

    session_id: str  # from the `Audiohook-Session-Id` header; every message's `id` must match
    disconnect_grace_s: float = 1.0  # how long to wait for the client's `close` after our `disconnect`


class AudioHookServer:
    """Runs one AudioHook connection to its end."""

    def __init__(self, transport: WebSocketTransport, config: ServerConfig, start: SessionFactory) -> None:
        self.transport = transport
        self.config = config
        self._start = start
        self.session: AudioHookSession | None = None
        self.wire = wire.AudioHookSerializer(config.session_id)
        self.state = wire.WireState()  # the connection's: media and sequence numbers (the serializer keeps none)

    async def run(self) -> None:
        """Serve until the client closes, we disconnect, or the socket drops (`connectors.receive`); always clean
        up."""
        await receive_loop(self.transport, self)

    async def begin(self) -> None:
        """The client speaks first (`open`)."""

    async def on_message(self, message: str | bytes) -> None:
        """Dispatch one message; a protocol error ends the connection the AudioHook way (`_fail`)."""
        try:
            await self._dispatch(message)
        except ProtocolError as exc:
            await self._fail(exc)
            raise EndOfStream() from None

    def on_disconnect(self) -> None:
        log_event(logger, logging.INFO, "audiohook.session.dropped", session_id=self.config.session_id)

    async def _dispatch(self, message: str | bytes) -> None:
        parsed = self.wire.parse(message, self.state)
        if isinstance(parsed, wire.AudioFrame):
            if self.session is not None:
                await self.session.audio(dict(parsed.channels))
            return
        self._check_envelope(parsed)
        await self._handle(parsed.body)

    def _check_envelope(self, message: wire.ClientMessage) -> None:
        if message.seq != self.state.clientseq + 1:
            raise ProtocolError("out_of_order", f"seq {message.seq} after {self.state.clientseq}")
        self.state.clientseq = message.seq
        if self.config.session_id and message.session_id != self.config.session_id:
            raise ProtocolError("wrong_session_id", "message id differs from the Audiohook-Session-Id header")

    async def _handle(self, body: wire.Body) -> None:
        if isinstance(body, wire.Open):
            await self._open(body)
        elif self.session is None:
            raise ProtocolError("before_open", f"{type(body).__name__.lower()} before `open`")
        elif isinstance(body, wire.Ping):
            await self._send(wire.reply("pong"))
        elif isinstance(body, wire.Pause):
            self.session.pause()
            await self._send(wire.reply("paused"))
        elif isinstance(body, wire.Resume):
            self.session.resume()
            await self._send(wire.reply("resumed"))
        elif isinstance(body, wire.Close):
            await self._close(body.reason)
        else:
            self._note(body)

    def _note(self, body: wire.Body) -> None:
        """Messages that need no answer: logged (with names, never payloads) and skipped."""
        sid = self.config.session_id
        if isinstance(body, wire.Unknown):
            log_event(
                logger,
                logging.WARNING,
                "audiohook.session.bad_message",
                session_id=sid,
                code="unknown_type",
                type=body.type,
            )
        elif isinstance(body, wire.DtmfMessage):
            log_event(logger, logging.INFO, "audiohook.dtmf", session_id=sid, digit=body.digit)
        elif isinstance(body, wire.ClientError):
            log_event(
                logger, logging.WARNING, "audiohook.client.error", session_id=sid, code=body.code, message=body.message
            )
        else:
            log_event(logger, logging.INFO, f"audiohook.{type(body).__name__.lower()}", session_id=sid)

    async def _open(self, body: wire.Open) -> None:
        if self.session is not None:
            raise ProtocolError("second_open", "`open` on a session already open")
        self.state.media = media = wire.choose_media(body.media)
        self.session = self._start(self.config.session_id, body)
        log_event(
            logger,
            logging.INFO,
            "audiohook.session.opened",
            session_id=self.config.session_id,
            conversation_id=body.conversation_id,
            channels="+".join(media.channels),
        )
        await self._send(wire.opened(media))

    async def _close(self, reason: str) -> None:
        """The client's `close`: finish the analysis, then answer `closed` (the client waits for it)."""
        log_event(logger, logging.INFO, "audiohook.session.closing", session_id=self.config.session_id, reason=reason)
        await self._end_session()
        await self._send(wire.reply("closed"))
        raise EndOfStream()

    async def _fail(self, exc: ProtocolError) -> None:
        """Log, `disconnect` with reason `error`, let the client `close`, then close the socket."""
        log_event(
            logger,
            logging.WARNING,
            "audiohook.session.bad_message",
            session_id=self.config.session_id,
            code=exc.code,
            detail=exc.detail,
        )
        await self._send(wire.disconnect("error", exc.code))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._await_close(), self.config.disconnect_grace_s)
        await self.transport.close(_CLOSE_CODES.get(exc.code, PROTOCOL_ERROR), exc.code)

    async def _await_close(self) -> None:
        while (message := await self.transport.receive()) is not None:
            if isinstance(message, str) and _is_close(message):
                await self._end_session()
                await self._send(wire.reply("closed"))
                return

    async def _send(self, message: wire.ServerMessage) -> bool:
        self.state.seq += 1
        return await self.transport.send(self.wire.encode(message, self.state))

    async def _end_session(self) -> None:
        if self.session is not None:
            session, self.session = self.session, None
            await session.close()

    async def finish(self) -> None:
        await self._end_session()
        await self.transport.close(NORMAL, "session ended")


def _is_close(text: str) -> bool:
    """After our `disconnect`, anything but a well-formed `close` is ignored."""
    try:
        return isinstance(wire.parse(text).body, wire.Close)
    except ProtocolError:
        return False
