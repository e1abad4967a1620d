"""A Twilio-side simulator: places a call the way Twilio does, for tests, benchmarks and local trials.

It signs and POSTs the voice webhook, follows the TwiML to the stream URL,
opens the WebSocket with a signed upgrade, sends `connected`, `start`, then
`media` every 20 ms (caller speech, else line silence) with increasing
`sequenceNumber`, `chunk` and `timestamp`, and plays back what the bot sends
(connectors/call/simulator.py): outbound `media` is queued for playback, each
`mark` is returned when the audio before it has "played", and `clear` drops
queued audio and returns the pending marks at once, as Twilio does.

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
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, replace
from typing import Any, Awaitable, Callable

import numpy as np
from numpy.typing import NDArray

from connectors.call.simulator import FRAME_SECONDS, Reply, SimulatedCall
from connectors.speech.codec import MULAW_8K
from connectors.twilio import signature
from plugin.metadata import HANDOFF_ACTION, PARSE_KEY, SlotNames

__all__ = ["CallerOutcome", "Reply", "TurnReport", "TwilioCall", "place_call", "run_caller", "turn_reports", "webhook"]


class TwilioCall(SimulatedCall):
    """One Twilio call in progress; create with `place_call`."""

    def __init__(self, ws: Any, stream_sid: str, call_sid: str, speed: float = 1.0) -> None:
        super().__init__(ws, MULAW_8K, speed)
        self.stream_sid = stream_sid
        self.call_sid = call_sid
        self.seq = 0
        self.chunk = 0

    def next_seq(self) -> str:
        self.seq += 1
        return str(self.seq)

    async def send_json(self, message: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(message))

    async def send_audio(self, frame: bytes) -> None:
        self.chunk += 1
        media = {
            "track": "inbound",
            "chunk": str(self.chunk),
            "timestamp": str(int(self.chunk * FRAME_SECONDS * 1000)),
            "payload": base64.b64encode(frame).decode(),
        }
        await self.send_json(
            {"event": "media", "sequenceNumber": self.next_seq(), "media": media, "streamSid": self.stream_sid}
        )

    async def return_mark(self, name: str) -> None:
        await self.send_json(
            {"event": "mark", "sequenceNumber": self.next_seq(), "streamSid": self.stream_sid, "mark": {"name": name}}
        )

    def on_message(self, message: Any) -> None:
        decoded = json.loads(message)
        self.received.append(decoded)
        event = decoded.get("event")
        if event == "media":
            self.played(base64.b64decode(decoded["media"]["payload"]))
        elif event == "mark":
            self.marked(decoded["mark"]["name"])
        elif event == "clear":
            self.cleared_playback(return_marks=True)

    async def hang_up(self) -> None:
        """Send `stop` and close, as Twilio does when the caller hangs up."""
        with contextlib.suppress(Exception):
            stop = {"callSid": self.call_sid}
            await self.send_json(
                {"event": "stop", "sequenceNumber": self.next_seq(), "stop": stop, "streamSid": self.stream_sid}
            )
        await self.close()


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
) -> TwilioCall:
    """Start a call the way Twilio does and return it streaming (`say`, `wait_reply`, `hang_up`)."""
    from websockets.client import connect

    call_sid = call_sid or "CA" + uuid.uuid4().hex
    stream_url, params = await asyncio.get_running_loop().run_in_executor(
        None, webhook, base_url, auth_token, call_sid, caller, account_sid
    )
    headers = {"X-Twilio-Signature": signature.compute(stream_url, {}, auth_token)}
    ws = await connect(stream_url, extra_headers=headers, max_size=2**20)
    stream_sid = "MZ" + uuid.uuid4().hex
    call = TwilioCall(ws, stream_sid, call_sid, speed)
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
    call.start()
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


def turn_reports(tracker: dict[str, Any]) -> list[TurnReport]:
    """Each customer turn of a Rasa tracker (JSON, as `GET /conversations/{id}/tracker` returns it)."""
    reports: list[TurnReport] = []
    tone = "neutral"
    for event in tracker.get("events", []):
        kind = event.get("event")
        if kind == "slot" and event.get("name") == SlotNames().tone and reports:
            tone = str(event.get("value"))
            reports[-1] = replace(reports[-1], tone=tone)
        elif kind == "action" and event.get("name") == HANDOFF_ACTION and reports:
            reports[-1] = replace(reports[-1], handoff=True)
        elif kind == "user":
            reports.append(_report(event, tone))
    return reports


def _report(event: dict[str, Any], tone: str) -> TurnReport:
    emotion = (event.get("parse_data") or {}).get(PARSE_KEY) or {}
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
    utterances: list[NDArray[np.float32]],
    tracker: Callable[[str], Awaitable[dict[str, Any]]],
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
        await call.hear_opening()  # the emotion-analysis notice, heard whole before the caller speaks
        for spoken, pcm in enumerate(utterances, start=1):
            await call.wait_reply(await call.say(pcm), timeout=reply_timeout)
            if (await tracker(call.call_sid)).get("slots", {}).get("handed_off"):
                transferred_after = spoken
                break
    finally:
        await call.hang_up()
    return CallerOutcome(call.call_sid, spoken, turn_reports(await tracker(call.call_sid)), transferred_after)
