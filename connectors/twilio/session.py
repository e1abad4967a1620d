"""One Twilio call: caller audio -> turns -> Rasa -> spoken replies, with barge-in and handoff.

The session sees frames only (never Twilio JSON) and sends frames through a
`send` callback the channel binds to its serializer and transport. All of a
call's state lives here; nothing is shared between calls but the runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from connectors.bot import BotGateway, BotReply
from connectors.frames import AudioIn, AudioOut, CallStart, CallStop, Clear, Dtmf, InboundFrame, Mark, MarkPlayed
from connectors.speech.codec import FRAME_BYTES, InboundDecoder, mulaw_from_canonical, split_frames
from connectors.speech.recognizer import NO_SPEECH_THRESHOLD, Hearing
from connectors.speech.runtime import SpeechRuntime
from connectors.speech.tts import TtsError, sentences
from connectors.speech.turns import SpeechStarted, Turn, TurnEnding, TurnEvent, TurnSegmenter, TurnSettings
from connectors.twilio.rest import HandoffTarget, TransferError, TwilioRest
from models.audio import PHONE_RATE, AudioError
from models.logs import log_event
from models.voice import CallerBaseline

logger = logging.getLogger(__name__)
CHANNEL = "twilio"
SendFrame = Callable[[Any], Awaitable[bool]]


@dataclass(frozen=True)
class CallSettings:
    """Per-call behaviour, shared by all calls of a channel."""

    turn: TurnSettings = field(default_factory=TurnSettings)
    handoff: HandoffTarget = field(default_factory=HandoffTarget)
    mark_grace_s: float = 2.0  # how long past the audio's own length to wait for Twilio's mark before transferring
    drain_s: float = 15.0  # at hang-up, how long turns already cut may still reach Rasa


@dataclass
class TurnTiming:
    """Where one turn's latency went (monotonic seconds), for logs and the benchmark."""

    cut_at: float
    heard_at: float = 0.0
    answered_at: float = 0.0
    first_audio_at: float = 0.0


class TwilioCallSession:
    """The domain logic of one bidirectional Media Stream."""

    def __init__(
        self,
        start: CallStart,
        send: SendFrame,
        runtime: SpeechRuntime,
        bot: BotGateway,
        rest: TwilioRest | None,
        settings: CallSettings | None = None,
    ) -> None:
        self.start = start
        self.settings = settings or CallSettings()
        self._send = send
        self._runtime = runtime
        self._bot = bot
        self._rest = rest
        self._decoder = InboundDecoder()
        self._segmenter = TurnSegmenter(self.settings.turn)
        self._turns: asyncio.Queue[tuple[Turn, TurnTiming, asyncio.Future[Hearing] | None] | None] = asyncio.Queue()
        # The ASR pass started on a likely end of turn (TurnEnding), keyed by where the speech ended.
        self._early: tuple[float, asyncio.Future[Hearing]] | None = None
        self.early_used = 0
        self.early_dropped = 0
        self._pending_marks: dict[str, asyncio.Event] = {}
        self._mark_ids = itertools.count(1)
        self._generation = 0  # bumped by barge-in: playback of an older reply stops
        self.transferred = False
        self.timings: list[TurnTiming] = []
        # How this caller sounds: the voice reads each turn against it. In memory for this call only.
        self.baseline = CallerBaseline()
        self._worker = asyncio.create_task(self._turn_loop(), name=f"twilio-turns-{start.call_id}")

    @property
    def call_id(self) -> str:
        return self.start.call_id

    @property
    def bot_speaking(self) -> bool:
        return bool(self._pending_marks)

    async def handle(self, frame: InboundFrame) -> None:
        """One inbound frame (after the start)."""
        if isinstance(frame, AudioIn):
            await self._on_audio(frame)
        elif isinstance(frame, MarkPlayed):
            event = self._pending_marks.pop(frame.name, None)
            if event is not None:
                event.set()
        elif isinstance(frame, Dtmf):
            log_event(logger, logging.INFO, "twilio.dtmf", call_id=self.call_id, digit=frame.digit)
        elif isinstance(frame, CallStop):
            log_event(logger, logging.INFO, "twilio.call.stopped", call_id=self.call_id)

    async def _on_audio(self, frame: AudioIn) -> None:
        if frame.track not in ("inbound", "inbound_track"):
            return  # only the caller is heard
        events = await self._runtime.light(self._segment, frame.payload)
        for event in events:
            if isinstance(event, SpeechStarted) and self.bot_speaking:
                await self._barge_in()
            elif isinstance(event, TurnEnding):
                self._hear_early(event.turn)
            elif isinstance(event, Turn):
                timing = TurnTiming(cut_at=time.monotonic())
                self.timings.append(timing)
                self._turns.put_nowait((event, timing, self._take_early(event)))

    def _hear_early(self, turn: Turn) -> None:
        """Start the Whisper pass while the end-of-turn silence is still running out.

        Most pauses this long are ends of turns; hearing now hides the ASR time inside
        the silence the VAD waits for anyway. Skipped under load, where a wasted pass
        would delay other calls.
        """
        self._drop_early()
        if self.transferred or self._runtime.overloaded:
            return
        future = asyncio.ensure_future(self._runtime.hear(turn.pcm, turn.start, turn.end, self.call_id, self.baseline))
        future.add_done_callback(_retrieve)
        self._early = (turn.speech_end, future)

    def _take_early(self, turn: Turn) -> asyncio.Future[Hearing] | None:
        """The early pass if it heard exactly this turn (the caller did not go on talking)."""
        if self._early is not None and self._early[0] == turn.speech_end and not turn.forced:
            future = self._early[1]
            self._early = None
            self.early_used += 1
            return future
        self._drop_early()
        return None

    def _drop_early(self) -> None:
        if self._early is not None:
            self._early[1].cancel()
            self._early = None
            self.early_dropped += 1

    def _segment(self, payload: bytes) -> list[TurnEvent]:
        return self._segmenter.push(self._decoder.decode(payload))

    async def _barge_in(self) -> None:
        """The caller talks over the bot: Twilio drops its queued audio and returns the pending marks."""
        self._generation += 1
        log_event(logger, logging.INFO, "twilio.barge_in", call_id=self.call_id, marks=len(self._pending_marks))
        await self._send(Clear())

    async def _turn_loop(self) -> None:
        # One turn at a time, in order: replies must not overtake each other.
        while (item := await self._turns.get()) is not None:
            turn, timing, early = item
            try:
                await self._answer(turn, timing, early)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed turn must not end the call
                log_event(logger, logging.ERROR, "twilio.turn.failed", call_id=self.call_id, error=repr(exc))

    async def _answer(self, turn: Turn, timing: TurnTiming, early: asyncio.Future[Hearing] | None = None) -> None:
        if self.transferred:
            # The call is on its way to a person; the bot no longer answers.
            log_event(logger, logging.INFO, "twilio.turn.after_handoff", call_id=self.call_id)
            if early is not None:
                early.cancel()
            return
        try:
            heard = await (early or self._runtime.hear(turn.pcm, turn.start, turn.end, self.call_id, self.baseline))
        except AudioError as exc:
            log_event(logger, logging.WARNING, "twilio.turn.unusable", call_id=self.call_id, error=str(exc))
            return
        timing.heard_at = time.monotonic()
        if not heard.text or (heard.no_speech_prob > NO_SPEECH_THRESHOLD and len(heard.text) < 3):
            log_event(logger, logging.INFO, "twilio.turn.no_speech", call_id=self.call_id, seconds=turn.seconds)
            return
        heard.keep_in(self.baseline)
        reply = await self._bot.send(self.call_id, heard.text, self.metadata(heard.voice))
        timing.answered_at = time.monotonic()
        log_event(
            logger,
            logging.INFO,
            "twilio.turn.answered",
            call_id=self.call_id,
            seconds=round(turn.seconds, 2),
            voice=heard.voice is not None,
            early=early is not None,
            encode_ms=round(heard.encode_ms),
            decode_ms=round(heard.decode_ms),
            rasa_ms=round((timing.answered_at - timing.heard_at) * 1000),
            tone=reply.tone,
            handoff=reply.handoff,
        )
        await self._reply(reply, timing)

    def metadata(self, voice: Any) -> dict[str, Any]:
        """The `toneline` block for Rasa (plugin/metadata.py reads it)."""
        block: dict[str, Any] = {"channel": CHANNEL, "role": "customer", "call_id": self.call_id}
        block["customer_id"] = self.start.customer_id or self.call_id
        if voice is not None:
            block["voice"] = voice.to_dict()
        return {"toneline": block}

    async def _reply(self, reply: BotReply, timing: TurnTiming) -> None:
        generation = self._generation
        marks: list[tuple[str, asyncio.Event, float]] = []
        for text in reply.texts:
            for sentence in sentences(text):
                if generation != self._generation:
                    break  # barged in: the rest of this reply is not wanted
                sent = await self._speak(sentence, reply.tone, timing)
                if sent is not None:
                    marks.append(sent)
        if reply.handoff and not self.transferred:
            await self._transfer(marks)

    async def _speak(self, text: str, tone: str, timing: TurnTiming) -> tuple[str, asyncio.Event, float] | None:
        try:
            pcm = await self._runtime.speak(text, tone)
        except TtsError as exc:
            log_event(logger, logging.ERROR, "twilio.tts.failed", call_id=self.call_id, error=str(exc))
            return None
        payload = await self._runtime.light(mulaw_from_canonical, pcm)
        for chunk in split_frames(payload, FRAME_BYTES):
            if not await self._send(AudioOut(chunk)):
                return None
            if not timing.first_audio_at:
                timing.first_audio_at = time.monotonic()
        name = f"reply-{next(self._mark_ids)}"
        event = asyncio.Event()
        self._pending_marks[name] = event
        await self._send(Mark(name))
        return name, event, len(payload) / PHONE_RATE

    async def _transfer(self, marks: list[tuple[str, asyncio.Event, float]]) -> None:
        """Let the handoff announcement finish playing (Twilio returns its mark), then move the call."""
        self.transferred = True
        if marks:
            wait = sum(seconds for _, _, seconds in marks) + self.settings.mark_grace_s
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(marks[-1][1].wait(), wait)
        if self._rest is None:
            log_event(logger, logging.ERROR, "twilio.handoff.unconfigured", call_id=self.call_id)
            return
        try:
            await self._rest.update_call(self.call_id, self.settings.handoff.twiml())
            log_event(logger, logging.INFO, "twilio.handoff.transferred", call_id=self.call_id)
        except TransferError as exc:
            log_event(logger, logging.ERROR, "twilio.handoff.failed", call_id=self.call_id, status=exc.status)

    async def close(self) -> None:
        """End of call: turns already cut still reach Rasa (for the record), then the worker stops."""
        self._drop_early()
        self._turns.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), self.settings.drain_s)
        except asyncio.TimeoutError:
            log_event(logger, logging.WARNING, "twilio.call.drain_timeout", call_id=self.call_id)
            self._worker.cancel()
        except Exception as exc:
            log_event(logger, logging.ERROR, "twilio.call.worker_failed", call_id=self.call_id, error=repr(exc))
        finally:
            # Also when the server cancels the handler mid-drain (the peer closed its socket): the shielded
            # worker still delivers the turns already cut, and the call's end is logged either way.
            for event in self._pending_marks.values():
                event.set()
            # The baseline's turn count only: the baseline itself characterises a voice and is never logged.
            log_event(
                logger,
                logging.INFO,
                "twilio.call.closed",
                call_id=self.call_id,
                turns=len(self.timings),
                baseline_turns=self.baseline.turns,
            )


def _retrieve(future: asyncio.Future[Hearing]) -> None:
    # A dropped early pass may fail or be cancelled with nobody awaiting it; say so once, quietly.
    if not future.cancelled() and future.exception() is not None:
        log_event(logger, logging.DEBUG, "twilio.turn.early_failed", error=repr(future.exception()))
