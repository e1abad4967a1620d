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
POLICY_VIOLATION = 1008
TOO_BIG = 1009
INTERNAL_ERROR = 1011


class WebSocketTransport:
    """Owns one server-side WebSocket (Sanic's, or anything with `recv`, `send`, `close`)."""

    def __init__(self, ws: Any, label: str) -> None:
        self._ws = ws
        self.label = label
        self.closed = False
        self._send_lock = asyncio.Lock()

    async def receive(self) -> Data | None:
        """The next message, or None once the peer has gone (closed or dropped)."""
        if self.closed:
            return None
        try:
            message = await self._ws.recv()
        except asyncio.CancelledError:
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
