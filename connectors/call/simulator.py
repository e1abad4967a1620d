"""The provider's side of a call, for simulators of every provider (tests, benchmarks, local trials).

`SimulatedCall` streams caller audio in (scaled) real time in 20 ms frames of
the provider's codec, and plays back what the bot sends the way a provider's
media server does: outbound audio is queued for playback, each mark is returned
when the audio before it has played, and a clear drops the queued audio. A
provider's simulator subclasses it with its wire messages (`send_audio`,
`return_mark`, `on_message`, `hang_up`) and feeds each bot message to `played`,
`marked` or `cleared_playback`.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from connectors.speech.codec import FRAME_MS, WireCodec
from models.audio import SAMPLE_RATE

FRAME_SECONDS = FRAME_MS / 1000


@dataclass
class Reply:
    """Bot audio received after one caller utterance."""

    frames: list[bytes] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    first_audio_at: float | None = None


class SimulatedCall:
    """One call in progress, seen from the provider; subclasses speak the provider's wire format."""

    def __init__(self, ws: Any, codec: WireCodec, speed: float = 1.0) -> None:
        self.ws = ws
        self.codec = codec
        self.speed = speed
        self.received: list[Any] = []  # every bot message, as the provider's simulator decoded it
        self.replies: list[Reply] = []
        self.closed = asyncio.Event()
        self.speech_ended_at: list[float] = []
        self.returned_marks: dict[str, float] = {}  # mark name -> when it went back to the bot
        self.cleared_at: list[float] = []  # when each clear (the bot stopping its audio) arrived
        self._playback_until = 0.0
        self._last_activity = 0.0
        self._pending_marks: list[tuple[float, str]] = []
        self._tasks: list[asyncio.Task[None]] = []

    async def send_audio(self, frame: bytes) -> None:
        """One 20 ms frame of caller audio, as the provider sends it."""
        raise NotImplementedError

    async def return_mark(self, name: str) -> None:
        """Tell the bot the audio before mark `name` has played."""
        raise NotImplementedError

    def on_message(self, message: Any) -> None:
        """One message from the bot, as the transport received it."""
        raise NotImplementedError

    async def say(self, pcm: NDArray[np.float32], then_silence: float = 1.0) -> Reply:
        """Stream an utterance (canonical audio) then line silence, in (scaled) real time."""
        reply = Reply()
        self.replies.append(reply)
        await self._stream(self.codec.frames(pcm))
        self.speech_ended_at.append(time.monotonic())
        await self.silence(then_silence)
        return reply

    async def silence(self, seconds: float) -> None:
        await self._stream(self.codec.frames(np.zeros(int(seconds * SAMPLE_RATE), np.float32)))

    async def _stream(self, frames: list[bytes]) -> None:
        start = time.monotonic()
        for i, frame in enumerate(frames):
            if self.closed.is_set():
                return
            await self.send_audio(frame)
            delay = start + (i + 1) * FRAME_SECONDS / self.speed - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)

    async def wait_reply(self, reply: Reply, timeout: float = 30.0, quiet: float = 1.0) -> Reply:
        """Wait until the reply's audio arrived and a mark followed it, and nothing more came for `quiet` s."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reply.marks and self._last_activity + quiet / self.speed < time.monotonic():
                return reply
            await asyncio.sleep(0.05)
        return reply

    async def hear_opening(self, timeout: float = 30.0, quiet: float = 1.0) -> Reply:
        """Listen to what the bot says before the caller speaks (the emotion-analysis notice) to its end, as a caller
        does: its audio and a mark arrived, nothing more for `quiet` s, and all of it has played."""
        opening = Reply()
        self.replies.append(opening)
        await self.wait_reply(opening, timeout, quiet)
        await self.wait_played(timeout)
        return opening

    async def wait_played(self, timeout: float = 30.0) -> None:
        """Wait until the bot's audio received so far has played: a caller who lets the bot finish.

        Bots send audio faster than real time, so a reply can be all here and still be playing;
        a caller who speaks then barges in, and the bot stops synthesising the rest of its reply.
        """
        deadline = time.monotonic() + timeout
        while self.playing and time.monotonic() < deadline:
            await asyncio.sleep(0.02)

    @property
    def playing(self) -> bool:
        """Whether bot audio is still playing (queued and not cleared)."""
        return time.monotonic() < self._playback_until

    def start(self) -> None:
        self._tasks = [asyncio.create_task(self._receive_loop()), asyncio.create_task(self._mark_loop())]

    async def _receive_loop(self) -> None:
        try:
            async for message in self.ws:
                self._last_activity = time.monotonic()
                self.on_message(message)
        except Exception:  # the server closing is how every call ends
            pass
        finally:
            self.closed.set()

    def played(self, payload: bytes) -> None:
        """Bot audio arrived: queue it for playback."""
        now = time.monotonic()
        self._playback_until = max(self._playback_until, now) + len(payload) / self.codec.bytes_per_second / self.speed
        reply = self.replies[-1] if self.replies else None
        if reply is not None:
            reply.frames.append(payload)
            if reply.first_audio_at is None:
                reply.first_audio_at = now

    def marked(self, name: str) -> None:
        """A mark arrived: it goes back when the audio before it has played."""
        self._pending_marks.append((max(self._playback_until, time.monotonic()), name))
        if self.replies:
            self.replies[-1].marks.append(name)

    def cleared_playback(self, return_marks: bool) -> None:
        """A clear arrived: queued audio is dropped; pending marks come back at once or are dropped."""
        now = time.monotonic()
        self.cleared_at.append(now)
        self._playback_until = now
        self._pending_marks = [(now, name) for _, name in self._pending_marks] if return_marks else []

    async def _mark_loop(self) -> None:
        while not self.closed.is_set():
            now = time.monotonic()
            due = [m for m in self._pending_marks if m[0] <= now]
            self._pending_marks = [m for m in self._pending_marks if m[0] > now]
            for _, name in due:
                # Stamped before sending: the bot may act on the mark (and transfer) before this send returns.
                sent_at = time.monotonic()
                with contextlib.suppress(Exception):
                    await self.return_mark(name)
                    self.returned_marks[name] = sent_at
            await asyncio.sleep(0.02)

    async def hang_up(self) -> None:
        """The caller hangs up (providers that say so first override this)."""
        await self.close()

    async def close(self) -> None:
        """The provider ends the call: the socket closes and the helper tasks stop."""
        with contextlib.suppress(Exception):
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        self.closed.set()
