"""What the end-to-end call tests of every provider share: the callers' scripts and the waits."""

from __future__ import annotations

import asyncio
from typing import Any, Callable

from connectors.call.simulator import Reply, SimulatedCall
from tests.connectors.speech_fixtures import speak

ANGRY_CALLER = [
    "I was charged twice and nobody fixed it.",
    "I am so angry, this is ridiculous!",
    "This is the worst service ever. I am furious!",
    "I am so angry, this is ridiculous!",
]
SPEED = 2.0  # stream twice as fast as real time: the VAD and the bot see the same audio


async def eventually(check: Callable[[], bool], within: float) -> bool:
    """Whether `check` holds within `within` seconds (polled every 100 ms)."""
    for _ in range(int(within / 0.1)):
        if check():
            return True
        await asyncio.sleep(0.1)
    return False


async def greeted(call: SimulatedCall) -> Reply:
    """The caller listens to the opening notice, says hello once and hangs up after the bot's reply."""
    try:
        await call.silence(0.5)
        await call.hear_opening()
        return await call.wait_reply(await call.say(await speak("Hello, is anyone there?")))
    finally:
        await call.hang_up()


def user_turns(tracker: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in tracker["events"] if e["event"] == "user"]
