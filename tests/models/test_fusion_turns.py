"""The shipped fusion on real estimates: polite words in an angry voice, and the contact-centre spoken set."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from models import audio
from models.emotion import VALENCE
from models.fusion import EvidenceFusion
from models.text import TextEmotionModel
from models.voice import VoiceEmotionModel
from tests.conftest import shared_data
from training.recipes.fusion.report import SPOKEN_FLOOR, SPOKEN_MARGIN, spoken_check
from training.recipes.fusion.spoken import missing_engines, sentences

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
    turn = EvidenceFusion.load().fuse([text, voice])
    assert turn.label == "angry"
    assert turn.valence < VALENCE["neutral"]
    # The contributions say which stream the anger came from: the voice (the polite words argued against it).
    assert turn.weights["voice"] > 0.6 and turn.weights["voice"] - turn.weights["text"] > 0.25
    shown = turn.to_dict()
    assert shown["weights"]["voice"] > shown["weights"]["text"] and shown["label"] == "angry"


def test_the_spoken_set_has_what_a_contact_centre_hears() -> None:
    found = sentences()
    assert len(found) >= 60 and len({s.text for s in found}) == len(found)
    kinds = {s.kind for s in found}
    assert {"request", "thanks", "polite_angry", "angry"} <= kinds
    families = {s.label for s in found}
    assert {"neutral", "happy", "angry"} <= families


@pytest.mark.skipif(
    bool(missing_engines()),
    reason=f"needs {missing_engines()} to speak the contact-centre set (apt-get install espeak-ng flite; .ci/run does)",
)
def test_contact_centre_sentences_spoken_by_synthetic_voices_meet_the_bar() -> None:
    # Issue 16: fused family accuracy at least 0.85 and no more than 0.03 under the words alone.
    summary, _ = spoken_check(EvidenceFusion.load().weights)
    text, fused = summary["text"]["family_accuracy"], summary["fused"]["family_accuracy"]
    assert summary["n"] >= 300, summary["n"]
    assert fused >= SPOKEN_FLOOR and fused >= text - SPOKEN_MARGIN, summary
