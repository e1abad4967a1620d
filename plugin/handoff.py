"""The handoff case: what a human agent receives when the bot hands over.

Built from the conversation's events (dicts, as Rasa's action server sees
them) so it needs nothing but the tracker: it still works when Redis is down;
or, for a channel without a bot (AudioHook), from the turns the turn service
recorded (`build_case_from_records`). Both give the same emotion timeline.
"""

from __future__ import annotations

import hashlib
import logging
import time
from typing import Any, Iterable, Mapping, Sequence

from models.emotion import InvalidEstimate
from models.logs import log_event
from plugin.metadata import DISCLOSURE_KEY, PARSE_KEY, bounded_id
from plugin.outbox import outbox_for
from plugin.routing import TurnRecord, message_key
from plugin.state import ConversationInfo, StateStore

logger = logging.getLogger(__name__)

REQUESTED_BY_CUSTOMER = "customer asked for a human agent"


def timeline_entry(record: TurnRecord) -> dict[str, Any]:
    """One customer turn of a case's emotion timeline: time, label, valence, arousal, weights."""
    return {
        "ts": record.ts,
        "message_id": record.message_id,
        "label": record.label,
        "valence": round(record.valence, 4),
        "arousal": round(record.arousal, 4),
        "confidence": round(record.confidence, 4),
        "negative": round(record.negativity, 4),
        "weights": dict(record.weights),
        "intent": record.intent,
    }


def emotion_timeline(events: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One entry per customer turn that has an emotion (`timeline_entry`), from Rasa's events."""
    out = []
    for event in events:
        if event.get("event") != "user":
            continue
        parse_data = event.get("parse_data") or {}
        raw = parse_data.get(PARSE_KEY)
        if raw is None:
            continue
        intent = (parse_data.get("intent") or {}).get("name")
        ts = event.get("timestamp")
        when = float(ts) if ts is not None else 0.0
        try:
            record = TurnRecord.from_parse(raw, message_key(event.get("message_id"), ts), when, intent)
        except InvalidEstimate:
            continue
        out.append(timeline_entry(record))
    return out


def transcript(events: Iterable[Mapping[str, Any]], last: int) -> list[dict[str, Any]]:
    """The last `last` customer and bot messages, oldest first (not the emotion-analysis notice: the agent
    needs the conversation, and the notice is the same in every one)."""
    if last <= 0:
        return []
    lines = [
        {"from": "customer" if e["event"] == "user" else "bot", "text": e.get("text"), "ts": e.get("timestamp")}
        for e in events
        if e.get("event") in ("user", "bot") and e.get("text") and not (e.get("metadata") or {}).get(DISCLOSURE_KEY)
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
    """Everything an agent needs to pick the conversation up without asking again, from Rasa's events.

    `dedupe_key` names the decision (conversation and the customer message that led
    to it), so the same handoff written twice (a replay, a retry) is one case.
    """
    trigger = next(
        (message_key(e.get("message_id"), e.get("timestamp")) for e in reversed(events) if e.get("event") == "user"),
        None,
    )
    info = ConversationInfo(conversation_id, customer_id, channel)
    return _case(info, trigger, reason, emotion_timeline(events), transcript(events, transcript_turns), now)


def build_case_from_records(
    info: ConversationInfo,
    turns: Sequence[TurnRecord],
    *,
    reason: str,
    transcript_turns: int,
    now: float | None = None,
) -> dict[str, Any]:
    """The same case from the turns the turn service recorded (a channel with no bot and no tracker).

    The transcript holds the customer's words only where the records keep them (`privacy.store_transcripts`).
    """
    said = [{"from": "customer", "text": t.text, "ts": t.ts} for t in turns if t.text]
    lines = said[-transcript_turns:] if transcript_turns > 0 else []
    trigger = turns[-1].message_id if turns else None
    return _case(info, trigger, reason, [timeline_entry(t) for t in turns], lines, now)


def _case(
    info: ConversationInfo,
    trigger: Any,
    reason: str,
    timeline: list[dict[str, Any]],
    lines: list[dict[str, Any]],
    now: float | None,
) -> dict[str, Any]:
    created = now if now is not None else time.time()
    conversation_id = bounded_id(info.conversation_id)
    decision = f"{conversation_id}|{trigger if trigger is not None else created}"
    return {
        "conversation_id": conversation_id,
        "dedupe_key": hashlib.sha256(decision.encode()).hexdigest()[:32],
        "customer_id": bounded_id(info.customer_id, "customer_id"),
        "channel": info.channel,
        "reason": reason,
        "trigger_message_id": None if trigger is None else str(trigger),  # the customer turn that led to it
        "created_at": created,
        "emotion_timeline": timeline,
        "transcript": lines,
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
