"""The Rasa side of a voice call: one caller turn in, the bot's replies, tone and handoff out.

A thin adapter: the sessions know `BotGateway`, only this module knows Rasa.
The reply's tone comes from the reply itself: Rasa passes the chosen response
variation's keys along with its text, so a variation conditioned on the tone
slot (`condition: [{type: slot, name: toneline_tone, value: calm}]`, as in the
demo's domain) names its tone; a reply written for no tone in particular (a
default variation, a custom action's text) is spoken in the neutral tone.
The handoff is the handoff response (`utter_handoff`) or a custom payload
`{"handoff": true}`. No tracker is read: the names come from the turn's
contract (`plugin.metadata`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Dict

from rasa.core.channels.channel import CollectingOutputChannel, UserMessage

from plugin.metadata import HANDOFF_RESPONSE, NEUTRAL_TONE, SlotNames


@dataclass(frozen=True)
class BotReply:
    """What the bot said to one turn, in which tone, and whether it handed the caller to a person."""

    texts: tuple[str, ...]
    tone: str = NEUTRAL_TONE
    handoff: bool = False


class BotGateway(abc.ABC):
    """Where a session sends caller turns."""

    @abc.abstractmethod
    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        """Deliver one turn; returns the bot's reply."""


class _Collector(CollectingOutputChannel):  # Rasa 3.6 ships no type information: pyproject allows the subclass
    """Collects replies; notices the handoff response (Rasa adds `utter_action` to each response) and the tone a
    response variation was chosen for (its `condition` on the tone slot)."""

    def __init__(self, channel_name: str, tone_slot: str) -> None:
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
    """Sends turns through the channel's `on_new_message`; tone and handoff come from the replies."""

    def __init__(
        self,
        on_new_message: Callable[[UserMessage], Awaitable[Any]],
        channel_name: str,
        slots: SlotNames | None = None,
    ) -> None:
        self._on_new_message = on_new_message
        self._channel = channel_name
        self._tone_slot = (slots or SlotNames()).tone

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        collector = _Collector(self._channel, self._tone_slot)
        await self._on_new_message(
            UserMessage(text, collector, sender_id, input_channel=self._channel, metadata=metadata)
        )
        texts = tuple(m["text"] for m in collector.messages if isinstance(m.get("text"), str) and m["text"].strip())
        return BotReply(texts, collector.tone or NEUTRAL_TONE, collector.handoff)
