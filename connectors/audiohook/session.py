"""One AudioHook session: the customer's audio -> turns -> the plugin's turn service.

Only the `external` (customer) channel is decoded and analysed; the agent's
audio is dropped at the door. The session sees typed messages only (never
AudioHook JSON), and never speaks. What a turn means (fusion, rules, cooldown,
the customer's past, Redis, the handoff case) is `plugin.turn.TurnService`'s,
as for every other channel; the session holds only the call's mechanics and
its in-memory log.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from concurrent.futures import Executor
from dataclasses import dataclass, field

from connectors.audiohook.serializer import CUSTOMER, Open
from connectors.call.worker import QueueWorker
from connectors.speech.codec import InboundDecoder
from connectors.speech.runtime import SpeechRuntime
from models.audio import AudioError
from models.logs import log_event
from models.text import CONTEXT_TURNS
from models.turns import Turn, TurnEvent, TurnSegmenter, TurnSettings
from models.voice import CallerBaseline
from plugin.metadata import TurnMetadata
from plugin.state import ConversationInfo
from plugin.turn import ConversationLog, DecisionOutcome, TurnService

logger = logging.getLogger(__name__)
CHANNEL = "genesys"


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
        service: TurnService,
        executor: Executor,
        settings: SessionSettings | None = None,
    ) -> None:
        self.session_id = session_id
        self.start = start
        self.settings = settings or SessionSettings()
        customer_id = start.participant.ani or start.participant.id or start.conversation_id
        self.info = ConversationInfo(start.conversation_id, customer_id, CHANNEL)
        self.paused = False
        # The call's turns and its last escalation (the cooldown), as the turn service reads them.
        self.log = ConversationLog(self.info)
        # The customer's last words, in memory for the call only: the text model reads a turn in context.
        self.said: deque[str] = deque(maxlen=CONTEXT_TURNS)
        # How the customer sounds: the voice reads each turn against it. In memory for the session only.
        self.baseline = CallerBaseline()
        self._runtime = runtime
        self._service = service
        self._executor = executor
        self._decoder = InboundDecoder()
        self._segmenter = TurnSegmenter(self.settings.turn)
        # One turn at a time, in order: the routing decision depends on the turns before it.
        self._worker: QueueWorker[Turn] = QueueWorker(self._analyse, "audiohook", "session", session_id=session_id)

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
            self._worker.put(event)

    def pause(self) -> None:
        self.paused = True
        log_event(logger, logging.INFO, "audiohook.session.paused", session_id=self.session_id)

    def resume(self) -> None:
        self.paused = False
        log_event(logger, logging.INFO, "audiohook.session.resumed", session_id=self.session_id)

    async def _analyse(self, turn: Turn) -> None:
        # A customer who opted out (on any channel) gets the ASR pass only: the voice head never runs.
        loop = asyncio.get_running_loop()
        unread = TurnMetadata(self.info.customer_id, CHANNEL)
        consent = await loop.run_in_executor(self._executor, self._service.consent, self.info.customer_id, unread, None)
        try:
            heard = await self._runtime.hear(
                turn.pcm, turn.start, turn.end, self.session_id, self.baseline, analyse=not consent.opted_out
            )
        except AudioError as exc:
            log_event(logger, logging.WARNING, "audiohook.turn.unusable", session_id=self.session_id, error=str(exc))
            return
        if heard.says_nothing:
            log_event(logger, logging.INFO, "audiohook.turn.no_speech", session_id=self.session_id)
            return
        heard.keep_in(self.baseline)  # joins only if it reads calm without the baseline
        message_id = f"{self.session_id}:{turn.start:.3f}"
        meta = TurnMetadata(self.info.customer_id, CHANNEL, estimates=(heard.voice,) if heard.voice else ())
        outcome = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._service.turn, self.log, heard.text, meta, message_id, list(self.said)
        )
        self.said.append(heard.text)
        if outcome is not None:
            self._logged(turn, outcome, heard.voice is not None)

    def _logged(self, turn: Turn, outcome: DecisionOutcome, voice: bool) -> None:
        log_event(
            logger,
            logging.INFO,
            "audiohook.turn.recorded",
            session_id=self.session_id,
            conversation_id=self.conversation_id,
            start=turn.start,
            seconds=round(turn.seconds, 2),
            label=outcome.record.label if outcome.record else None,
            voice=voice,
            stored=outcome.stored,
            escalate=outcome.decision.escalate,
            case_id=outcome.case_id,
        )

    async def close(self) -> None:
        """End of session: a turn in progress is cut, turns already cut are still analysed, then the worker stops."""
        if not self.paused:
            for event in await self._runtime.light(self._segmenter.flush):
                self._enqueue(event)
        try:
            await self._worker.drain(self.settings.drain_s)
        finally:  # logged even if the server cancels this mid-drain (the worker finishes on its own)
            log_event(
                logger,
                logging.INFO,
                "audiohook.session.closed",
                session_id=self.session_id,
                conversation_id=self.conversation_id,
                turns=len(self.log.turns),
                baseline_turns=self.baseline.turns,  # counts only: the baseline itself is never logged
                baseline_passed_over=self.baseline.passed_over,
            )
