"""One call's WebSocket, for any provider: messages -> serializer -> call session, and every way out clean.

The loop owns the order of things: nothing but a start may open a session,
protocol errors are logged with their code and end that call only (with the
close code that names them), stale or unknown messages are logged and skipped,
and whether the caller hangs up, the provider closes or the TCP connection just
drops, the session drains and the socket closes exactly once.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, NoReturn

from connectors.call.session import CallSession, SendFrame
from connectors.frames import CallStart, CallStop, Connected, InboundFrame, OutboundFrame, ProtocolError
from connectors.receive import EndOfStream, receive_loop
from connectors.serializer import CallSerializer, Wire
from connectors.transport import (
    NORMAL,
    POLICY_VIOLATION,
    PROTOCOL_ERROR,
    TOO_BIG,
    UNSUPPORTED_DATA,
    WebSocketTransport,
)
from models.logs import log_event

logger = logging.getLogger(__name__)
CLOSE_CODES = {
    "oversized_frame": TOO_BIG,
    "unsupported_codec": UNSUPPORTED_DATA,
    "unexpected_binary": UNSUPPORTED_DATA,
    "wrong_call": POLICY_VIOLATION,
}
# Not worth ending a live call over: logged and skipped (providers add events; a late frame is stale).
SKIPPABLE = {"unknown_event", "out_of_order"}
OpenSession = Callable[[CallStart, SendFrame], CallSession]


def check_sequence(frame: Any, last: int | None) -> int | None:
    """The frame's sequence number if it comes after `last`; `out_of_order` otherwise (frames without one pass)."""
    seq = getattr(frame, "sequence", None)
    if seq is None:
        return last
    if last is not None and seq <= last:
        raise ProtocolError("out_of_order", f"sequence number {seq} after {last}")
    return int(seq)


class CallStream:
    """Runs one provider WebSocket to its end."""

    def __init__(
        self, transport: WebSocketTransport, serializer: CallSerializer, channel: str, open_session: OpenSession
    ) -> None:
        self.transport = transport
        self.serializer = serializer
        self.channel = channel
        self._open_session = open_session
        self.session: CallSession | None = None
        self.start: CallStart | None = None  # the call's start: what its outbound messages name (Twilio's SID)
        self._last_seq: int | None = None

    @property
    def call_id(self) -> str | None:
        return self.session.call_id if self.session else None

    async def run(self) -> None:
        """Serve until the call ends (`connectors.receive`); always drain the session and close the socket."""
        await receive_loop(self.transport, self)

    async def begin(self) -> None:
        """Nothing is sent before the provider's first message."""

    async def finish(self) -> None:
        """The turns already cut drain, then the socket closes."""
        if self.session is not None:
            await self.session.close()
        await self.transport.close(NORMAL, "stream ended")

    async def on_message(self, message: Wire) -> None:
        try:
            frame = self.serializer.parse(message)
            self._last_seq = check_sequence(frame, self._last_seq)
        except ProtocolError as exc:
            if exc.code in SKIPPABLE:
                self._bad_message(exc.code, exc.detail)
                return
            await self._fail(exc)
        await self._on_frame(frame)

    async def _on_frame(self, frame: InboundFrame) -> None:
        if isinstance(frame, Connected):
            return
        if isinstance(frame, CallStart):
            await self._start(frame)
            return
        if self.session is None:
            await self._fail(ProtocolError("before_start", f"{type(frame).__name__} before the call's start"))
            return
        await self.session.handle(frame)
        if isinstance(frame, CallStop):
            raise EndOfStream()

    async def _start(self, start: CallStart) -> None:
        if self.session is not None:
            self._bad_message("second_start", "a second start on one stream is ignored")
            return
        try:
            self.serializer.accept(start)
        except ProtocolError as exc:
            self._bad_message(exc.code, exc.detail, call_id=start.call_id)
            await self.transport.close(CLOSE_CODES.get(exc.code, PROTOCOL_ERROR), exc.code)
            raise EndOfStream() from None
        log_event(
            logger, logging.INFO, f"{self.channel}.call.started", call_id=start.call_id, stream_id=start.stream_id
        )
        self.start = start
        self.session = self._open_session(start, self._send)
        await self.session.begin()

    async def _send(self, frame: OutboundFrame) -> bool:
        return await self.transport.send(self.serializer.encode(frame, self.start))

    async def _fail(self, exc: ProtocolError) -> NoReturn:
        """Log the named error and close this call's socket with the code that fits it."""
        self._bad_message(exc.code, exc.detail)
        await self.transport.close(CLOSE_CODES.get(exc.code, PROTOCOL_ERROR), exc.code)
        raise EndOfStream()

    def _bad_message(self, code: str, detail: str, call_id: str | None = None) -> None:
        log_event(
            logger,
            logging.WARNING,
            f"{self.channel}.stream.bad_message",
            call_id=call_id or self.call_id,
            code=code,
            detail=detail,
        )

    def on_disconnect(self) -> None:
        log_event(logger, logging.INFO, f"{self.channel}.stream.disconnected", call_id=self.call_id)
