"""The handoff case: what a human agent receives when the bot hands over.

Built from the conversation's events (dicts, as Rasa's action server sees
them) so it needs nothing but the tracker: it still works when Redis is down.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Iterable, Mapping

from models.emotion import InvalidEstimate, TurnEmotion
from models.logs import log_event
from plugin.metadata import bounded_id
from plugin.outbox import outbox_for
from plugin.state import StateStore

logger = logging.getLogger(__name__)

REQUESTED_BY_CUSTOMER = "customer asked for a human agent"


def emotion_timeline(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per customer turn that has an emotion: time, label, valence, arousal, weights."""
    out = []
    for event in events:
        if event.get("event") != "user":
            continue
        raw = (event.get("parse_data") or {}).get("toneline")
        if raw is None:
            continue
        try:
            turn = TurnEmotion.from_dict(raw)
        except InvalidEstimate:
            continue
        out.append(
            {
                "ts": event.get("timestamp"),
                "message_id": event.get("message_id"),
                "label": turn.label,
                "valence": round(turn.valence, 4),
                "arousal": round(turn.arousal, 4),
                "confidence": round(turn.effective_confidence, 4),
                "negative": round(turn.negative, 4),
                "weights": dict(turn.weights),
                "intent": ((event.get("parse_data") or {}).get("intent") or {}).get("name"),
            }
        )
    return out


def transcript(events: Iterable[Mapping[str, Any]], last: int) -> list[dict[str, Any]]:
    """The last `last` customer and bot messages, oldest first."""
    if last <= 0:
        return []
    lines = [
        {"from": "customer" if e["event"] == "user" else "bot", "text": e.get("text"), "ts": e.get("timestamp")}
        for e in events
        if e.get("event") in ("user", "bot") and e.get("text")
    ]
    return lines[-last:]


def build_case(
    conversation_id: str,
    events: list[Mapping[str, Any]],
    *,
    customer_id: str,
    channel: str,
    reason: str,
    transcript_turns: int,
    now: float | None = None,
) -> dict[str, Any]:
    """Everything an agent needs to pick the conversation up without asking again.

    `dedupe_key` names the decision (conversation and the customer message that led
    to it), so the same handoff written twice (a replay, a retry) is one case.
    """
    trigger = next((e.get("message_id") for e in reversed(events) if e.get("event") == "user"), None)
    created = now if now is not None else time.time()
    conversation_id = bounded_id(conversation_id)
    decision = f"{conversation_id}|{trigger if trigger is not None else created}"
    return {
        "conversation_id": conversation_id,
        "dedupe_key": hashlib.sha256(decision.encode()).hexdigest()[:32],
        "customer_id": bounded_id(customer_id, "customer_id"),
        "channel": channel,
        "reason": reason,
        "created_at": created,
        "emotion_timeline": emotion_timeline(events),
        "transcript": transcript(events, transcript_turns),
    }


class HandoffOutbox:
    """Writes handoff cases to the Redis stream; while Redis is down they wait on disk (`plugin.outbox`).

    A held case is written by a background replay as soon as Redis answers, also
    after this process restarts (`start()` replays what a predecessor left), and
    exactly once: the stream write is keyed by the case's `dedupe_key`.
    """

    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.outbox = outbox_for(store, "handoffs")

    def push(self, case: dict[str, Any]) -> str | None:
        """Write `case`; returns its stream id, or None if it is held for a later replay."""
        written, case_id = self.outbox.submit(self.store.handoff_entry(case))
        if not written:
            log_event(logger, logging.WARNING, "toneline.handoff.held", conversation_id=case.get("conversation_id"))
        return None if case_id is None else str(case_id)

    def start(self) -> None:
        """Replay cases an earlier process could not write (call once at start-up)."""
        self.outbox.start()
