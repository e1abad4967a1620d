"""The socket side of a call: one WebSocket, received and sent as text or bytes, closed exactly once.

Transports know nothing of the provider's messages (serializers) or of the
call's logic (sessions); they turn the server's connection errors into an end
of stream so a session always finishes through the same path.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Union

from models.logs import log_event

logger = logging.getLogger(__name__)
Data = Union[str, bytes]

# RFC 6455 close codes used by the channels.
NORMAL = 1000
PROTOCOL_ERROR = 1002
UNSUPPORTED_DATA = 1003
INVALID_DATA = 1007
POLICY_VIOLATION = 1008
TOO_BIG = 1009


class WebSocketTransport:
    """Owns one server-side WebSocket (Sanic's, or anything with `recv`, `send`, `close`)."""

    def __init__(self, ws: Any, label: str) -> None:
        self._ws = ws
        self.label = label
        self.closed = False
        self.failed_code: int | None = None
        self._send_lock = asyncio.Lock()
        self._guard_text_decoding()

    def _guard_text_decoding(self) -> None:
        """Close with 1007 on a text frame that is not UTF-8, instead of Sanic's unhandled exception.

        Sanic 21.12 decodes text frames in a task of its own (`process_events` ->
        `assembler.put`); a UnicodeDecodeError there is never retrieved, the
        socket stays open and `recv` waits for ever. Wrapping this connection's
        `process_events` turns it into RFC 6455's close code for bad data.
        """
        process = getattr(self._ws, "process_events", None)
        if process is None:
            return

        async def guarded(events: Any) -> None:
            try:
                await process(events)
            except UnicodeDecodeError:
                log_event(logger, logging.WARNING, "transport.receive.invalid_utf8", label=self.label)
                self.failed_code = INVALID_DATA
                self._ws.fail_connection(INVALID_DATA, "invalid UTF-8 in a text frame")
                if getattr(self._ws, "recv_cancel", None) is not None:
                    self._ws.recv_cancel.cancel()

        self._ws.process_events = guarded

    async def receive(self) -> Data | None:
        """The next message, or None once the peer has gone (closed or dropped)."""
        if self.closed:
            return None
        try:
            message: Data | None = await self._ws.recv()
        except asyncio.CancelledError:
            if self.failed_code is not None:  # our own cancel after failing the connection: the stream ended
                self.closed = True
                return None
            raise
        except Exception as exc:  # the server raises several kinds of "connection is gone"
            log_event(logger, logging.INFO, "transport.receive.ended", label=self.label, error=type(exc).__name__)
            self.closed = True
            return None
        if message is None:
            self.closed = True
        return message

    async def send(self, data: Data) -> bool:
        """Send one message; False (and closed) if the peer has gone."""
        if self.closed:
            return False
        try:
            async with self._send_lock:
                await self._ws.send(data)
            return True
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log_event(logger, logging.INFO, "transport.send.failed", label=self.label, error=type(exc).__name__)
            self.closed = True
            return False

    async def close(self, code: int = NORMAL, reason: str = "") -> None:
        """Close once with `code`; later calls do nothing."""
        if self.closed:
            return
        self.closed = True
        try:
            await self._ws.close(code, reason[:120])
        except Exception as exc:
            log_event(logger, logging.DEBUG, "transport.close.failed", label=self.label, error=type(exc).__name__)
