"""The Rasa bot gateway learns the reply's tone and the handoff from the replies themselves, never from a tracker."""

from __future__ import annotations

from typing import Any

import pytest
from rasa.core.channels.channel import UserMessage

from connectors.bot import RasaBot
from plugin.metadata import SlotNames


def variation(
    text: str, tone: str | None, action: str = "utter_billing", slot: str = "toneline_tone"
) -> dict[str, Any]:
    """A bot message as Rasa 3.6 hands it to the output channel (the chosen variation's keys ride along)."""
    message: dict[str, Any] = {"text": text, "utter_action": action}
    if tone is not None:
        message["condition"] = [{"type": "slot", "name": slot, "value": tone}]
    return message


def bot_saying(messages: list[dict[str, Any]], slots: SlotNames | None = None) -> RasaBot:
    async def on_new_message(message: UserMessage) -> None:
        for reply in messages:
            await message.output_channel.send_response(message.sender_id, dict(reply))

    return RasaBot(on_new_message, "toneline_test", slots)


@pytest.mark.asyncio
async def test_a_variation_chosen_for_a_tone_names_it_and_the_handoff_response_hands_over() -> None:
    bot = bot_saying([variation("I hear you.", "calm"), variation("Let me hand you over.", None, "utter_handoff")])
    reply = await bot.send("c-1", "this is ridiculous", {})
    assert (reply.texts, reply.tone, reply.handoff) == (("I hear you.", "Let me hand you over."), "calm", True)


@pytest.mark.asyncio
async def test_a_reply_written_for_no_tone_is_spoken_in_the_neutral_tone() -> None:
    reply = await bot_saying([variation("How can I help?", None, "utter_greet")]).send("c-2", "hi", {})
    assert (reply.tone, reply.handoff) == ("neutral", False)


@pytest.mark.asyncio
async def test_the_tone_slot_is_the_contract_s_and_can_be_renamed() -> None:
    renamed = SlotNames(tone="mood")
    reply = await bot_saying([variation("Sure.", "upbeat", slot="mood")], renamed).send("c-3", "great", {})
    assert reply.tone == "upbeat"
    other = await bot_saying([variation("Sure.", "upbeat", slot="toneline_tone")], renamed).send("c-4", "great", {})
    assert other.tone == "neutral"  # a condition on another slot names no tone


@pytest.mark.asyncio
async def test_a_custom_handoff_payload_hands_over() -> None:
    reply = await bot_saying([{"custom": {"handoff": True}}]).send("c-5", "agent please", {})
    assert reply.handoff and reply.texts == ()
