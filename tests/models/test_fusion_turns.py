"""The shipped fusion on real estimates: polite words in an angry voice."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from models import audio
from models.emotion import VALENCE
from models.fusion import TrainedFusion
from models.text import TextEmotionModel
from models.voice import VoiceEmotionModel
from tests.conftest import shared_data

POLITE = "Thank you so much for your help, I really appreciate it."


def angry_clips(actor: int) -> list[Path]:
    base = shared_data("speech", "ravdess")
    with (base / "metadata.csv").open(newline="") as handle:
        rows = csv.DictReader(handle)
        return [
            base / r["path"]
            for r in rows
            if r["emotion"] == "angry" and r["intensity"] == "strong" and int(r["actor"]) == actor
        ]


@pytest.mark.parametrize("actor", [19, 20])
def test_polite_words_in_an_angry_voice_are_fused_as_angry_and_the_weights_say_why(actor: int) -> None:
    text = TextEmotionModel.load(threads=1).predict(POLITE)
    assert text.label == "happy" and text.valence > 0.5  # the words alone read as pleased
    voice = VoiceEmotionModel.load(threads=1).predict(audio.load(angry_clips(actor)[0]))
    assert voice.label == "angry"
    turn = TrainedFusion.load().fuse([text, voice])
    assert turn.label == "angry"
    assert turn.valence < VALENCE["neutral"]
    # The weights say which stream it believed: the angry voice (RAVDESS taught the fusion that, where
    # both speak, the voice carries the emotion; the card lists what that costs).
    assert turn.weights["voice"] > 0.6 and turn.weights["voice"] - turn.weights["text"] > 0.25
    shown = turn.to_dict()
    assert shown["weights"]["voice"] > shown["weights"]["text"] and shown["label"] == "angry"
