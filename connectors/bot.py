"""The Rasa side of a voice call: one caller turn in, the bot's replies, tone and handoff out.

A thin adapter: the sessions know `BotGateway`, only this module knows Rasa.
The reply's tone comes from the reply itself when it can: Rasa passes the
chosen response variation's keys along with its text, so a variation
conditioned on the tone slot (`condition: [{type: slot, name: toneline_tone,
value: calm}]`, as in the demo's domain) names its tone. Only a reply that
names none (a default variation, a custom action's text) costs a tracker read.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from models.logs import log_event

logger = logging.getLogger(__name__)
HANDOFF_RESPONSE = "utter_handoff"
HANDOFF_SLOT = "handed_off"
TONE_SLOT = "toneline_tone"


@dataclass(frozen=True)
class BotReply:
    """What the bot said to one turn, in which tone, and whether it handed the caller to a person."""

    texts: tuple[str, ...]
    tone: str = "neutral"
    handoff: bool = False


class BotGateway(abc.ABC):
    """Where a session sends caller turns."""

    @abc.abstractmethod
    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        """Deliver one turn; returns the bot's reply."""


class _Collector(CollectingOutputChannel):
    """Collects replies; notices the handoff response (Rasa adds `utter_action` to each response) and the tone a
    response variation was chosen for (its `condition` on the tone slot)."""

    def __init__(self, channel_name: str, tone_slot: str = TONE_SLOT) -> None:
        super().__init__()
        self._name = channel_name
        self._tone_slot = tone_slot
        self.handoff = False
        self.tone: str | None = None

    def name(self) -> str:
        return self._name

    async def send_response(self, recipient_id: str, message: Dict[str, Any]) -> None:
        custom = message.get("custom") or message.get("json_message")
        if message.get("utter_action") == HANDOFF_RESPONSE or (isinstance(custom, dict) and custom.get("handoff")):
            self.handoff = True
        self.tone = _conditioned_tone(message.get("condition"), self._tone_slot) or self.tone
        await super().send_response(recipient_id, message)


def _conditioned_tone(condition: Any, slot: str) -> str | None:
    """The tone slot's value a response variation's `condition` requires, if it names one."""
    for part in condition if isinstance(condition, list) else []:
        if isinstance(part, dict) and part.get("type") == "slot" and part.get("name") == slot:
            value = part.get("value")
            return value if isinstance(value, str) else None
    return None


class RasaBot(BotGateway):
    """Sends turns through the channel's `on_new_message`; the tone comes from the reply, else from the tracker."""

    def __init__(
        self,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        channel_name: str,
        agent: Callable[[], Any] | None = None,
    ) -> None:
        self._on_new_message = on_new_message
        self._channel = channel_name
        self._agent = agent

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        collector = _Collector(self._channel)
        await self._on_new_message(
            UserMessage(text, collector, sender_id, input_channel=self._channel, metadata=metadata)
        )
        texts = tuple(m["text"] for m in collector.messages if isinstance(m.get("text"), str) and m["text"].strip())
        if collector.tone is not None:
            return BotReply(texts, collector.tone, collector.handoff)
        tone, handed_off = await self._slots(sender_id)
        return BotReply(texts, tone, collector.handoff or handed_off)

    async def _slots(self, sender_id: str) -> tuple[str, bool]:
        agent = self._agent() if self._agent else None
        if agent is None or getattr(agent, "tracker_store", None) is None:
            return "neutral", False
        try:
            tracker = await agent.tracker_store.retrieve(sender_id)
        except Exception as exc:  # the reply still goes out in the default tone
            log_event(logger, logging.WARNING, "connector.tracker.unavailable", sender_id=sender_id, error=repr(exc))
            return "neutral", False
        if tracker is None:
            return "neutral", False
        return str(tracker.get_slot(TONE_SLOT) or "neutral"), bool(tracker.get_slot(HANDOFF_SLOT))
