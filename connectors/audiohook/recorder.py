"""From one heard customer turn to a recorded emotion turn: text model, fusion, routing, Redis.

Synchronous (the text model and the Redis client are): the session runs it in
the channel's single-thread executor, never on the event loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from connectors.speech.recognizer import Hearing
from models.emotion import EmotionEstimate
from models.fusion import Fuser, load_fusion
from models.logs import log_event
from models.text import TextEmotionModel
from plugin.outbox import outbox_for
from plugin.routing import ConversationState, Decision, TurnRecord, decide, summarize
from plugin.settings import Settings
from plugin.state import ConversationInfo, StateStore, StateUnavailable

logger = logging.getLogger(__name__)
CHANNEL = "genesys"


@dataclass(frozen=True)
class Recorded:
    """The outcome of one turn: what was recorded and whether Redis took it."""

    record: TurnRecord
    decision: Decision
    stored: bool


class EmotionRecorder:
    """Shared by all sessions of a channel; holds no per-call state."""

    def __init__(
        self,
        settings: Settings,
        store: StateStore | None,
        text_model: Callable[[], TextEmotionModel] | None = None,
        fusion: Fuser | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        # Writes Redis refuses (an escalation decided during an outage) wait on disk: plugin.outbox;
        # what an earlier process left there is replayed from now on.
        self.outbox = outbox_for(store, "audiohook") if store is not None else None
        if self.outbox is not None:
            self.outbox.start()
        self._text_model = text_model
        # The fitted fusion every other channel uses (plugin.nlu loads the same weights).
        self.fusion = fusion or load_fusion()

    def text_estimate(self, text: str, message_id: str, context: Sequence[str] = ()) -> EmotionEstimate | None:
        """The text model's estimate; a model failure costs the turn its text modality only."""
        if not text.strip() or self._text_model is None:
            return None
        try:
            return self._text_model().predict(text, context)
        except Exception as exc:
            log_event(logger, logging.ERROR, "audiohook.text_model.failed", message_id=message_id, error=repr(exc))
            return None

    def build(self, hearing: Hearing, message_id: str, ts: float, context: Sequence[str] = ()) -> TurnRecord | None:
        """Fuse text and voice into a `TurnRecord`; None when neither modality gave an estimate."""
        text = self.text_estimate(hearing.text, message_id, context)
        estimates = [e for e in (text, hearing.voice) if e is not None]
        if not estimates:
            return None
        emotion = self.fusion.fuse(estimates)
        transcript = hearing.text if self.settings.privacy.store_transcripts else None
        return TurnRecord.of(emotion, message_id=message_id, ts=ts, text=transcript)

    def record(
        self, info: ConversationInfo, turns: Sequence[TurnRecord], escalated_message_id: str | None = None
    ) -> tuple[Decision, bool]:
        """Decide on the accumulated turns and write them; Redis down is logged, not raised.

        `escalated_message_id`: the turn this call was last escalated on, so the cooldown
        applies here as it does in `EmotionPolicy` (one escalation, not one per angry turn).
        """
        routing = self.settings.routing
        escalated_at = _turn_number(turns, escalated_message_id)
        if self.store is None or self.outbox is None:
            state = ConversationState(info.conversation_id, info.customer_id, tuple(turns), escalated_at)
            return decide(state, routing), False
        try:
            # A customer escalated before needs one negative turn fewer, on calls with an agent too.
            previous = self.store.previous_escalations(info.customer_id, info.conversation_id)
        except StateUnavailable as exc:
            log_event(
                logger,
                logging.WARNING,
                "audiohook.state.unavailable",
                conversation_id=info.conversation_id,
                error=str(exc),
            )
            previous = 0
        state = ConversationState(info.conversation_id, info.customer_id, tuple(turns), escalated_at, previous)
        decision = decide(state, routing)
        stored, _ = self.outbox.submit(self.store.record_entry(info, turns, summarize(turns, routing), decision))
        return decision, stored

    def turn(
        self,
        info: ConversationInfo,
        history: list[TurnRecord],
        hearing: Hearing,
        message_id: str,
        context: Sequence[str] = (),
        escalated_message_id: str | None = None,
    ) -> Recorded | None:
        """Build, append to `history` and record one turn; `context`: the customer's previous words;
        `escalated_message_id`: the turn this call was last escalated on, if any."""
        record = self.build(hearing, message_id, time.time(), context)
        if record is None:
            return None
        history.append(record)
        del history[: -self.settings.state.max_turns]  # the store keeps no more than this either
        decision, stored = self.record(info, history, escalated_message_id)
        return Recorded(record, decision, stored)


def _turn_number(turns: Sequence[TurnRecord], message_id: str | None) -> int | None:
    """1-based position of `message_id` among `turns` (None if absent: the cooldown has long passed)."""
    ids = [t.message_id for t in turns]
    return ids.index(message_id) + 1 if message_id in ids else None
