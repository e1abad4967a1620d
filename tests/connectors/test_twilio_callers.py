"""End to end with real people's speech: calm and angry callers on simulated Twilio calls.

The whole telephony path runs: the simulator streams mu-law frames, the channel's VAD cuts turns,
faster-whisper transcribes, the voice model reads the voice, Rasa with Toneline fuses, routes and
answers, Redis records. Callers are speakers the shipped voice head never heard
(`bench.quality_calls.held_out`); `python -m bench.quality_calls` runs 20 of each and reports the rates.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from bench.quality_calls import (
    POCKETSPHINX,
    MaterialMissing,
    angry_caller,
    calm_caller,
    held_out,
    pocketsphinx_sentences,
)
from connectors.twilio.simulator import CallerOutcome, run_caller
from tests.connectors.conftest import AUTH_TOKEN, VoiceStack
from training.data import data_root

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.data,
    pytest.mark.skipif(
        not POCKETSPHINX.exists(),
        reason=f"needs Debian's pocketsphinx-testdata in {POCKETSPHINX} (apt-get install pocketsphinx-testdata; "
        ".ci/run installs it)",
    ),
    pytest.mark.skipif(
        not (data_root() / "speech" / "fsdd").exists() or not (data_root() / "speech" / "ravdess").exists(),
        reason=f"needs FSDD and RAVDESS in {data_root() / 'speech'} (../shared/data, or set TONELINE_DATA)",
    ),
]
SPEED = 2.0  # as in test_twilio_call: the VAD and the bot hear the same audio, twice as fast


def evidence(outcome: CallerOutcome) -> str:
    """Per turn: transcript, voice / text / fused emotion, tone and decision, for the failure message."""
    return "\n".join(turn.line() for turn in outcome.turns)


async def play(stack: VoiceStack, utterances: list[Any], caller: str) -> CallerOutcome:
    async def tracker(sender: str) -> dict[str, Any]:
        return stack.tracker(sender)

    return await run_caller(stack.url, AUTH_TOKEN, utterances, tracker, caller=caller, speed=SPEED)


@pytest.mark.asyncio
async def test_a_calm_caller_reading_numbers_and_sentences_is_never_transferred(voice_stack: VoiceStack) -> None:
    held = held_out()
    rng = random.Random(1)
    try:
        utterances = calm_caller(held.fsdd_speakers[0], pocketsphinx_sentences(), rng)
    except MaterialMissing as exc:
        pytest.skip(str(exc))
    outcome = await play(voice_stack, utterances, "+15550161")
    assert not outcome.transferred, f"calm caller transferred:\n{evidence(outcome)}"
    assert outcome.spoken == len(utterances) == 6
    assert len(outcome.turns) >= 5, f"turns went unheard:\n{evidence(outcome)}"
    assert all(turn.tone == "neutral" for turn in outcome.turns), f"tone left neutral:\n{evidence(outcome)}"
    assert all(turn.voice is not None for turn in outcome.turns), f"a turn had no voice estimate:\n{evidence(outcome)}"
    assert voice_stack.tracker(outcome.call_sid)["slots"]["handed_off"] is False


ANGRY_WITHIN = 4  # issue 30: a caller angry from the first turn, with neutral words, is handed over within 4 turns


@pytest.mark.asyncio
@pytest.mark.parametrize("which", [0, 1], ids=["first-held-out-actor", "second-held-out-actor"])
async def test_a_caller_angry_from_the_first_turn_the_voice_model_never_heard_is_transferred(
    voice_stack: VoiceStack, which: int
) -> None:
    """Each held-out actor (one male, one female) calls angry from the first turn with RAVDESS's neutral words:
    only the voice, cut into turns by the call core, carries the anger."""
    held = held_out()
    if len(held.ravdess_actors) <= which:
        pytest.skip(f"fewer than {which + 1} RAVDESS actors are held out from the shipped voice head ({held.source})")
    try:
        utterances = angry_caller(held.ravdess_actors[which], random.Random(2), turns=ANGRY_WITHIN)
    except MaterialMissing as exc:
        pytest.skip(str(exc))
    outcome = await play(voice_stack, utterances, f"+1555016{2 + which}")
    assert outcome.transferred, f"angry caller not transferred in {ANGRY_WITHIN} turns:\n{evidence(outcome)}"
    assert outcome.transferred_after is not None and outcome.transferred_after <= ANGRY_WITHIN
    assert sum(turn.handoff for turn in outcome.turns) == 1, evidence(outcome)
