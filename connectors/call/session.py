"""One phone call with the bot, for any provider: caller audio -> turns -> Rasa -> spoken replies.

The session sees frames only (never a provider's JSON) and sends frames through
a `send` callback the stream binds to the provider's serializer and transport.
What differs between providers comes in a `Provider`: the channel name (in the
turn's metadata and every log event), the inbound track names, the wire codec
and the transfer adapter. All of a call's state lives here; nothing is shared
between calls but the speech runtime.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Awaitable, Callable

from connectors.bot import BotGateway, BotReply
from connectors.call.transfer import TransferAdapter, TransferError
from connectors.call.worker import QueueWorker
from connectors.frames import (
    AudioIn,
    AudioOut,
    CallStart,
    CallStop,
    Clear,
    Dtmf,
    InboundFrame,
    Mark,
    MarkPlayed,
    OutboundFrame,
    PlaybackCleared,
)
from connectors.speech.codec import WireCodec
from connectors.speech.recognizer import Hearing
from connectors.speech.runtime import SpeechRuntime
from connectors.speech.tts import TtsError, sentences
from models.audio import AudioError
from models.emotion import EmotionEstimate
from models.logs import log_event
from models.turns import SpeechStarted, Turn, TurnEnding, TurnEvent, TurnSegmenter, TurnSettings
from models.voice import CallerBaseline
from plugin.metadata import NEUTRAL_TONE, TurnMetadata

logger = logging.getLogger(__name__)
SendFrame = Callable[[OutboundFrame], Awaitable[bool]]
# Whether a customer opted out of emotion analysis (None: not known now, e.g. Redis is away): `plugin.consent`.
ConsentLookup = Callable[[str], "bool | None"]
# Keeps a turn's pooled voice statistics for adaptation (conversation, turn ref, values): `plugin.corrections`.
RetainVoice = Callable[[str, str, "list[float]"], None]


@dataclass(frozen=True)
class Provider:
    """What a telephony provider contributes to the call core."""

    channel: str  # `toneline.channel` in the turn's metadata, and the prefix of every log event
    codec: WireCodec
    tracks: tuple[str, ...]  # inbound tracks that carry the caller (the bot's own audio is never heard)
    transfer: TransferAdapter | None = None  # None: handoffs are logged as unconfigured


@dataclass(frozen=True)
class RepromptSettings:
    """What the bot says when a caller spoke but Whisper heard no words in it (an IVR's "no match").

    Without it a caller on a bad line hears nothing back and does not know whether
    to repeat. A short sound (a cough, a click, a word swallowed by the line) passes
    quietly, and after `max_in_a_row` reprompts the bot waits for words instead of
    nagging a caller in a noisy place; any turn with words starts the count again.
    """

    text: str = "Sorry, I didn't catch that. Could you say it again?"
    min_speech_s: float = 1.0  # the turn from its start (VAD pre-roll included) to the end of its speech
    max_in_a_row: int = 2

    def __post_init__(self) -> None:
        _check_prompt("reprompt", self.text, self.max_in_a_row)
        if self.min_speech_s < 0:
            raise ValueError(f"reprompt needs min_speech_s >= 0, got {self.min_speech_s}")


@dataclass(frozen=True)
class NoInputSettings:
    """What the bot says when the caller is silent after it finished speaking (an IVR's "no input").

    A caller who did not hear the question, or put the phone down, otherwise waits
    in silence with the bot. The timer starts when the provider says the bot's
    audio has played and stops at the caller's first sound; after `max_in_a_row`
    prompts without words from the caller the bot stays quiet.
    """

    after_s: float = 8.0
    text: str = "Are you still there?"
    max_in_a_row: int = 2

    def __post_init__(self) -> None:
        _check_prompt("no-input prompt", self.text, self.max_in_a_row)
        if self.after_s <= 0:
            raise ValueError(f"no-input prompt needs after_s > 0, got {self.after_s}")


def _check_prompt(what: str, text: str, max_in_a_row: int) -> None:
    if not text.strip():
        raise ValueError(f"{what} text is empty: give a sentence, or turn it off")
    if max_in_a_row < 1:
        raise ValueError(f"{what} needs max_in_a_row >= 1, got {max_in_a_row}")


# How a caller stops the bot talking. "speech": as soon as the VAD hears speech (the fastest; a cough or an
# "mm-hm" stops the bot too). "words": once the caller's turn is cut and Whisper heard words in it (noise and
# backchannels never stop the bot, at the cost of the turn's length and the end silence). "off": never (a
# disclosure that must play whole).
BARGE_IN_MODES = ("speech", "words", "off")


@dataclass(frozen=True)
class CallSettings:
    """Per-call behaviour, shared by all calls of a channel."""

    turn: TurnSettings = field(default_factory=TurnSettings)
    reprompt: RepromptSettings | None = field(default_factory=RepromptSettings)  # None: no-word turns pass quietly
    no_input: NoInputSettings | None = field(default_factory=NoInputSettings)  # None: the bot waits quietly
    barge_in: str = "speech"  # one of BARGE_IN_MODES
    mark_grace_s: float = 2.0  # how long past the audio's own length to wait for the provider's mark
    drain_s: float = 15.0  # at hang-up, how long turns already cut may still reach Rasa
    # The emotion-analysis notice spoken before anything else, whole (no barge-in); None: none (toneline.yml).
    disclosure: str | None = None

    def __post_init__(self) -> None:
        if self.barge_in not in BARGE_IN_MODES:
            raise ValueError(f"barge_in must be one of {', '.join(BARGE_IN_MODES)}, got {self.barge_in!r}")


@dataclass(frozen=True)
class CallServices:
    """What all calls of a channel share: the speech runtime, the provider's parts and the call settings."""

    runtime: SpeechRuntime
    provider: Provider
    settings: CallSettings = field(default_factory=CallSettings)
    consent: ConsentLookup | None = None  # None: every caller's voice is read (no consent store configured)
    retain: RetainVoice | None = None  # None: voice features are never kept (adaptation.retain off)


@dataclass
class ReplyTiming:
    """Where one turn's latency went (monotonic seconds), for logs and the benchmark."""

    cut_at: float
    heard_at: float = 0.0
    answered_at: float = 0.0
    first_audio_at: float = 0.0


@dataclass(frozen=True)
class _Spoken:
    """One sentence sent: the mark that follows it, its event and how long it plays."""

    mark: str
    played: asyncio.Event
    seconds: float


_Queued = tuple[Turn, ReplyTiming, "asyncio.Future[Hearing] | None"]


class CallSession:
    """The domain logic of one bidirectional call stream."""

    def __init__(self, start: CallStart, send: SendFrame, bot: BotGateway, services: CallServices) -> None:
        self.start = start
        self.provider = provider = services.provider
        self.settings = services.settings
        self._send = send
        self._runtime = services.runtime
        self._bot = bot
        self._decoder = provider.codec.decoder()
        self._segmenter = TurnSegmenter(self.settings.turn)
        # The ASR pass started on a likely end of turn (TurnEnding), keyed by where the speech ended.
        self._early: tuple[float, asyncio.Future[Hearing]] | None = None
        self.early_used = 0
        self.early_dropped = 0
        self._pending_marks: dict[str, asyncio.Event] = {}
        self._mark_ids = itertools.count(1)
        self._generation = 0  # bumped by barge-in: playback of an older reply stops
        self.transferred = False
        self.timings: list[ReplyTiming] = []
        self._tone = NEUTRAL_TONE  # the last reply's: a reprompt is said the way the bot last spoke
        self._reprompts_in_a_row = 0
        self._no_input: asyncio.Task[None] | None = None  # the no-input timer, while one runs
        self._no_inputs_in_a_row = 0
        self._caller_sound_at = 0.0  # when the caller last started speaking or ended a turn (monotonic)
        self._turns_open = 0  # turns cut and not yet answered
        # How this caller sounds: the voice reads each turn against it. In memory for this call only.
        self.baseline = CallerBaseline()
        self._consent = services.consent
        self._retain = services.retain
        self.opted_out = False  # the caller opted out of emotion analysis: their voice is not read
        self.disclosed = False  # the notice was spoken (the turn's metadata says so: Rasa does not repeat it)
        self._disclosure_marks: set[str] = set()
        self._opening: asyncio.Future[None] | None = None  # consent, then the notice (`begin`)
        self._worker: QueueWorker[_Queued] = QueueWorker(self._answer, provider.channel, "call", call_id=start.call_id)

    @property
    def call_id(self) -> str:
        return self.start.call_id

    @property
    def bot_speaking(self) -> bool:
        return bool(self._pending_marks)

    @property
    def disclosing(self) -> bool:
        """The notice is still being sent or playing: nothing the caller does interrupts it."""
        opening = self._opening is not None and not self._opening.done()
        return opening or bool(self._disclosure_marks & self._pending_marks.keys())

    async def begin(self) -> None:
        """Open the call: the caller's consent, then the emotion-analysis notice, spoken whole. It runs beside the
        stream (which goes on reading the caller, and sees a protocol error at once); turns wait for it."""
        self._opening = asyncio.ensure_future(self._open())

    async def _open(self) -> None:
        await self.refresh_consent()
        notice = self.settings.disclosure
        if notice is None:
            return
        timing = ReplyTiming(cut_at=time.monotonic())
        for sentence in sentences(notice):
            spoken = await self._speak(sentence, NEUTRAL_TONE, timing)
            if spoken is not None:
                self._disclosure_marks.add(spoken.mark)
        self.disclosed = bool(self._disclosure_marks)
        self._log(logging.INFO, "disclosure.spoken", sentences=len(self._disclosure_marks))

    async def opened(self) -> None:
        """Wait until the call is open: consent known (no voice read before it), the notice sent (no reply before
        it). A failed opening is logged and the call goes on."""
        if self._opening is None:
            return
        try:
            await asyncio.shield(self._opening)
        except Exception as exc:  # the notice's TTS or the consent store: the caller is still answered
            self._log(logging.ERROR, "disclosure.failed", error=repr(exc))

    async def refresh_consent(self) -> None:
        """Ask the consent store whether this caller opted out (kept as it was while the store cannot say)."""
        if self._consent is None:
            return
        customer = self.start.customer_id or self.call_id
        opted_out = await asyncio.get_running_loop().run_in_executor(None, self._consent, customer)
        if opted_out is not None and opted_out != self.opted_out:
            self.opted_out = opted_out
            self._log(logging.INFO, "consent.changed", opted_out=opted_out)

    def _log(self, level: int, event: str, **fields: Any) -> None:
        log_event(logger, level, f"{self.provider.channel}.{event}", call_id=self.call_id, **fields)

    async def handle(self, frame: InboundFrame) -> None:
        """One inbound frame (after the start)."""
        if isinstance(frame, AudioIn):
            await self._on_audio(frame)
        elif isinstance(frame, MarkPlayed):
            event = self._pending_marks.pop(frame.name, None)
            if event is not None:
                event.set()
                if not self._pending_marks:  # the bot's last sentence has played: the caller's turn to speak
                    self._arm_no_input()
        elif isinstance(frame, PlaybackCleared):
            self._release_marks()
        elif isinstance(frame, Dtmf):
            self._log(logging.INFO, "dtmf", digit=frame.digit)
        elif isinstance(frame, CallStop):
            self._log(logging.INFO, "call.stopped")

    async def _on_audio(self, frame: AudioIn) -> None:
        if frame.track not in self.provider.tracks:
            return  # only the caller is heard
        for event in await self._runtime.light(self._segment, frame.payload):
            if isinstance(event, SpeechStarted):
                self._caller_sound_at = time.monotonic()
                if self.bot_speaking and self.settings.barge_in == "speech":
                    await self._barge_in()
            elif isinstance(event, TurnEnding):
                self._hear_early(event.turn)
            elif isinstance(event, Turn):
                self._caller_sound_at = time.monotonic()
                self._turns_open += 1
                timing = ReplyTiming(cut_at=time.monotonic())
                self.timings.append(timing)
                self._worker.put((event, timing, self._take_early(event)))

    def _segment(self, payload: bytes) -> list[TurnEvent]:
        return self._segmenter.push(self._decoder.decode(payload))

    def _hear_early(self, turn: Turn) -> None:
        """Start the ASR pass while the end-of-turn silence is still running out.

        Most pauses this long are ends of turns; hearing now hides the ASR time inside
        the silence the VAD waits for anyway. Skipped under load, where a wasted pass
        would delay other calls.
        """
        self._drop_early()
        if self.transferred or self._runtime.overloaded or (self._opening is not None and not self._opening.done()):
            return  # while the call opens, consent is not known yet: the turn is heard once it is
        future = asyncio.ensure_future(self._hearing(turn))
        future.add_done_callback(partial(_retrieve, self.provider.channel))
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

    async def _barge_in(self) -> None:
        """The caller talks over the bot: the provider drops its queued audio (never the notice's)."""
        if self.disclosing:
            self._log(logging.INFO, "barge_in.held", reason="disclosure")
            return
        self._generation += 1
        self._log(logging.INFO, "barge_in", marks=len(self._pending_marks))
        await self._send(Clear())

    async def _answer(self, item: _Queued) -> None:
        try:
            await self._answer_turn(item)
        finally:
            self._turns_open -= 1

    async def _answer_turn(self, item: _Queued) -> None:
        turn, timing, early = item
        await self.opened()
        if self.transferred:
            # The call is on its way to a person; the bot no longer answers.
            self._log(logging.INFO, "turn.after_handoff")
            if early is not None:
                early.cancel()
            return
        heard = await self._hear(turn, early)
        if heard is None:
            return
        timing.heard_at = time.monotonic()
        if heard.says_nothing:
            await self._no_words(turn, timing)
            return
        self._reprompts_in_a_row = self._no_inputs_in_a_row = 0
        if self.settings.barge_in == "words" and self.bot_speaking:
            await self._barge_in()
        # Only a turn the bot answers is offered to the baseline (an early pass may be dropped), which takes it if calm.
        heard.keep_in(self.baseline)
        keep = self._retain is not None and heard.stats is not None and not self.opted_out
        ref = uuid.uuid4().hex if keep else None
        reply = await self._bot.send(self.call_id, heard.text, self.metadata(heard.voice, ref))
        timing.answered_at = time.monotonic()
        self._log(
            logging.INFO,
            "turn.answered",
            seconds=round(turn.seconds, 2),
            voice=heard.voice is not None,
            early=early is not None,
            encode_ms=round(heard.encode_ms),
            decode_ms=round(heard.decode_ms),
            rasa_ms=round((timing.answered_at - timing.heard_at) * 1000),
            tone=reply.tone,
            handoff=reply.handoff,
        )
        self._tone = reply.tone
        await self._reply(reply, timing)
        # The turn may have opted the caller out (or back in): the next turn's voice is read accordingly.
        await self.refresh_consent()
        if ref is not None:
            await self._keep_voice(ref, heard)

    async def _keep_voice(self, ref: str, heard: Hearing) -> None:
        """The turn's pooled voice statistics for adaptation, once the bot answered and only if the caller has
        not opted out (this very turn may have said so); Rasa kept the words under the same `turn_ref`."""
        if self._retain is None or heard.stats is None or self.opted_out:
            return
        values = [float(x) for x in heard.stats]
        await asyncio.get_running_loop().run_in_executor(None, self._retain, self.call_id, ref, values)

    async def _no_words(self, turn: Turn, timing: ReplyTiming) -> None:
        """A turn Whisper heard no words in: reprompt (`RepromptSettings`) or let it pass quietly."""
        reprompt = self.settings.reprompt
        spoke = turn.speech_end - turn.start
        if reprompt is None or spoke < reprompt.min_speech_s or self._reprompts_in_a_row >= reprompt.max_in_a_row:
            self._log(logging.INFO, "turn.no_speech", seconds=round(turn.seconds, 2))
            if not self.bot_speaking:  # nothing was said back: the silence counts from this sound
                self._arm_no_input()
            return
        self._reprompts_in_a_row += 1
        self._log(logging.INFO, "turn.reprompted", seconds=round(turn.seconds, 2), in_a_row=self._reprompts_in_a_row)
        await self._reply(BotReply((reprompt.text,), self._tone), timing)

    def _arm_no_input(self) -> None:
        """Start (again) the wait for the caller after the bot finished speaking."""
        self._disarm_no_input()
        no_input = self.settings.no_input
        if no_input is None or self.transferred or self._no_inputs_in_a_row >= no_input.max_in_a_row:
            return
        self._no_input = asyncio.ensure_future(self._prompt_after(no_input))

    def _disarm_no_input(self) -> None:
        if self._no_input is not None:
            self._no_input.cancel()
            self._no_input = None

    async def _prompt_after(self, no_input: NoInputSettings) -> None:
        """The no-input timer: `after_s` of silence from the caller, then the prompt.

        Whoever has the floor when it runs out (the bot talking, the caller mid-turn, a turn
        being answered) ends it: what ends their turn arms it again. A sound too short to be a
        turn only moves the start of the silence.
        """
        armed, wait = time.monotonic(), no_input.after_s
        while True:
            await asyncio.sleep(wait)
            if self.transferred or self.bot_speaking or self._segmenter.in_turn or self._turns_open:
                return
            quiet = time.monotonic() - max(armed, self._caller_sound_at)
            if quiet >= no_input.after_s - 0.01:
                break
            wait = no_input.after_s - quiet
        self._no_inputs_in_a_row += 1
        self._log(logging.INFO, "turn.no_input", after_s=no_input.after_s, in_a_row=self._no_inputs_in_a_row)
        try:
            await self._reply(BotReply((no_input.text,), self._tone), ReplyTiming(cut_at=time.monotonic()))
        except Exception as exc:  # nobody awaits this task: say what went wrong instead of losing it
            self._log(logging.ERROR, "turn.no_input_failed", error=repr(exc))

    def _hearing(self, turn: Turn) -> Awaitable[Hearing]:
        """The ASR pass of a turn, with the voice head only when the caller has not opted out."""
        return self._runtime.hear(
            turn.pcm, turn.start, turn.end, self.call_id, self.baseline, analyse=not self.opted_out
        )

    async def _hear(self, turn: Turn, early: asyncio.Future[Hearing] | None) -> Hearing | None:
        try:
            return await (early or self._hearing(turn))
        except AudioError as exc:
            self._log(logging.WARNING, "turn.unusable", error=str(exc))
            return None

    def metadata(self, voice: EmotionEstimate | None, turn_ref: str | None = None) -> dict[str, Any]:
        """The turn's metadata for Rasa, in the turn's contract (`plugin.metadata.TurnMetadata`)."""
        customer = self.start.customer_id or self.call_id
        estimates = () if voice is None else (voice,)
        return TurnMetadata(
            customer,
            self.provider.channel,
            estimates=estimates,
            call_id=self.call_id,
            disclosed=self.disclosed,
            turn_ref=turn_ref,
        ).to_dict()

    async def _reply(self, reply: BotReply, timing: ReplyTiming) -> None:
        generation = self._generation
        spoken: list[_Spoken] = []
        for text in reply.texts:
            for sentence in sentences(text):
                if generation != self._generation:
                    break  # barged in: the rest of this reply is not wanted
                sent = await self._speak(sentence, reply.tone, timing)
                if sent is not None:
                    spoken.append(sent)
        if reply.handoff and not self.transferred:
            await self._transfer(spoken)

    async def _speak(self, text: str, tone: str, timing: ReplyTiming) -> _Spoken | None:
        try:
            pcm = await self._runtime.speak(text, tone)
        except TtsError as exc:
            self._log(logging.ERROR, "tts.failed", error=str(exc))
            return None
        codec = self.provider.codec
        frames = await self._runtime.light(codec.frames, pcm)
        for chunk in frames:
            if not await self._send(AudioOut(chunk)):
                return None  # the socket is gone
            if not timing.first_audio_at:
                timing.first_audio_at = time.monotonic()
        name = f"reply-{next(self._mark_ids)}"
        played = asyncio.Event()
        self._pending_marks[name] = played
        await self._send(Mark(name))
        return _Spoken(name, played, len(frames) * codec.frame_bytes / codec.bytes_per_second)

    async def _transfer(self, spoken: list[_Spoken]) -> None:
        """Let the handoff announcement finish playing (the provider returns its mark), then move the call."""
        self.transferred = True
        if spoken:
            wait = sum(s.seconds for s in spoken) + self.settings.mark_grace_s
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(spoken[-1].played.wait(), wait)
        if self.provider.transfer is None:
            self._log(logging.ERROR, "handoff.unconfigured")
            return
        try:
            await self.provider.transfer.transfer(self.start)
            self._log(logging.INFO, "handoff.transferred")
        except TransferError as exc:
            self._log(logging.ERROR, "handoff.failed", status=exc.status)

    def _release_marks(self) -> None:
        for event in self._pending_marks.values():
            event.set()
        self._pending_marks.clear()

    async def close(self) -> None:
        """End of call: turns already cut still reach Rasa (for the record), then the worker stops.

        The stream is gone, so no mark will come back: a reply or handoff waiting for its audio to
        finish playing goes on at once instead of waiting out its timeout.
        """
        self._drop_early()
        self._disarm_no_input()
        if self._opening is not None and not self._opening.done():
            self._opening.cancel()  # the stream is gone: the rest of the notice has nobody to hear it
        self._release_marks()
        try:
            await self._worker.drain(self.settings.drain_s)
        finally:  # logged even if the server cancels this mid-drain (the worker finishes on its own)
            # The baseline's turn counts only: the baseline itself characterises a voice and is never logged.
            self._log(
                logging.INFO,
                "call.closed",
                turns=len(self.timings),
                baseline_turns=self.baseline.turns,
                baseline_passed_over=self.baseline.passed_over,
            )


def _retrieve(channel: str, future: asyncio.Future[Hearing]) -> None:
    # A dropped early pass may fail or be cancelled with nobody awaiting it; say so once, quietly.
    if not future.cancelled() and future.exception() is not None:
        log_event(logger, logging.DEBUG, f"{channel}.turn.early_failed", error=repr(future.exception()))
