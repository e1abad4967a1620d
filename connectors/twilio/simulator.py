"""A Twilio-side simulator: places a call the way Twilio does, for tests, benchmarks and local trials.

It signs and POSTs the voice webhook, follows the TwiML to the stream URL,
opens the WebSocket with a signed upgrade, sends `connected`, `start`, then
`media` every 20 ms (caller speech, else line silence) with increasing
`sequenceNumber`, `chunk` and `timestamp`, and plays back what the bot sends:
outbound `media` is queued for playback, each `mark` is returned when the
audio before it has "played", and `clear` drops queued audio and returns the
pending marks at once, as Twilio does.

`run_caller` plays a whole caller (a list of utterances) into a call and reads
back from Rasa's tracker what each turn became (`TurnReport`): transcript,
voice, text and fused emotion, reply tone, and whether the call was handed to
a person; the end-to-end tests and `bench.quality_calls` use it.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field, replace
from typing import Any, Awaitable, Callable

import numpy as np

from connectors.speech.codec import FRAME_BYTES, ULAW_SILENCE, mulaw_from_canonical, split_frames
from connectors.twilio import signature

FRAME_SECONDS = 0.02


@dataclass
class Reply:
    """Bot audio received after one caller utterance."""

    frames: list[bytes] = field(default_factory=list)
    marks: list[str] = field(default_factory=list)
    first_audio_at: float | None = None


@dataclass
class SimulatedCall:
    """One call in progress; create with `place_call`."""

    ws: Any
    stream_sid: str
    call_sid: str
    speed: float = 1.0
    seq: int = 0
    chunk: int = 0
    received: list[dict] = field(default_factory=list)
    replies: list[Reply] = field(default_factory=list)
    cleared: int = 0
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    speech_ended_at: list[float] = field(default_factory=list)
    returned_marks: dict[str, float] = field(default_factory=dict)  # mark name -> when it went back to the bot
    _playback_until: float = 0.0
    _last_activity: float = 0.0
    _pending_marks: list[tuple[float, str]] = field(default_factory=list)
    _tasks: list[asyncio.Task] = field(default_factory=list)

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def send_json(self, message: dict) -> None:
        await self.ws.send(json.dumps(message))

    async def send_media(self, payload: bytes) -> None:
        self.chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self.chunk),
            "timestamp": str(int(self.chunk * FRAME_SECONDS * 1000)),
            "payload": base64.b64encode(payload).decode(),
        }
        await self.send_json(
            {"event": "media", "sequenceNumber": self.next_seq(), "media": media, "streamSid": self.stream_sid}
        )

    async def say(self, pcm: np.ndarray, then_silence: float = 1.0) -> Reply:
        """Stream an utterance (canonical audio) then line silence, in (scaled) real time."""
        reply = Reply()
        self.replies.append(reply)
        frames = split_frames(mulaw_from_canonical(pcm), FRAME_BYTES)
        await self._stream(frames)
        self.speech_ended_at.append(time.monotonic())
        await self.silence(then_silence)
        return reply

    async def silence(self, seconds: float) -> None:
        await self._stream([bytes([ULAW_SILENCE]) * FRAME_BYTES] * int(seconds / FRAME_SECONDS))

    async def _stream(self, frames: list[bytes]) -> None:
        start = time.monotonic()
        for i, frame in enumerate(frames):
            if self.closed.is_set():
                return
            await self.send_media(frame)
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

    async def receive_loop(self) -> None:
        try:
            async for text in self.ws:
                self._on_message(json.loads(text))
        except Exception:  # the server closing is how every call ends
            pass
        finally:
            self.closed.set()

    def _on_message(self, message: dict) -> None:
        self.received.append(message)
        self._last_activity = time.monotonic()
        reply = self.replies[-1] if self.replies else None
        event = message.get("event")
        now = time.monotonic()
        if event == "media":
            payload = base64.b64decode(message["media"]["payload"])
            self._playback_until = max(self._playback_until, now) + len(payload) / 8000 / self.speed
            if reply is not None:
                reply.frames.append(payload)
                if reply.first_audio_at is None:
                    reply.first_audio_at = now
        elif event == "mark":
            self._pending_marks.append((max(self._playback_until, now), message["mark"]["name"]))
            if reply is not None:
                reply.marks.append(message["mark"]["name"])
        elif event == "clear":
            self.cleared += 1
            self._playback_until = now
            self._pending_marks = [(now, name) for _, name in self._pending_marks]

    async def mark_loop(self) -> None:
        """Return each mark when its audio has played, as Twilio does."""
        while not self.closed.is_set():
            now = time.monotonic()
            due = [m for m in self._pending_marks if m[0] <= now]
            self._pending_marks = [m for m in self._pending_marks if m[0] > now]
            for _, name in due:
                # Stamped before sending: the bot may act on the mark (and transfer) before this send returns.
                sent_at = time.monotonic()
                with contextlib.suppress(Exception):
                    await self.send_json(
                        {
                            "event": "mark",
                            "sequenceNumber": self.next_seq(),
                            "streamSid": self.stream_sid,
                            "mark": {"name": name},
                        }
                    )
                    self.returned_marks[name] = sent_at
            await asyncio.sleep(0.02)

    async def hang_up(self) -> None:
        """Send `stop` and close, as Twilio does when the caller hangs up."""
        with contextlib.suppress(Exception):
            await self.send_json(
                {
                    "event": "stop",
                    "sequenceNumber": self.next_seq(),
                    "stop": {"callSid": self.call_sid},
                    "streamSid": self.stream_sid,
                }
            )
            await self.ws.close()
        for task in self._tasks:
            task.cancel()
        self.closed.set()


def webhook(base_url: str, auth_token: str, call_sid: str, caller: str, account_sid: str) -> tuple[str, dict[str, str]]:
    """POST the signed voice webhook; returns the stream URL and the `<Parameter>`s of the TwiML."""
    url = f"{base_url}/webhooks/toneline_twilio/voice"
    form = {"CallSid": call_sid, "AccountSid": account_sid, "From": caller, "To": "+15550199", "CallStatus": "ringing"}
    headers = {"X-Twilio-Signature": signature.compute(url, form, auth_token)}
    request = urllib.request.Request(url, urllib.parse.urlencode(form).encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        twiml = response.read().decode()
    stream = re.search(r'<Stream url="([^"]+)"', twiml)
    if stream is None:
        raise ValueError(f"no <Stream> in TwiML: {twiml}")
    params = dict(re.findall(r'<Parameter name="([^"]+)" value="([^"]*)"', twiml))
    return stream.group(1), params


async def place_call(
    base_url: str,
    auth_token: str,
    caller: str = "+15550100",
    account_sid: str = "AC" + "0" * 32,
    speed: float = 1.0,
    call_sid: str | None = None,
) -> SimulatedCall:
    """Start a call the way Twilio does and return it streaming (`say`, `wait_reply`, `hang_up`)."""
    from websockets.client import connect

    call_sid = call_sid or "CA" + uuid.uuid4().hex
    stream_url, params = await asyncio.get_running_loop().run_in_executor(
        None, webhook, base_url, auth_token, call_sid, caller, account_sid
    )
    headers = {"X-Twilio-Signature": signature.compute(stream_url, {}, auth_token)}
    ws = await connect(stream_url, extra_headers=headers, max_size=2**20)
    stream_sid = "MZ" + uuid.uuid4().hex
    call = SimulatedCall(ws, stream_sid, call_sid, speed)
    await call.send_json({"event": "connected", "protocol": "Call", "version": "1.0.0"})
    start = {
        "accountSid": account_sid,
        "streamSid": stream_sid,
        "callSid": call_sid,
        "tracks": ["inbound"],
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        "customParameters": params,
    }
    await call.send_json({"event": "start", "sequenceNumber": call.next_seq(), "start": start, "streamSid": stream_sid})
    call._tasks = [asyncio.create_task(call.receive_loop()), asyncio.create_task(call.mark_loop())]
    return call


@dataclass(frozen=True)
class TurnReport:
    """One customer turn as Rasa recorded it: what was heard, how each modality read it, and what followed."""

    transcript: str
    fused: str  # fused label
    valence: float
    voice: str | None  # the voice estimate's label, None when the turn had none
    text: str | None
    weights: dict[str, float]
    tone: str  # the reply tone after this turn
    handoff: bool  # action_handoff ran on this turn

    def line(self) -> str:
        weights = " ".join(f"{k}={v:.2f}" for k, v in self.weights.items())
        return (
            f"{self.transcript!r}: voice={self.voice} text={self.text} -> fused={self.fused} "
            f"(valence {self.valence:+.2f}; {weights}) tone={self.tone}{' HANDOFF' if self.handoff else ''}"
        )


def turn_reports(tracker: dict) -> list[TurnReport]:
    """Each customer turn of a Rasa tracker (JSON, as `GET /conversations/{id}/tracker` returns it)."""
    reports: list[TurnReport] = []
    tone = "neutral"
    for event in tracker.get("events", []):
        kind = event.get("event")
        if kind == "slot" and event.get("name") == "toneline_tone" and reports:
            tone = str(event.get("value"))
            reports[-1] = replace(reports[-1], tone=tone)
        elif kind == "action" and event.get("name") == "action_handoff" and reports:
            reports[-1] = replace(reports[-1], handoff=True)
        elif kind == "user":
            reports.append(_report(event, tone))
    return reports


def _report(event: dict, tone: str) -> TurnReport:
    emotion = (event.get("parse_data") or {}).get("toneline") or {}
    by_modality = {e.get("modality"): e.get("label") for e in emotion.get("estimates", [])}
    return TurnReport(
        transcript=str(event.get("text") or ""),
        fused=str(emotion.get("label", "none")),
        valence=float(emotion.get("valence", 0.0)),
        voice=by_modality.get("voice"),
        text=by_modality.get("text"),
        weights={str(k): float(v) for k, v in (emotion.get("weights") or {}).items()},
        tone=tone,
        handoff=False,
    )


@dataclass
class CallerOutcome:
    """A played caller: utterances spoken, the turn reports, and after which utterance the call was handed over."""

    call_sid: str
    spoken: int
    turns: list[TurnReport]
    transferred_after: int | None  # 1-based utterance index; None if never

    @property
    def transferred(self) -> bool:
        return self.transferred_after is not None


async def run_caller(
    base_url: str,
    auth_token: str,
    utterances: list[np.ndarray],
    tracker: Callable[[str], Awaitable[dict]],
    caller: str = "+15550100",
    speed: float = 1.0,
    reply_timeout: float = 20.0,
) -> CallerOutcome:
    """Place a call, say each utterance (waiting for the reply), stop once the bot hands the call over."""
    call = await place_call(base_url, auth_token, caller=caller, speed=speed)
    transferred_after = None
    spoken = 0
    try:
        await call.silence(0.5)
        for spoken, pcm in enumerate(utterances, start=1):
            await call.wait_reply(await call.say(pcm), timeout=reply_timeout)
            if (await tracker(call.call_sid)).get("slots", {}).get("handed_off"):
                transferred_after = spoken
                break
    finally:
        await call.hang_up()
    return CallerOutcome(call.call_sid, spoken, turn_reports(await tracker(call.call_sid)), transferred_after)
