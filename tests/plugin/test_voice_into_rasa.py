"""Real speech -> voice model -> Rasa message metadata -> EmotionRecognizer -> fused turn emotion."""

from __future__ import annotations

import numpy as np
import pytest
from rasa.shared.nlu.training_data.message import Message

from models import audio
from models.emotion import LABEL_INDEX, TurnEmotion
from models.voice import VoiceEmotionModel
from plugin.nlu import PARSE_KEY, EmotionRecognizer
from tests.conftest import shared_data

TEXT = "Okay, I see. Can you check my account please?"
# RAVDESS actor 14, angry, strong intensity, "Dogs are sitting by the door".
ANGRY_CLIP = ("speech", "ravdess", "Actor_14", "03-01-05-02-02-01-14.flac")


@pytest.fixture(scope="module")
def voice_model() -> VoiceEmotionModel:
    return VoiceEmotionModel.load()


def parse(recognizer: EmotionRecognizer, metadata: object) -> TurnEmotion:
    msg = Message(data={"text": TEXT, "message_id": "m-voice", "metadata": metadata})
    recognizer.process([msg])
    return TurnEmotion.from_dict(msg.get(PARSE_KEY))


def test_an_angry_voice_changes_the_fused_emotion_of_a_calm_sentence(
    recognizer: EmotionRecognizer, voice_model: VoiceEmotionModel
) -> None:
    pcm = audio.TelephoneChannel(snr_db=(20.0,)).apply(audio.load(shared_data(*ANGRY_CLIP)), np.random.default_rng(5))
    estimate = voice_model.predict(pcm, start=0.0, end=pcm.size / audio.SAMPLE_RATE)
    assert estimate.label == "angry", estimate.to_dict(with_embedding=False)

    text_only = parse(recognizer, None)
    fused = parse(recognizer, {"toneline": {"voice": estimate.to_dict(), "channel": "twilio"}})

    assert set(fused.weights) == {"text", "voice"} and fused.weights["voice"] > 0.2, fused.weights
    assert fused.probs[LABEL_INDEX["angry"]] > text_only.probs[LABEL_INDEX["angry"]] + 0.1
    assert fused.arousal > text_only.arousal and fused.valence < text_only.valence
    voice_in_turn = [e for e in fused.estimates if e.modality.value == "voice"]
    assert voice_in_turn and voice_in_turn[0].model == voice_model.name
