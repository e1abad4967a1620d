"""The Rasa bot gateway learns the reply's tone from the reply, and reads the tracker only when it must."""

from __future__ import annotations

from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage

from connectors.bot import RasaBot


def variation(text: str, tone: str | None, action: str = "utter_billing") -> dict[str, Any]:
    """A bot message as Rasa 3.6 hands it to the output channel (the chosen variation's keys ride along)."""
    message: dict[str, Any] = {"text": text, "utter_action": action}
    if tone is not None:
        message["condition"] = [{"type": "slot", "name": "toneline_tone", "value": tone}]
    return message


class Tracker:
    def __init__(self, slots: dict[str, Any]) -> None:
        self.slots = slots

    def get_slot(self, name: str) -> Any:
        return self.slots.get(name)


class Store:
    def __init__(self, slots: dict[str, Any]) -> None:
        self.reads = 0
        self.slots = slots

    async def retrieve(self, sender_id: str) -> Tracker:
        self.reads += 1
        return Tracker(self.slots)


class Agent:
    def __init__(self, slots: dict[str, Any]) -> None:
        self.tracker_store = Store(slots)


def bot_saying(messages: list[dict[str, Any]], agent: Agent) -> RasaBot:
    async def on_new_message(message: UserMessage) -> None:
        for reply in messages:
            await message.output_channel.send_response(message.sender_id, dict(reply))

    return RasaBot(on_new_message, "toneline_test", lambda: agent)


@pytest.mark.asyncio
async def test_a_variation_chosen_for_a_tone_names_it_without_a_tracker_read() -> None:
    agent = Agent({"toneline_tone": "neutral"})
    bot = bot_saying(
        [variation("I hear you.", "calm"), variation("Let me hand you over.", None, "utter_handoff")], agent
    )
    reply = await bot.send("c-1", "this is ridiculous", {})
    assert (reply.texts, reply.tone, reply.handoff) == (("I hear you.", "Let me hand you over."), "calm", True)
    assert agent.tracker_store.reads == 0


@pytest.mark.asyncio
async def test_a_reply_that_names_no_tone_falls_back_to_the_tracker() -> None:
    agent = Agent({"toneline_tone": "empathetic", "handed_off": False})
    reply = await bot_saying([variation("How can I help?", None, "utter_greet")], agent).send("c-2", "hi", {})
    assert (reply.tone, reply.handoff) == ("empathetic", False)
    assert agent.tracker_store.reads == 1
