"""The turn service: one customer turn, whichever door it came in by, read and decided the same way.

    metadata -> estimates -> fusion -> routing rules -> state, events (and, for listen-only channels, the handoff case)

`TurnService.read` is the first half (text model in context, the connector's
voice/face estimates, the trained fusion); `TurnService.decide` the second
(the customer's past escalations from the state store, the rules, the write to
Redis or, while Redis is away, to the disk outbox). Rasa runs the halves in two
graph components (`plugin.nlu.EmotionRecognizer` reads, `plugin.policy.EmotionPolicy`
decides); a channel without a bot (Genesys AudioHook) calls `TurnService.turn`,
which runs both and opens a handoff case when the rules escalate. So every
channel gets the same fusion, the cooldown and the repeat-customer discount by
construction.

Synchronous (the text model and the Redis client are): async callers run it in an executor.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from models.emotion import EmotionEstimate, TurnEmotion
from models.fusion import Fuser, load_fusion
from models.logs import log_event
from models.text import TextEmotionModel
from plugin.consent import Consent, Reading, asked
from plugin.handoff import HandoffOutbox, build_case_from_records
from plugin.metadata import NEUTRAL_TONE, TurnMetadata
from plugin.outbox import DurableOutbox, outbox_for
from plugin.routing import ConversationState, Decision, TurnRecord, decide, summarize
from plugin.settings import Settings
from plugin.state import ConversationInfo, StateStore, StateUnavailable

logger = logging.getLogger(__name__)
StoreSource = StateStore | Callable[[], StateStore] | None


@dataclass
class ConversationLog:
    """A conversation's recent turns and where it was last escalated: what the rules read of this conversation.

    `escalated_at`: how many of `turns` there were when the conversation was last handed over
    (the cooldown counts from there); None when it never was.
    """

    info: ConversationInfo
    turns: list[TurnRecord] = field(default_factory=list)
    escalated_at: int | None = None

    def add(self, record: TurnRecord, limit: int) -> None:
        """Append a turn, keeping the last `limit` (the store keeps no more either)."""
        self.turns.append(record)
        dropped = max(0, len(self.turns) - limit)
        del self.turns[:dropped]
        if self.escalated_at is not None:
            self.escalated_at = max(0, self.escalated_at - dropped)

    def escalated(self) -> None:
        """The conversation was handed over after its latest turn."""
        self.escalated_at = len(self.turns)

    def state(self, previous_escalations: int) -> ConversationState:
        info = self.info
        return ConversationState(
            info.conversation_id, info.customer_id, tuple(self.turns), self.escalated_at, previous_escalations
        )


@dataclass(frozen=True)
class DecisionOutcome:
    """What one decided turn came to: the decision, whether Redis took the write, the handoff case opened."""

    decision: Decision
    stored: bool
    record: TurnRecord | None = None
    case_id: str | None = None


class EmotionReader:
    """Words and estimates -> one fused `TurnEmotion`: the text model in context, then the fusion."""

    def __init__(self, fusion: Fuser, text_model: Callable[[], TextEmotionModel] | None = None) -> None:
        self.fusion = fusion
        self._text_model = text_model  # a factory: the model loads on first use, once per process

    def text_model(self) -> TextEmotionModel:
        """The text model, loaded now if it was not yet (its factory loads it once per process)."""
        if self._text_model is None:
            raise RuntimeError("this reader has no text model")
        return self._text_model()

    def text_estimate(self, text: str, message_id: str | None, context: Sequence[str] = ()) -> EmotionEstimate | None:
        """The text model's estimate; a model failure costs the turn its text modality only (logged)."""
        if not text.strip() or self._text_model is None:
            return None
        try:
            return self._text_model().predict(text, context)
        except Exception as exc:  # a model bug must not cost the turn its reply
            log_event(logger, logging.ERROR, "toneline.text_model.failed", message_id=message_id, error=repr(exc))
            return None

    def read(
        self, text: str, meta: TurnMetadata, message_id: str | None, context: Sequence[str] = ()
    ) -> TurnEmotion | None:
        """The fused emotion of a turn; None for an agent's turn or when no modality gave an estimate."""
        if meta.is_agent:
            return None
        estimates = list(meta.estimates)
        said = self.text_estimate(text, message_id, context)
        if said is not None:
            estimates.insert(0, said)
        return self.fusion.fuse(estimates) if estimates else None


class TurnService:
    """The plugin's whole turn; shared by all conversations of a process, holds no per-conversation state."""

    def __init__(self, settings: Settings, reader: EmotionReader | None = None, store: StoreSource = None) -> None:
        self.settings = settings
        self.reader = reader or EmotionReader(load_fusion())
        self._store_source = store
        self._store: StateStore | None = store if isinstance(store, StateStore) else None
        self._outbox: DurableOutbox | None = None
        self._handoffs: HandoffOutbox | None = None

    @classmethod
    def connected(cls, settings: Settings, reader: EmotionReader | None = None) -> TurnService:
        """A service on the settings' Redis, connected on first use (`start` replays what earlier processes held)."""
        return cls(settings, reader, lambda: StateStore(settings.redis, settings.state))

    # -- state --------------------------------------------------------------
    @property
    def store(self) -> StateStore | None:
        # Connect lazily: training and validation must not need Redis.
        if self._store is None and callable(self._store_source):
            self._store = self._store_source()
        return self._store

    @property
    def outbox(self) -> DurableOutbox | None:
        """Writes Redis refuses wait here, on disk, and are replayed in order (`plugin.outbox`)."""
        if self._outbox is None and self.store is not None:
            self._outbox = outbox_for(self.store, "state")
        return self._outbox

    @property
    def handoffs(self) -> HandoffOutbox | None:
        if self._handoffs is None and self.store is not None:
            self._handoffs = HandoffOutbox(self.store)
        return self._handoffs

    def start(self) -> None:
        """Replay what an earlier process held on disk (call once, when the process starts serving)."""
        if self.outbox is not None:
            self.outbox.start()
        if self.handoffs is not None:
            self.handoffs.start()

    # -- consent ------------------------------------------------------------
    def consent(
        self, customer_id: str | None, meta: TurnMetadata, intent: str | None, previous: bool | None = None
    ) -> Reading:
        """May this turn of `customer_id` be analysed? Called before any model runs on it.

        A change of mind (the metadata's `opt_out`, else the opt-out/opt-in intent) is kept for the
        customer at once (in Redis, or held on disk while Redis is away). Without one the stored choice
        decides; while Redis is away, `previous` (the conversation's last reading), else analysed.
        """
        if meta.is_agent:  # an agent's words never opt the customer out (and are never analysed anyway)
            return Reading(False)
        known, stored = self._stored_consent(customer_id)
        wish = asked(meta, intent, self.settings.consent)
        if wish is None:
            return Reading(stored.opted_out if stored else False if known else bool(previous))
        opted_out, source = wish
        if known and (stored.opted_out if stored else False) == opted_out:
            return Reading(opted_out)
        now = time.time()
        if customer_id is not None:
            self.keep_consent(customer_id, Consent(opted_out, now, source))
        return Reading(opted_out, changed=True, at=now)

    def keep_consent(self, customer_id: str, consent: Consent) -> bool:
        """Store a customer's choice (held on disk while Redis is away); True when Redis took it now."""
        log_event(
            logger,
            logging.INFO,
            "toneline.consent.changed",
            customer_id=customer_id,
            opted_out=consent.opted_out,
            source=consent.source,
        )
        if self.store is None or self.outbox is None:
            return False
        written, _ = self.outbox.submit(self.store.consent_entry(customer_id, consent.to_fields()))
        return bool(written)

    def retain(self, conversation_id: str, message_id: str | None, text: str, voice_ref: str | None = None) -> bool:
        """Keep an analysed turn's words for adaptation, when the deployment retains them (`adaptation.retain`);
        the caller checked consent. Optional material: lost, not held on disk, while Redis is away."""
        adaptation = self.settings.adaptation
        if not adaptation.retain or not message_id or not text.strip() or self.store is None:
            return False
        material = {"text": text} if voice_ref is None else {"text": text, "voice_ref": voice_ref}
        try:
            self.store.retain(conversation_id, message_id, material, adaptation.retention_days * 86400)
        except StateUnavailable:  # logged by the store
            return False
        return True

    def _stored_consent(self, customer_id: str | None) -> tuple[bool, Consent | None]:
        """(known, the stored choice): known is False while Redis is away or without a customer."""
        if customer_id is None or self.store is None:
            return False, None
        try:
            return True, Consent.from_fields(self.store.consent(customer_id))
        except StateUnavailable:  # logged by the store
            return False, None

    def not_analysed(self, log: ConversationLog) -> bool:
        """Record that an opted-out customer's conversation goes on (no turn, no emotion, neutral tone), so
        supervisors see it as not analysed; True when Redis took it."""
        return self._record(log, Decision(NEUTRAL_TONE, False))

    # -- the turn -----------------------------------------------------------
    def read(
        self, text: str, meta: TurnMetadata, message_id: str | None, context: Sequence[str] = ()
    ) -> TurnEmotion | None:
        return self.reader.read(text, meta, message_id, context)

    def record_of(self, emotion: TurnEmotion, message_id: str, text: str, intent: str | None = None) -> TurnRecord:
        """What the store keeps of a turn: the transcript only when the settings allow it. Built from the turn
        as it travels in Rasa's parse data (JSON): a record is the same on every channel, to the digit."""
        transcript = text if self.settings.privacy.store_transcripts else None
        return TurnRecord.from_parse(emotion.to_dict(), message_id, time.time(), intent, transcript)

    def decide(self, log: ConversationLog) -> DecisionOutcome:
        """Apply the rules to the conversation and the customer's past, and record both; never raises for Redis."""
        state = log.state(self._previous_escalations(log.info))
        decision = decide(state, self.settings.routing)
        stored = self._record(log, decision)
        if decision.escalate:
            log_event(
                logger,
                logging.INFO,
                "toneline.escalation.triggered",
                conversation_id=log.info.conversation_id,
                channel=log.info.channel,
                rule=decision.rule,
                reason=decision.reason,
            )
        return DecisionOutcome(decision, stored, log.turns[-1] if log.turns else None)

    def turn(
        self, log: ConversationLog, text: str, meta: TurnMetadata, message_id: str, context: Sequence[str] = ()
    ) -> DecisionOutcome | None:
        """A whole turn for a channel without a bot: read, append to `log`, decide, and on escalation
        mark the log (the cooldown) and open the handoff case. None when the turn has no emotion
        (an opted-out customer's turn is not read at all)."""
        if self.consent(log.info.customer_id, meta, None).opted_out:
            self.not_analysed(log)
            return None
        emotion = self.read(text, meta, message_id, context)
        if emotion is None:
            return None
        log.add(self.record_of(emotion, message_id, text), self.settings.state.max_turns)
        outcome = self.decide(log)
        if not outcome.decision.escalate:
            return outcome
        log.escalated()
        return DecisionOutcome(outcome.decision, outcome.stored, outcome.record, self._open_case(log, outcome.decision))

    def _previous_escalations(self, info: ConversationInfo) -> int:
        """How many of the customer's other conversations were escalated (0 while Redis is away)."""
        if self.store is None:
            return 0
        try:
            return self.store.previous_escalations(info.customer_id, info.conversation_id)
        except StateUnavailable:  # logged by the store; decided without the customer's past
            return 0

    def _record(self, log: ConversationLog, decision: Decision) -> bool:
        if self.store is None or self.outbox is None:
            return False
        summary = decision.summary or summarize(log.turns, self.settings.routing)
        written, _ = self.outbox.submit(self.store.record_entry(log.info, log.turns, summary, decision))
        return bool(written)

    def _open_case(self, log: ConversationLog, decision: Decision) -> str | None:
        """The handoff case of an escalation on a channel whose handoff no bot action announces."""
        if self.handoffs is None:
            return None
        case = build_case_from_records(
            log.info,
            log.turns,
            reason=decision.reason or "escalated",
            transcript_turns=self.settings.privacy.handoff_transcript_turns,
        )
        return self.handoffs.push(case)
