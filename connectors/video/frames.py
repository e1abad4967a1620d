"""The typed units of the video chat page's WebSocket: what the page asks, what the server tells it.

The serializer maps the page's JSON to these and back; the session only ever sees them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class Hello:
    """The page introduces the customer (a random id it keeps in localStorage, or the URL's `customer`)."""

    customer_id: str


@dataclass(frozen=True)
class ChatIn:
    """One customer text turn."""

    text: str


@dataclass(frozen=True)
class CameraOffer:
    """The customer clicked the opt-in: a WebRTC offer (ICE gathering complete) carrying their camera only."""

    sdp: str


@dataclass(frozen=True)
class CameraOff:
    """The customer withdrew consent: analysis stops and everything read from the camera is dropped."""


@dataclass(frozen=True)
class Ready:
    """The session is open; `face` says whether this server analyses faces at all."""

    session_id: str
    face: bool


@dataclass(frozen=True)
class CameraAnswer:
    """The server's WebRTC answer to a `CameraOffer`."""

    sdp: str


@dataclass(frozen=True)
class CameraStatus:
    """Where the camera stands: `state` in on, off, lost, unavailable, opted_out (the customer opted out of emotion
    analysis: the camera is not connected); frames analysed and faces found so far."""

    state: str
    frames: int = 0
    faces: int = 0


@dataclass(frozen=True)
class BotOut:
    """The bot's answer to one turn, its tone, and the face estimate that went with the turn (if any)."""

    texts: tuple[str, ...]
    tone: str = "neutral"
    handoff: bool = False
    face: Mapping[str, Any] | None = field(default=None)


@dataclass(frozen=True)
class ErrorOut:
    """A message the server could not use; the page shows `detail`."""

    code: str
    detail: str


InboundFrame = Union[Hello, ChatIn, CameraOffer, CameraOff]
OutboundFrame = Union[Ready, CameraAnswer, CameraStatus, BotOut, ErrorOut]
