"""Custom actions of the demo bot (run by `rasa run actions`)."""

from __future__ import annotations

import asyncio
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import ActionExecuted, ConversationPaused, EventType, SessionStarted, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from models.logs import log_event
from plugin import settings as toneline_settings
from plugin.handoff import REQUESTED_BY_CUSTOMER, HandoffOutbox, build_case
from plugin.metadata import DISCLOSURE_KEY, HANDOFF_ACTION, HANDOFF_RESPONSE, TURN_KEY, SlotNames, TurnMetadata
from plugin.metadata import parse as parse_metadata
from plugin.state import StateStore

logger = logging.getLogger(__name__)
CONFIG = Path(__file__).resolve().parent.parent / "toneline.yml"

ACCOUNT_SLOT = "account_number"
SESSION_METADATA_SLOT = "session_started_metadata"  # Rasa's: the metadata of the message that opened the session
TOPIC_SLOT = "account_topic"
SLOTS = SlotNames()
HANDOFF_SLOTS = (SLOTS.handed_off, SLOTS.reason)
# Demo account numbers have 6 to 12 digits; callers read them as Whisper writes them.
MIN_DIGITS, MAX_DIGITS = 6, 12
DIGIT_WORDS = {
    "zero": "0",
    "oh": "0",
    "o": "0",
    "one": "1",
    "two": "2",
    "three": "3",
    "four": "4",
    "five": "5",
    "six": "6",
    "seven": "7",
    "eight": "8",
    "nine": "9",
}


@lru_cache(maxsize=1)
def _outbox() -> tuple[HandoffOutbox, toneline_settings.Settings]:
    # One store and outbox per action-server process.
    settings = toneline_settings.load(CONFIG)
    return HandoffOutbox(StateStore(settings.redis, settings.state)), settings


class ActionHandoff(Action):
    """Tell the customer a person is coming and queue the case for the agent desk."""

    def name(self) -> str:
        return HANDOFF_ACTION

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        outbox, settings = _outbox()
        latest = tracker.latest_message or {}
        asked = (latest.get("intent") or {}).get("name") == "request_human"
        reason = REQUESTED_BY_CUSTOMER if asked else (tracker.get_slot(SLOTS.reason) or "escalated")
        # Who and where, as EmotionRecognizer read it from the turn's metadata (parsed once per turn).
        meta = TurnMetadata.from_identity(latest.get(TURN_KEY))
        case = build_case(
            tracker.sender_id,
            list(tracker.events),
            customer_id=meta.customer_id or tracker.sender_id,
            channel=meta.channel or tracker.get_latest_input_channel() or "unknown",
            reason=reason,
            transcript_turns=settings.privacy.handoff_transcript_turns,
        )
        # A case that cannot be written now is held and written with the next one.
        case_id = await asyncio.get_running_loop().run_in_executor(None, outbox.push, case)
        log_event(
            logger,
            logging.INFO,
            "toneline.handoff.requested",
            conversation_id=tracker.sender_id,
            case_id=case_id,
            reason=reason,
        )
        dispatcher.utter_message(response=HANDOFF_RESPONSE)
        # Rasa's own human-handoff switch: a paused conversation still records the
        # customer's messages (NLU runs) but predicts no action, on every channel,
        # until a new session or an agent resumes it.
        return [SlotSet(SLOTS.handed_off, True), SlotSet(SLOTS.reason, reason), ConversationPaused()]


def account_digits(said: str) -> str | None:
    """The digits of an account number as read out ("one two 3, 4" -> "1234"); None if anything else was said."""
    tokens = [t for t in re.split(r"[\s,.;:-]+", said.lower()) if t]
    digits = [DIGIT_WORDS.get(t, t) for t in tokens]
    if not digits or not all(d.isdigit() for d in digits):
        return None
    return "".join(digits)


def spoken(digits: str) -> str:
    """Digits one by one, as a person reads them back (and TTS speaks them): "1 2 3"."""
    return " ".join(digits)


class ActionAccountStatus(Action):
    """Ask for the account number, check what was read out, and answer the billing or outage question with it."""

    def name(self) -> str:
        return "action_account_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        said = tracker.get_slot(ACCOUNT_SLOT)
        if isinstance(said, list):  # several numbers in one message: read them as one
            said = " ".join(str(part) for part in said)
        if not said:
            dispatcher.utter_message(response="utter_ask_account_number")
            return []
        digits = account_digits(str(said))
        if digits is None or not MIN_DIGITS <= len(digits) <= MAX_DIGITS:
            heard = spoken(digits) if digits else str(said)
            dispatcher.utter_message(
                response="utter_account_number_unclear", heard=heard, min_digits=MIN_DIGITS, max_digits=MAX_DIGITS
            )
            return [SlotSet(ACCOUNT_SLOT, None)]
        topic = tracker.get_slot(TOPIC_SLOT)
        response = {"billing": "utter_account_billing", "outage": "utter_account_outage"}.get(
            str(topic), "utter_account_confirmed"
        )
        dispatcher.utter_message(response=response, spoken=spoken(digits))
        return [SlotSet(ACCOUNT_SLOT, digits)]


def disclosure_for(session_metadata: Any, input_channel: str | None) -> str | None:
    """The emotion-analysis notice a new session starts with: none when the connector gave it already
    (`disclosed` in the turn's metadata: spoken on the phone, shown on the video page)."""
    meta = parse_metadata(session_metadata, log=False)
    if meta.disclosed:
        return None
    _, settings = _outbox()
    return settings.disclosure.for_channel(meta.channel or input_channel or "rest")


class ActionSessionStart(Action):
    """A new session opens with the emotion-analysis notice and carries the customer's slots over, but not a
    past handoff: the bot serves them again."""

    def name(self) -> str:
        return "action_session_start"

    async def run(self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]) -> List[EventType]:
        notice = disclosure_for(tracker.get_slot(SESSION_METADATA_SLOT), tracker.get_latest_input_channel())
        if notice is not None:
            # Before the first turn is read: a new session's first bot message (AI Act Art. 50(3)).
            dispatcher.utter_message(text=notice, **{DISCLOSURE_KEY: True})
        events: List[EventType] = [SessionStarted()]
        carry = (domain.get("session_config") or {}).get("carry_over_slots_to_new_session", True)
        if carry:
            for name, value in tracker.current_slot_values().items():
                if value is not None and name not in HANDOFF_SLOTS:
                    events.append(SlotSet(name, value))
        events.append(ActionExecuted("action_listen"))
        return events
