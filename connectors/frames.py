"""The typed units that flow between serializers, transports and call sessions, for every provider.

Serializers turn a provider's wire messages into these frames and back; sessions
only ever see frames, never provider dicts. Audio in frames is still in the
wire codec (Twilio's G.711 mu-law, Vonage's 16-bit linear PCM): the call's
codec converts it to canonical PCM once, at the edge.
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
class ProviderIds:
    """Identifiers only the provider's own adapters read (Twilio's account SID, Vonage's conversation UUID)."""

    provider: str
    account: str = ""
    conversation: str = ""


@dataclass(frozen=True)
class CallStart:
    """Metadata of the call: who, which stream, which codec. `call_id` is what a transfer moves."""

    stream_id: str
    call_id: str
    provider: ProviderIds
    customer_id: str | None
    encoding: str
    sample_rate: int
    channels: int
    tracks: tuple[str, ...] = ()
    parameters: Mapping[str, str] = field(default_factory=dict)
    sequence: int | None = None


@dataclass(frozen=True)
class AudioIn:
    """One chunk of caller audio as the wire carries it (in the wire codec)."""

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
class PlaybackCleared:
    """The provider dropped all queued bot audio after a `Clear` (Vonage `websocket:cleared`): no mark will follow."""


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


InboundFrame = Union[Connected, CallStart, AudioIn, Dtmf, MarkPlayed, PlaybackCleared, CallStop]
OutboundFrame = Union[AudioOut, Mark, Clear]
