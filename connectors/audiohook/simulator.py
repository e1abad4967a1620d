"""A Genesys-side AudioHook client, for tests, benchmarks and local trials.

It opens the WebSocket with the AudioHook headers and a signed request
(`Signature-Input`/`Signature`), sends `open` with a PCMU 8 kHz offer, then
streams byte-interleaved audio frames (100 ms each, in real time divided by
`speed`) with the customer on `external` and the agent on `internal`, counts
`seq`/`serverseq` as Genesys does, answers a server `disconnect` with `close`,
and ends with `close`, waiting for `closed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from websockets.client import connect

from connectors.audiohook import signature
from connectors.audiohook.serializer import AGENT, CUSTOMER, FORMAT, RATE, VERSION
from connectors.speech.codec import ULAW_SILENCE, mulaw_from_canonical

FRAME_SECONDS = 0.1
FRAME_SAMPLES = int(RATE * FRAME_SECONDS)


@dataclass
class AudioHookClient:
    """One AudioHook session in progress; create with `open_session`."""

    ws: Any
    session_id: str
    conversation_id: str
    channels: tuple[str, ...]
    speed: float = 1.0
    seq: int = 0
    serverseq: int = 0
    position_s: float = 0.0
    received: list[dict[str, Any]] = field(default_factory=list)
    disconnected: asyncio.Event = field(default_factory=asyncio.Event)
    _reader: asyncio.Task[None] | None = None
    _waiters: dict[str, asyncio.Event] = field(default_factory=dict)

    async def send(self, kind: str, parameters: dict[str, Any] | None = None, seq: int | None = None) -> None:
        """Send one message with the next `seq` (or a given one, to test the server)."""
        self.seq = self.seq + 1 if seq is None else seq
        message = {
            "version": VERSION,
            "type": kind,
            "seq": self.seq,
            "serverseq": self.serverseq,
            "id": self.session_id,
            "position": f"PT{self.position_s:.2f}S",
            "parameters": parameters or {},
        }
        await self.ws.send(json.dumps(message))

    async def request(
        self, kind: str, answer: str, parameters: dict[str, Any] | None = None, timeout: float = 10
    ) -> dict[str, Any]:
        """Send `kind` and wait for the server's `answer` message."""
        event = self._waiters[answer] = asyncio.Event()
        await self.send(kind, parameters)
        await asyncio.wait_for(event.wait(), timeout)
        return [m for m in self.received if m["type"] == answer][-1]

    async def _read(self) -> None:
        with contextlib.suppress(Exception):
            async for raw in self.ws:
                message = json.loads(raw)
                self.received.append(message)
                self.serverseq = int(message.get("seq", self.serverseq))
                if message["type"] == "disconnect":
                    self.disconnected.set()
                    await self.send("close", {"reason": "disconnect"})
                if message["type"] in self._waiters:
                    self._waiters.pop(message["type"]).set()

    async def stream(
        self, customer: NDArray[np.float32] | None, agent: NDArray[np.float32] | None = None, tail_s: float = 1.0
    ) -> None:
        """Play canonical audio on each channel in real time / speed, then `tail_s` of line silence."""
        wire = {CUSTOMER: _mulaw(customer), AGENT: _mulaw(agent)}
        length = max(len(b) for b in wire.values()) + int(tail_s * RATE)
        padded = [wire[c].ljust(length, bytes([ULAW_SILENCE])) for c in self.channels]
        interleaved = np.stack([np.frombuffer(p, np.uint8) for p in padded], axis=1).reshape(-1).tobytes()
        step = FRAME_SAMPLES * len(self.channels)
        started = time.monotonic()
        for index, offset in enumerate(range(0, len(interleaved), step)):
            await self.ws.send(interleaved[offset : offset + step])
            self.position_s += FRAME_SECONDS
            delay = started + (index + 1) * FRAME_SECONDS / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def close(self, timeout: float = 60) -> dict[str, Any]:
        """End the session as Genesys does: `close`, then wait for `closed` (the server drains its analysis)."""
        closed = await self.request("close", "closed", {"reason": "end"}, timeout)
        await self.ws.close()
        return closed

    def types(self) -> list[str]:
        return [m["type"] for m in self.received]


def _mulaw(pcm: NDArray[np.float32] | None) -> bytes:
    return b"" if pcm is None or pcm.size == 0 else mulaw_from_canonical(pcm)


def headers(
    url: str, api_key: str, client_secret: str | None, session_id: str, organization_id: str, correlation_id: str
) -> dict[str, str]:
    """The upgrade request's AudioHook headers, signed when a client secret is given."""
    base = {
        "Audiohook-Organization-Id": organization_id,
        "Audiohook-Correlation-Id": correlation_id,
        "Audiohook-Session-Id": session_id,
        "X-API-KEY": api_key,
    }
    if client_secret is None:
        return base
    parts = urllib.parse.urlsplit(url)
    request = signature.SignedRequest(
        path_and_query=parts.path + (f"?{parts.query}" if parts.query else ""),
        authority=parts.netloc,
        headers={k.lower(): v for k, v in base.items()},
    )
    return {**base, **signature.sign(request, api_key, client_secret, uuid.uuid4().hex, int(time.time()))}


def open_message(conversation_id: str, ani: str, channels: tuple[str, ...], fmt: str = FORMAT) -> dict[str, Any]:
    """The `open` parameters Genesys sends."""
    return {
        "organizationId": str(uuid.uuid4()),
        "conversationId": conversation_id,
        "participant": {"id": str(uuid.uuid4()), "ani": ani, "aniName": "Caller", "dnis": "+15550199"},
        "media": [{"type": "audio", "format": fmt, "channels": list(channels), "rate": RATE}],
        "language": "en-US",
    }


async def connect_session(
    url: str, api_key: str, client_secret: str | None, session_id: str | None = None
) -> tuple[Any, str]:
    """Open the WebSocket only (no `open` yet); returns the socket and the session id."""
    sid = session_id or str(uuid.uuid4())
    extra = headers(url, api_key, client_secret, sid, str(uuid.uuid4()), str(uuid.uuid4()))
    return await connect(url, extra_headers=extra, max_size=2**20), sid


async def open_session(
    url: str,
    api_key: str,
    client_secret: str | None,
    conversation_id: str | None = None,
    ani: str = "+15550100",
    channels: tuple[str, ...] = (CUSTOMER, AGENT),
    speed: float = 1.0,
) -> AudioHookClient:
    """Connect, send `open`, wait for `opened`."""
    ws, sid = await connect_session(url, api_key, client_secret)
    client = AudioHookClient(ws, sid, conversation_id or str(uuid.uuid4()), channels, speed)
    client._reader = asyncio.create_task(client._read())
    await client.request("open", "opened", open_message(client.conversation_id, ani, channels))
    return client
