"""Custom actions of the demo bot (run by `rasa run actions`)."""

from __future__ import annotations

import asyncio
import logging
from functools import lru_cache
from pathlib import Path
from typing import Any, Dict, List

from rasa_sdk import Action, Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.executor import CollectingDispatcher

from models.logs import log_event
from plugin import metadata as turn_metadata
from plugin import settings as toneline_settings
from plugin.handoff import REQUESTED_BY_CUSTOMER, HandoffOutbox, build_case
from plugin.state import StateStore

logger = logging.getLogger(__name__)
CONFIG = Path(__file__).resolve().parent.parent / "toneline.yml"


@lru_cache(maxsize=1)
def _outbox() -> tuple[HandoffOutbox, toneline_settings.Settings]:
    # One store and outbox per action-server process.
    settings = toneline_settings.load(CONFIG)
    return HandoffOutbox(StateStore(settings.redis, settings.state)), settings


class ActionHandoff(Action):
    """Tell the customer a person is coming and queue the case for the agent desk."""

    def name(self) -> str:
        return "action_handoff"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[str, Any]
    ) -> List[Dict[str, Any]]:
        outbox, settings = _outbox()
        latest = tracker.latest_message or {}
        asked = (latest.get("intent") or {}).get("name") == "request_human"
        reason = REQUESTED_BY_CUSTOMER if asked else (tracker.get_slot("toneline_escalation_reason") or "escalated")
        meta = turn_metadata.parse(latest.get("metadata"))
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
        dispatcher.utter_message(response="utter_handoff")
        return [SlotSet("handed_off", True), SlotSet("toneline_escalation_reason", reason)]
