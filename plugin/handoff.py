"""The handoff case: what a human agent receives when the bot hands over.

Built from the conversation's events (dicts, as Rasa's action server sees
them) so it needs nothing but the tracker: it still works when Redis is down.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from typing import Any, Iterable, Mapping

from models.emotion import InvalidEstimate, TurnEmotion
from models.logs import log_event
from plugin.state import StateStore, StateUnavailable

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
    """Everything an agent needs to pick the conversation up without asking again."""
    return {
        "conversation_id": conversation_id,
        "customer_id": customer_id,
        "channel": channel,
        "reason": reason,
        "created_at": now if now is not None else time.time(),
        "emotion_timeline": emotion_timeline(events),
        "transcript": transcript(events, transcript_turns),
    }


class HandoffOutbox:
    """Queues handoff cases onto the Redis stream, holding them in memory while Redis is down.

    A case that cannot be written is kept (up to `capacity`, oldest dropped
    first, with a log line) and written before the next one, so a short outage
    costs the agent desk nothing.
    """

    def __init__(self, store: StateStore, capacity: int = 1000) -> None:
        self.store = store
        self.pending: deque[dict[str, Any]] = deque()
        self.capacity = capacity
        self._lock = threading.Lock()

    def push(self, case: dict[str, Any]) -> str | None:
        """Queue `case`; returns its stream id, or None if it is held for later."""
        with self._lock:
            self.pending.append(case)
            case_id = None
            try:
                while self.pending:
                    case_id = self.store.push_handoff(self.pending[0])
                    self.pending.popleft()
            except StateUnavailable:
                self._trim()
                log_event(logger, logging.WARNING, "toneline.handoff.held", pending=len(self.pending))
                return None
            return case_id

    def _trim(self) -> None:
        while len(self.pending) > self.capacity:
            dropped = self.pending.popleft()
            log_event(logger, logging.ERROR, "toneline.handoff.dropped", conversation_id=dropped.get("conversation_id"))
