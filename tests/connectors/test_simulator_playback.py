"""The provider simulator plays bot audio in real time: a caller can wait for the bot to finish, or talk over it."""

from __future__ import annotations

import time

import pytest

from connectors.call.simulator import SimulatedCall
from connectors.speech.codec import MULAW_8K


@pytest.mark.asyncio
async def test_a_caller_waits_until_the_bot_audio_received_has_played() -> None:
    call = SimulatedCall(ws=None, codec=MULAW_8K)
    call.played(b"\xff" * (MULAW_8K.bytes_per_second * 3 // 10))  # 0.3 s of reply, all here at once
    call.played(b"\xff" * (MULAW_8K.bytes_per_second * 2 // 10))  # then 0.2 s more: it plays after the first
    start = time.monotonic()
    await call.wait_played()
    assert time.monotonic() - start >= 0.45


@pytest.mark.asyncio
async def test_a_clear_ends_playback_at_once_and_a_timeout_bounds_the_wait() -> None:
    call = SimulatedCall(ws=None, codec=MULAW_8K)
    call.played(b"\xff" * (MULAW_8K.bytes_per_second * 60))  # a minute of reply
    assert call.playing and not call.cleared_at
    call.cleared_playback(return_marks=True)
    assert not call.playing and len(call.cleared_at) == 1  # stamped: bench.barge_in times the bot stopping
    start = time.monotonic()
    await call.wait_played()
    call.played(b"\xff" * (MULAW_8K.bytes_per_second * 60))
    await call.wait_played(timeout=0.2)
    assert time.monotonic() - start < 5.0
