"""A caller who starts upset does not teach the baseline that upset is their normal (issue 30).

Real speech of the RAVDESS actors the shipped head never heard, through the production path: the
recognizer hears each turn against the call's baseline and the session offers the turn it keeps
(`Hearing.keep_in`), which the baseline takes only when the head, reading the turn alone, finds it calm.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from connectors.speech.recognizer import Hearing, SpeechRecognizer
from models import audio
from models.listen import TurnListener
from models.turns import call_turn
from models.voice import CallerBaseline, held_out_speakers
from tests.conftest import shared_data

ACTORS = held_out_speakers().ravdess_actors


@pytest.fixture(scope="module")
def recognizer() -> SpeechRecognizer:
    return SpeechRecognizer.around(TurnListener.load())


def clips(emotion: str, intensity: str, actor: int, limit: int) -> list[Path]:
    base = shared_data("speech", "ravdess")
    with (base / "metadata.csv").open(newline="") as handle:
        rows = [
            base / r["path"]
            for r in csv.DictReader(handle)
            if (r["emotion"], r["intensity"], int(r["actor"])) == (emotion, intensity, actor)
        ]
    return rows[:limit]


def call(
    recognizer: SpeechRecognizer, turns: list[Path], baseline: CallerBaseline, every: bool = False
) -> list[Hearing]:
    """One caller's turns in order, each heard against the baseline and then kept, as the call core does;
    `every`: the baseline as it was before issue 30, which every kept turn joined."""
    heard = []
    for path in turns:
        turn = call_turn(audio.load(path))  # the turn a call cuts from the recording, as the head hears it
        assert turn is not None
        hearing = recognizer.hear(turn, baseline=baseline)
        assert hearing.voice is not None and hearing.absolute is not None and hearing.stats is not None
        if every:
            baseline.add(hearing.stats)
        else:
            hearing.keep_in(baseline)
        heard.append(hearing)
    return heard


@pytest.mark.parametrize("actor", ACTORS)
def test_a_caller_who_starts_angry_keeps_reading_angry(recognizer: SpeechRecognizer, actor: int) -> None:
    angry = clips("angry", "strong", actor, 4)
    gated = CallerBaseline()
    heard = call(recognizer, angry, gated)
    # The head reads each angry turn as not calm on its own, so none of them teaches the baseline.
    assert (gated.turns, gated.passed_over) == (0, len(angry))
    assert all(h.voice is not None and h.voice.family == "negative" for h in heard)
    # Read as first turns, the later turns are as negative as on their own; a baseline that learnt every
    # turn would have read them against the caller's anger, as less of a departure.
    before = call(recognizer, angry, CallerBaseline(), every=True)
    later = [h.voice.negative for h in heard[1:] if h.voice is not None]
    learnt_anger = [h.voice.negative for h in before[1:] if h.voice is not None]
    assert sum(later) > sum(learnt_anger)


@pytest.mark.parametrize("actor", ACTORS)
def test_a_calm_start_still_teaches_the_baseline_and_a_later_angry_turn_departs_from_it(
    recognizer: SpeechRecognizer, actor: int
) -> None:
    baseline = CallerBaseline()
    heard = call(recognizer, clips("neutral", "normal", actor, 3) + clips("angry", "strong", actor, 1), baseline)
    calm = [h for h in heard[:3] if h.absolute is not None and h.absolute.family == "neutral"]
    assert calm, "the held-out actor's neutral turns should read neutral on their own"
    assert baseline.turns >= 1 and baseline.turns + baseline.passed_over == 4
    last = heard[-1].voice
    assert last is not None and last.family == "negative"
    assert heard[-1].absolute is not heard[-1].voice  # read against the calm turns, and once more alone
