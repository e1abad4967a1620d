"""The typed units that flow between serializers, transports and call sessions.

Serializers turn a provider's wire messages into these frames and back; sessions
only ever see frames, never provider dicts. Audio in frames is still in the
wire codec (G.711 mu-law bytes): the session converts it to canonical PCM once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Union


class ProtocolError(ValueError):
    """A wire message that breaks the provider's protocol; `code` names the problem for logs and close frames."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Connected:
    """The provider opened the stream (Twilio `connected`)."""

    protocol: str
    version: str


@dataclass(frozen=True)
class CallStart:
    """Metadata of the call: who, which stream, which codec."""

    stream_id: str
    call_id: str
    account_id: str
    customer_id: str | None
    encoding: str
    sample_rate: int
    channels: int
    tracks: tuple[str, ...] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)
    sequence: int | None = None


@dataclass(frozen=True)
class AudioIn:
    """One chunk of caller audio as the wire carries it (mu-law bytes)."""

    payload: bytes
    sequence: int | None
    timestamp_ms: int | None
    track: str = "inbound"


@dataclass(frozen=True)
class Dtmf:
    """A key the caller pressed."""

    digit: str
    sequence: int | None = None


@dataclass(frozen=True)
class MarkPlayed:
    """The provider finished playing the audio sent before the mark `name` (or cleared it)."""

    name: str
    sequence: int | None = None


@dataclass(frozen=True)
class CallStop:
    """The stream ended (hang-up, transfer, or the provider closed it)."""

    reason: str
    sequence: int | None = None


@dataclass(frozen=True)
class AudioOut:
    """Bot audio to play, in the wire codec."""

    payload: bytes


@dataclass(frozen=True)
class Mark:
    """Ask the provider to report when everything sent before it has been played."""

    name: str


@dataclass(frozen=True)
class Clear:
    """Drop all bot audio the provider has queued but not yet played (barge-in)."""


InboundFrame = Union[Connected, CallStart, AudioIn, Dtmf, MarkPlayed, CallStop]
OutboundFrame = Union[AudioOut, Mark, Clear]
