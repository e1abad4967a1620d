"""`EmotionPolicy`: record each customer turn, set the reply tone, hand over when needed.

On the first prediction after a customer message it
  1. rebuilds the conversation's turns from the tracker (the source of truth,
     shared by all Rasa instances through the tracker store),
  2. applies the routing rules (`plugin.routing.decide`),
  3. records turns, summary and decision in Redis (idempotent per message id,
     so turns missed during a Redis outage are backfilled on the next turn),
  4. returns slot events for the tone and, when the rules say so, predicts
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

from models.emotion import InvalidEstimate, TurnEmotion
from models.logs import log_event
from plugin import metadata as turn_metadata
from plugin import settings as toneline_settings
from plugin.nlu import PARSE_KEY
from plugin.outbox import DurableOutbox, outbox_for
from plugin.routing import ConversationState, Decision, TurnRecord, decide, summarize
from plugin.state import ConversationInfo, StateStore, StateUnavailable

logger = logging.getLogger(__name__)

CONFIG_PATH_KEY = "config"
HANDOFF_ACTION_KEY = "handoff_action"
TONE_SLOT_KEY = "tone_slot"
EMOTION_SLOT_KEY = "emotion_slot"
REASON_SLOT_KEY = "reason_slot"


def turn_records(
    tracker: DialogueStateTracker, handoff_action: str, keep_text: bool, limit: int
) -> tuple[list[TurnRecord], int | None]:
    """Customer turns with an emotion, and the turn count at the last handoff (or None)."""
    turns: list[TurnRecord] = []
    escalated_at: int | None = None
    for event in tracker.events:
        if isinstance(event, ActionExecuted) and event.action_name == handoff_action:
            escalated_at = len(turns)
        if not isinstance(event, UserUttered) or PARSE_KEY not in (event.parse_data or {}):
            continue
        try:
            emotion = TurnEmotion.from_dict(event.parse_data[PARSE_KEY])
        except InvalidEstimate as exc:
            log_event(
                logger,
                logging.WARNING,
                "toneline.policy.bad_parse_data",
                conversation_id=tracker.sender_id,
                message_id=event.message_id,
                problem=str(exc),
            )
            continue
        turns.append(
            TurnRecord.of(
                emotion,
                message_id=str(event.message_id),
                ts=float(event.timestamp),
                intent=event.intent_name,
                text=event.text if keep_text else None,
            )
        )
    overflow = max(0, len(turns) - limit)
    return turns[overflow:], None if escalated_at is None else max(0, escalated_at - overflow)


def conversation_info(tracker: DialogueStateTracker) -> ConversationInfo:
    """Identity of the conversation: the customer id from metadata, else the sender id."""
    latest = tracker.latest_message
    # Already validated (and any problem logged) by EmotionRecognizer.
    meta = turn_metadata.parse(latest.metadata if latest else None, log=False)
    channel = meta.channel or (latest.input_channel if latest else None) or "unknown"
    conversation_id = turn_metadata.bounded_id(tracker.sender_id)
    return ConversationInfo(conversation_id, meta.customer_id or conversation_id, channel)


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.POLICY_WITHOUT_END_TO_END_SUPPORT, is_trainable=True)
class EmotionPolicy(Policy):
    """Emotion-aware tone and escalation on top of the usual dialogue policies."""

    @staticmethod
    def get_default_config() -> Dict[str, Any]:
        return {
            # Above RulePolicy (6) so an escalation wins over a rule's reply.
            "priority": 7,
            CONFIG_PATH_KEY: None,
            HANDOFF_ACTION_KEY: "action_handoff",
            TONE_SLOT_KEY: "toneline_tone",
            EMOTION_SLOT_KEY: "toneline_emotion",
            REASON_SLOT_KEY: "toneline_escalation_reason",
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
        self._store: StateStore | None = None
        self._outbox: DurableOutbox | None = None

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
            policy.outbox.start()
        return policy

    @property
    def store(self) -> StateStore:
        # Connect lazily: training and validation must not need Redis.
        if self._store is None:
            self._store = StateStore(self.settings.redis, self.settings.state)
        return self._store

    @property
    def outbox(self) -> DurableOutbox:
        if self._outbox is None:
            self._outbox = outbox_for(self.store, "state")
        return self._outbox

    def train(self, training_trackers: List[TrackerWithCachedStates], domain: Domain, **kwargs: Any) -> Resource:
        """Nothing to learn; checks that the domain has what the policy needs."""
        self._validate_domain(domain)
        return self._resource

    def _validate_domain(self, domain: Domain) -> None:
        slots = {slot.name for slot in domain.slots}
        wanted = (self.config[TONE_SLOT_KEY], self.config[EMOTION_SLOT_KEY], self.config[REASON_SLOT_KEY])
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
        decision = self._decide(tracker)
        if decision is None:
            return self._prediction(self._default_predictions(domain))
        events = self._slot_events(tracker, decision)
        if decision.escalate:
            return self._prediction(confidence_scores_for(self.handoff_action, 1.0, domain), events=events)
        return self._prediction(self._default_predictions(domain), events=events)

    def _decide(self, tracker: DialogueStateTracker) -> Decision | None:
        limit = self.settings.state.max_turns
        turns, escalated_at = turn_records(tracker, self.handoff_action, self.settings.privacy.store_transcripts, limit)
        if not turns or turns[-1].message_id != str(tracker.latest_message.message_id):
            return None  # no emotion for this message (agent turn, or recognition failed)
        info = conversation_info(tracker)
        try:
            previous = self.store.previous_escalations(info.customer_id, info.conversation_id)
        except StateUnavailable:
            previous = 0
        state = ConversationState(info.conversation_id, info.customer_id, tuple(turns), escalated_at, previous)
        decision = decide(state, self.settings.routing)
        self._record(info, state, decision)
        if decision.escalate:
            log_event(
                logger,
                logging.INFO,
                "toneline.escalation.triggered",
                conversation_id=info.conversation_id,
                rule=decision.rule,
                reason=decision.reason,
            )
        return decision

    def _record(self, info: ConversationInfo, state: ConversationState, decision: Decision) -> None:
        # While Redis is down the write waits on disk and is replayed in order when it returns.
        summary = summarize(state.turns, self.settings.routing)
        self.outbox.submit(self.store.record_entry(info, state.turns, summary, decision))

    def _slot_events(self, tracker: DialogueStateTracker, decision: Decision) -> List[Event]:
        wanted: dict[str, str | None] = {self.config[TONE_SLOT_KEY]: decision.tone}
        emotion = (tracker.latest_message.parse_data or {}).get(PARSE_KEY, {})
        wanted[self.config[EMOTION_SLOT_KEY]] = emotion.get("label")
        if decision.escalate:
            wanted[self.config[REASON_SLOT_KEY]] = decision.reason
        return [SlotSet(name, value) for name, value in wanted.items() if tracker.get_slot(name) != value]
