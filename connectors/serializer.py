"""The one serializer protocol every provider's wire format implements.

A serializer maps a provider's wire messages to typed frames and back, and
nothing else: no sockets (the transport), no call logic (the session). It is
total: `parse` answers any text or bytes with a frame or raises `ProtocolError`
with a code the channel logs and maps to a close; it never raises anything
else (tests/connectors/test_fuzz_serializers.py holds every parser to that).
Every door's socket is read by one loop (`connectors.receive`). What a wire needs
from earlier messages belongs to the connection: AudioHook's sequence numbers and
media are its connection's `WireState`, handed to the serializer with each message;
a call's start (whose stream id Twilio's outbound messages name) is its stream's
(`connectors.call.stream`), handed to `encode` with each frame.
"""

from __future__ import annotations

from typing import Protocol, TypeVar, Union, runtime_checkable

from connectors.frames import CallStart, InboundFrame, OutboundFrame

In_co = TypeVar("In_co", covariant=True)
Out_contra = TypeVar("Out_contra", contravariant=True)
Wire = Union[str, bytes]


@runtime_checkable
class WireSerializer(Protocol[In_co, Out_contra]):
    """Wire messages <-> frames of one provider, for one connection."""

    def parse(self, data: Wire) -> In_co:
        """One wire message -> a frame; raises only `ProtocolError` (a named code), never another exception."""

    def encode(self, frame: Out_contra) -> Wire:
        """One outbound frame -> the message to send (text or binary, as the provider expects)."""


@runtime_checkable
class CallSerializer(WireSerializer[InboundFrame, OutboundFrame], Protocol):
    """A telephony provider whose calls run on the call core (connectors/call/)."""

    def accept(self, start: CallStart) -> None:
        """Check the call's start: refuse media this provider's leg cannot carry (`ProtocolError`
        `unsupported_codec`) or a call the upgrade was not signed for; remembers nothing."""

    def encode(self, frame: OutboundFrame, start: CallStart | None = None) -> Wire:
        """One outbound frame of the call that `start` opened -> the message to send (e.g. Twilio's messages
        name the call's stream id); the call's start is the connection's state, handed in with each frame."""
