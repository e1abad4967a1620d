"""One AudioHook session: the customer's audio -> turns -> emotion records in Redis.

Only the `external` (customer) channel is decoded and analysed; the agent's
audio is dropped at the door. The session sees typed messages only (never
AudioHook JSON), and never speaks.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

from connectors.audiohook.recorder import CHANNEL, EmotionRecorder
from connectors.audiohook.serializer import CUSTOMER, Open
from connectors.speech.codec import InboundDecoder
from connectors.speech.recognizer import NO_SPEECH_THRESHOLD
from connectors.speech.runtime import SpeechRuntime
from connectors.speech.turns import Turn, TurnEvent, TurnSegmenter, TurnSettings
from models.audio import AudioError
from models.logs import log_event
from models.text import CONTEXT_TURNS
from models.voice import CallerBaseline
from plugin.routing import TurnRecord
from plugin.state import ConversationInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SessionSettings:
    """Per-session behaviour, shared by all sessions of a channel."""

    turn: TurnSettings = field(default_factory=TurnSettings)
    drain_s: float = 20.0  # at close, how long turns already cut may still be analysed


class AudioHookSession:
    """Domain logic of one monitored conversation."""

    def __init__(
        self,
        session_id: str,
        start: Open,
        runtime: SpeechRuntime,
        recorder: EmotionRecorder,
        executor: Executor,
        settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.start = start
        self.settings = settings or SessionSettings()
        self.info = ConversationInfo(
            conversation_id=start.conversation_id,
            customer_id=start.participant.ani or start.participant.id or start.conversation_id,
            channel=CHANNEL,
        )
        self.paused = False
        self.turns_cut = 0
        self.history: list[TurnRecord] = []
        # The customer's last words, in memory for the call only: the text model reads a turn in context.
        self.said: deque[str] = deque(maxlen=CONTEXT_TURNS)
        # How the customer sounds: the voice reads each turn against it. In memory for the session only.
        self.baseline = CallerBaseline()
        self._runtime = runtime
        self._recorder = recorder
        self._executor = executor
        self._decoder = InboundDecoder()
        self._segmenter = TurnSegmenter(self.settings.turn)
        self._queue: asyncio.Queue[Turn | None] = asyncio.Queue()
        self._worker = asyncio.create_task(self._turn_loop(), name=f"audiohook-turns-{session_id}")

    @property
    def conversation_id(self) -> str:
        return self.info.conversation_id

    async def audio(self, channels: dict[str, bytes]) -> None:
        """One binary frame, split per channel; only the customer's bytes go further."""
        payload = channels.get(CUSTOMER)
        if self.paused or not payload:
            return
        for event in await self._runtime.light(self._segment, payload):
            self._enqueue(event)

    def _segment(self, payload: bytes) -> list[TurnEvent]:
        return self._segmenter.push(self._decoder.decode(payload))

    def _enqueue(self, event: TurnEvent) -> None:
        if isinstance(event, Turn):
            self.turns_cut += 1
            self._queue.put_nowait(event)

    def pause(self) -> None:
        self.paused = True
        log_event(logger, logging.INFO, "audiohook.session.paused", session_id=self.session_id)

    def resume(self) -> None:
        self.paused = False
        log_event(logger, logging.INFO, "audiohook.session.resumed", session_id=self.session_id)

    async def _turn_loop(self) -> None:
        # One turn at a time, in order: the routing decision depends on the turns before it.
        while (turn := await self._queue.get()) is not None:
            try:
                await self._analyse(turn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # one failed turn must not end the monitoring
                log_event(logger, logging.ERROR, "audiohook.turn.failed", session_id=self.session_id, error=repr(exc))

    async def _analyse(self, turn: Turn) -> None:
        try:
            heard = await self._runtime.hear(turn.pcm, turn.start, turn.end, self.session_id, self.baseline)
        except AudioError as exc:
            log_event(logger, logging.WARNING, "audiohook.turn.unusable", session_id=self.session_id, error=str(exc))
            return
        if not heard.text or (heard.no_speech_prob > NO_SPEECH_THRESHOLD and len(heard.text) < 3):
            log_event(logger, logging.INFO, "audiohook.turn.no_speech", session_id=self.session_id)
            return
        heard.keep_in(self.baseline)
        message_id = f"{self.session_id}:{turn.start:.3f}"
        loop = asyncio.get_running_loop()
        recorded = await loop.run_in_executor(
            self._executor, self._recorder.turn, self.info, self.history, heard, message_id, list(self.said)
        )
        self.said.append(heard.text)
        if recorded is None:
            return
        log_event(
            logger,
            logging.INFO,
            "audiohook.turn.recorded",
            session_id=self.session_id,
            conversation_id=self.conversation_id,
            start=turn.start,
            seconds=round(turn.seconds, 2),
            label=recorded.record.label,
            voice=heard.voice is not None,
            stored=recorded.stored,
            escalate=recorded.decision.escalate,
        )

    async def close(self) -> None:
        """End of session: a turn in progress is cut, turns already cut are still analysed, then the worker stops."""
        if not self.paused:
            for event in await self._runtime.light(self._segmenter.flush):
                self._enqueue(event)
        self._queue.put_nowait(None)
        try:
            await asyncio.wait_for(asyncio.shield(self._worker), self.settings.drain_s)
        except asyncio.TimeoutError:
            log_event(logger, logging.WARNING, "audiohook.session.drain_timeout", session_id=self.session_id)
            self._worker.cancel()
        finally:
            # Logged also when the server cancels the handler mid-drain; the shielded worker finishes its turns.
            log_event(
                logger,
                logging.INFO,
                "audiohook.session.closed",
                session_id=self.session_id,
                conversation_id=self.conversation_id,
                turns=len(self.history),
                baseline_turns=self.baseline.turns,  # a count only: the baseline itself is never logged
            )
