"""The one way in for every door: read a message, hand it to the door, and end every way out the same.

Twilio and Vonage (through the call core, `connectors.call.stream`), Genesys AudioHook
(`connectors.audiohook.protocol`) and the video page's signalling (`connectors.video.channel`) all run their
WebSocket with `receive_loop`. A door says what its messages mean (`Door.on_message`: parse with the door's
serializer, which answers a frame or a named `ProtocolError`, then dispatch) and how it ends (`Door.finish`:
drain the session, close the socket with a reason); the loop owns the order: the door's opening, one message
at a time, a clean end whether the peer says goodbye, the door ends it (`EndOfStream`), the peer closes or the
TCP connection just drops.
"""

from __future__ import annotations

import asyncio
from typing import Protocol

from connectors.serializer import Wire
from connectors.transport import WebSocketTransport


class EndOfStream(Exception):
    """Leave the receive loop: the door is done (the peer said goodbye, or a protocol error closed it)."""


class Door(Protocol):
    """One connection of one door, as the receive loop drives it."""

    async def begin(self) -> None:
        """What the door sends before the first message (the video page's `ready`); most send nothing."""

    async def on_message(self, message: Wire) -> None:
        """Parse `message` with the door's serializer and dispatch it; raise `EndOfStream` to stop reading."""

    def on_disconnect(self) -> None:
        """The peer went without the door ending it (closed, or the connection dropped)."""

    async def finish(self) -> None:
        """Drain the session and close the socket (runs once, whatever ended the loop)."""


async def receive_loop(transport: WebSocketTransport, door: Door) -> None:
    """Serve one connection until it ends; the door always finishes."""
    try:
        await door.begin()
        while (message := await transport.receive()) is not None:
            try:
                await door.on_message(message)
            except EndOfStream:
                break
        else:
            door.on_disconnect()
    except asyncio.CancelledError:
        # Sanic cancels the handler when the TCP connection drops without a close frame.
        door.on_disconnect()
        raise
    finally:
        # Sanic may cancel the handler twice (a close frame, then the lost connection): shielded, the session
        # still drains and the socket still closes, whatever comes next.
        await asyncio.shield(door.finish())
