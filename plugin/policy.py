"""`EmotionPolicy`: record each customer turn, set the reply tone, hand over when needed.

The second half of the turn service (`plugin.turn.TurnService.decide`). On the
first prediction after a customer message it
  1. brings the conversation's turns up to date from the tracker (the source of
     truth, shared by all Rasa instances through the tracker store); only the
     events added since this process last saw the conversation are read,
  2. has the turn service apply the routing rules (with the customer's past
     escalations from the state store) and record turns, summary and decision
     in Redis (idempotent per message id, so turns missed during a Redis outage
     are backfilled on the next turn),
  3. returns slot events for the tone and, when the rules say so, predicts
     the handoff action with full confidence.
Rasa applies a policy's `events` before the predicted action runs, so the
reply to this very turn already uses the new tone.

When Redis is unreachable the policy still decides from the tracker (only the
customer's history across conversations is missing) and logs the outage; the
write waits on local disk (`plugin.outbox`) and is replayed when Redis returns,
so an escalation decided during the outage is never lost.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

from rasa.core.policies.policy import Policy, PolicyPrediction, confidence_scores_for
from rasa.engine.graph import ExecutionContext
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.shared.core.constants import ACTION_LISTEN_NAME
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import ActionExecuted, Event, SlotSet, UserUttered
from rasa.shared.core.generator import TrackerWithCachedStates
from rasa.shared.core.trackers import DialogueStateTracker
from rasa.shared.exceptions import RasaException

from models.emotion import InvalidEstimate
from models.logs import log_event
from plugin import metadata as turn_metadata
from plugin import settings as toneline_settings
from plugin.consent import Reading
from plugin.metadata import CONSENT_KEY, HANDOFF_ACTION, NEUTRAL_TONE, PARSE_KEY, TURN_KEY, SlotNames
from plugin.routing import Decision, TurnRecord, message_key
from plugin.state import ConversationInfo
from plugin.turn import ConversationLog, TurnService

logger = logging.getLogger(__name__)

CONFIG_PATH_KEY = "config"
HANDOFF_ACTION_KEY = "handoff_action"
TONE_SLOT_KEY = "tone_slot"
EMOTION_SLOT_KEY = "emotion_slot"
REASON_SLOT_KEY = "reason_slot"
_MARK = tuple[str, float]  # an event's type and timestamp: enough to know a tracker still starts as it did


def conversation_info(tracker: DialogueStateTracker) -> ConversationInfo:
    """Identity of the conversation: the customer id the recognizer read from the metadata, else the sender id."""
    latest = tracker.latest_message
    # Parsed (and any problem logged) once, by EmotionRecognizer, into the parse data.
    meta = turn_metadata.TurnMetadata.from_identity((latest.parse_data or {}).get(TURN_KEY) if latest else None)
    channel = meta.channel or (latest.input_channel if latest else None) or "unknown"
    conversation_id = turn_metadata.bounded_id(tracker.sender_id)
    return ConversationInfo(conversation_id, meta.customer_id or conversation_id, channel)


def opted_out(tracker: DialogueStateTracker) -> bool:
    """Whether the latest message's customer opted out of emotion analysis (as the recognizer read it)."""
    latest = tracker.latest_message
    reading = Reading.from_parse((latest.parse_data or {}).get(CONSENT_KEY) if latest else None)
    return reading is not None and reading.opted_out


def _record(event: UserUttered, sender_id: str, keep_text: bool) -> TurnRecord | None:
    """The turn record of a customer message with an emotion (None without one, or a bad one: logged)."""
    if PARSE_KEY not in (event.parse_data or {}):
        return None
    text = event.text if keep_text else None
    message_id = message_key(event.message_id, event.timestamp)
    try:
        return TurnRecord.from_parse(
            event.parse_data[PARSE_KEY], message_id, float(event.timestamp), event.intent_name, text
        )
    except InvalidEstimate as exc:
        log_event(
            logger,
            logging.WARNING,
            "toneline.policy.bad_parse_data",
            conversation_id=sender_id,
            message_id=event.message_id,
            problem=str(exc),
        )
        return None


@dataclass
class _Seen:
    """How far a conversation's tracker was read, and what it gave."""

    consumed: int
    mark: _MARK | None
    log: ConversationLog
    counted: int = 0  # its turns as `TrackerLogs` counted them when it went in


class TrackerLogs:
    """Conversation logs read from trackers, kept between turns so that a turn reads only the events added since.

    The tracker stays the source of truth: when it no longer starts as it did (another
    instance served the conversation and the store trimmed it, a restart), it is read whole.
    Memory is bounded by conversations and by turns held in all (least recently served
    first out): a record is about 680 bytes, so 4,096 conversations of `limit` (200) turns
    would be about 560 MB; the turn budget holds about 45 MB. An evicted conversation
    costs only one re-read of its tracker.
    """

    def __init__(
        self, handoff_action: str, keep_text: bool, limit: int, conversations: int = 4096, turns: int = 65536
    ) -> None:
        self.handoff_action = handoff_action
        self.keep_text = keep_text
        self.limit = limit
        self.conversations = conversations
        self.turns = turns
        self._seen: OrderedDict[str, _Seen] = OrderedDict()
        self._held = 0  # turns held by the logs in `_seen`
        self._lock = threading.Lock()

    def log(self, tracker: DialogueStateTracker, info: ConversationInfo) -> ConversationLog:
        events = list(tracker.events)
        with self._lock:
            seen = self._seen.pop(tracker.sender_id, None)
            self._held -= seen.counted if seen else 0
        if seen is None or seen.consumed > len(events) or seen.mark != _mark(events, seen.consumed):
            seen = _Seen(0, None, ConversationLog(info))
        seen.log.info = info
        for event in events[seen.consumed :]:
            self._read(event, seen.log, tracker.sender_id)
        seen.consumed, seen.mark = len(events), _mark(events, len(events))
        with self._lock:
            seen.counted = len(seen.log.turns)
            self._seen[tracker.sender_id] = seen
            self._held += seen.counted
            while len(self._seen) > 1 and (len(self._seen) > self.conversations or self._held > self.turns):
                _, evicted = self._seen.popitem(last=False)
                self._held -= evicted.counted
        return seen.log

    @property
    def held(self) -> tuple[int, int]:
        """(conversations, turns) held now."""
        with self._lock:
            return len(self._seen), self._held

    def _read(self, event: Event, log: ConversationLog, sender_id: str) -> None:
        if isinstance(event, ActionExecuted) and event.action_name == self.handoff_action:
            log.escalated()
        elif isinstance(event, UserUttered):
            record = _record(event, sender_id, self.keep_text)
            if record is not None:
                log.add(record, self.limit)


def _mark(events: List[Event], consumed: int) -> _MARK | None:
    if consumed == 0:
        return None
    last = events[consumed - 1]
    return type(last).__name__, float(last.timestamp)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class EmotionPolicy(Policy):
    """Emotion-aware tone and escalation on top of the usual dialogue policies."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            # Above RulePolicy (6) so an escalation wins over a rule's reply.
            "priority": 7,
            CONFIG_PATH_KEY: None,
            HANDOFF_ACTION_KEY: HANDOFF_ACTION,
            TONE_SLOT_KEY: SlotNames.tone,
            EMOTION_SLOT_KEY: SlotNames.emotion,
            REASON_SLOT_KEY: SlotNames.reason,
        }

    def __init__(
        self,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        featurizer: Any = None,
    ) -> None:
        super().__init__(config, model_storage, resource, execution_context, featurizer)
        path = config.get(CONFIG_PATH_KEY)
        self.settings = toneline_settings.load(Path(path) if path else None)
        self.handoff_action = config[HANDOFF_ACTION_KEY]
        self.slots = SlotNames(config[TONE_SLOT_KEY], config[EMOTION_SLOT_KEY], config[REASON_SLOT_KEY])
        # Deciding only: EmotionRecognizer already read the turn (text model, fusion) into the parse data.
        self.service = TurnService.connected(self.settings)
        keep_text = self.settings.privacy.store_transcripts
        self.logs = TrackerLogs(self.handoff_action, keep_text, self.settings.state.max_turns)

    @classmethod
    def load(
        cls,
        config: Dict[str, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
        **kwargs: Any,
    ) -> Policy:
        """Loaded to serve: replay any writes an earlier process held on disk."""
        policy = super().load(config, model_storage, resource, execution_context, **kwargs)
        if isinstance(policy, EmotionPolicy):
            policy.service.start()
        return policy

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Nothing to learn; checks that the domain has what the policy needs."""
        self._validate_domain(domain)
        return self._resource

    def _validate_domain(self, domain: Domain) -> None:
        slots = {slot.name for slot in domain.slots}
        wanted = (self.slots.tone, self.slots.emotion, self.slots.reason)
        missing = [name for name in wanted if name not in slots]
        if missing:
            raise RasaException(f"EmotionPolicy needs the slots {missing} in the domain")
        if self.handoff_action not in domain.action_names_or_texts:
            raise RasaException(f"EmotionPolicy needs the action '{self.handoff_action}' in the domain")

    def predict_action_probabilities(
        self,
        tracker: DialogueStateTracker,
        domain: Domain,
        rule_only_data: Dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> PolicyPrediction:
        if tracker.latest_action_name == self.handoff_action:
            return self._prediction(confidence_scores_for(ACTION_LISTEN_NAME, 1.0, domain))
        if tracker.latest_action_name != ACTION_LISTEN_NAME or tracker.latest_message is None:
            return self._prediction(self._default_predictions(domain))
        if opted_out(tracker):
            # No emotion, so no emotion rule: the bot's own rules (asked for a person, NLU fallback) decide.
            self.service.not_analysed(self.logs.log(tracker, conversation_info(tracker)))
            events = self._slot_events(tracker, Decision(NEUTRAL_TONE, False))
            return self._prediction(self._default_predictions(domain), events=events)
        decision = self._decide(tracker)
        if decision is None:
            return self._prediction(self._default_predictions(domain))
        events = self._slot_events(tracker, decision)
        if decision.escalate:
            return self._prediction(confidence_scores_for(self.handoff_action, 1.0, domain), events=events)
        return self._prediction(self._default_predictions(domain), events=events)

    def _decide(self, tracker: DialogueStateTracker) -> Decision | None:
        log = self.logs.log(tracker, conversation_info(tracker))
        latest = tracker.latest_message
        if (
            not log.turns
            or latest is None
            or log.turns[-1].message_id != message_key(latest.message_id, latest.timestamp)
        ):
            return None  # no emotion for this message (agent turn, or recognition failed)
        return self.service.decide(log).decision

    def _slot_events(self, tracker: DialogueStateTracker, decision: Decision) -> List[Event]:
        latest = tracker.latest_message
        emotion = ((latest.parse_data if latest else None) or {}).get(PARSE_KEY) or {}
        wanted: dict[str, str | None] = {self.slots.tone: decision.tone, self.slots.emotion: emotion.get("label")}
        if decision.escalate:
            wanted[self.slots.reason] = decision.reason
        return [SlotSet(name, value) for name, value in wanted.items() if tracker.get_slot(name) != value]
