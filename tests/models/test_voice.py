"""The shipped voice emotion model on real speech: labels, the encoder-reuse path, bad input, threads."""

from __future__ import annotations

import csv
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from models import audio
from models.emotion import LABELS, Modality
from models.voice import DEFAULT_HEAD, VoiceEmotionModel, WhisperEncoder
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def model() -> VoiceEmotionModel:
    return VoiceEmotionModel.load()


def ravdess(emotion: str, intensity: str, actors: tuple[int, ...], limit: int) -> list[Path]:
    base = shared_data("speech", "ravdess")
    with (base / "metadata.csv").open(newline="") as handle:
        rows = [
            base / r["path"]
            for r in csv.DictReader(handle)
            if r["emotion"] == emotion and r["intensity"] == intensity and int(r["actor"]) in actors
        ]
    return rows[:limit]


def test_shipped_weights_are_small_and_carry_their_provenance() -> None:
    assert DEFAULT_HEAD.stat().st_size < 3_000_000
    info = json.loads(DEFAULT_HEAD.with_suffix(".json").read_text())
    assert info["labels"] == list(LABELS)
    assert 0.2 < info["temperature"] < 5.0
    assert len(info["cv"]["folds"]) == info["settings"]["folds"]
    assert "CC BY-NC-SA 4.0" in info["data"]


def test_strong_anger_and_neutral_speech_are_told_apart(model: VoiceEmotionModel) -> None:
    # Actors 19-20 (one man, one woman). The shipped head saw every actor, so this checks the
    # inference path end to end; unseen-speaker accuracy is what the card's actor-fold CV measures.
    actors = (19, 20)
    angry = [audio.load(p) for p in ravdess("angry", "strong", actors, 4)]
    neutral = [audio.load(p) for p in ravdess("neutral", "normal", actors, 4)]
    telephone = audio.TelephoneChannel(snr_db=(15.0,))
    phone_angry = [telephone.apply(pcm, np.random.default_rng(i)) for i, pcm in enumerate(angry)]
    got_angry = [e.label for e in model.predict_batch(angry + phone_angry)]
    got_neutral = [e.label for e in model.predict_batch(neutral)]
    assert got_angry.count("angry") >= 6, got_angry
    assert sum(label in ("neutral", "sad") for label in got_neutral) >= 3, got_neutral
    arousal = [e.arousal for e in model.predict_batch(angry)], [e.arousal for e in model.predict_batch(neutral)]
    assert np.mean(arousal[0]) > np.mean(arousal[1]) + 0.2


def test_estimate_is_a_voice_estimate_with_span_and_embedding(model: VoiceEmotionModel) -> None:
    pcm = audio.load(ravdess("sad", "strong", (3,), 1)[0])
    estimate = model.predict(pcm, start=12.5, end=12.5 + pcm.size / audio.SAMPLE_RATE)
    assert estimate.modality is Modality.VOICE
    assert estimate.start == 12.5 and estimate.end is not None and estimate.end > 15.0
    assert abs(sum(estimate.probs) - 1.0) < 1e-6 and 0.0 <= estimate.confidence <= 1.0
    assert estimate.embedding is not None and len(estimate.embedding) == model.head.embed[-1].out_features
    assert estimate.model.startswith("voice-whisper-asp@")
    assert estimate.to_dict()["modality"] == "voice"


def test_predict_from_encoder_states_equals_predict(model: VoiceEmotionModel) -> None:
    pcm = audio.load(ravdess("fearful", "strong", (8,), 1)[0])
    states = model.encode(pcm)
    assert states.shape == (int(np.ceil(pcm.size / 320)), WhisperEncoder.dim)
    # The audio is passed too: a head with a filterbank branch reads it, one without ignores it.
    direct, reused = model.predict(pcm), model.predict_from_encoder(states, pcm16k=pcm)
    assert np.allclose(direct.probs, reused.probs, atol=1e-6)
    assert np.allclose(direct.embedding or (), reused.embedding or (), atol=1e-5)
    # A batch dimension of one, as an encoder returns it, is accepted too.
    assert np.allclose(model.predict_from_encoder(states[None], pcm16k=pcm).probs, direct.probs, atol=1e-6)
    if model.needs_audio:
        with pytest.raises(audio.AudioError, match="filterbank"):
            model.predict_from_encoder(states)


def test_a_turn_is_scored_the_same_alone_or_in_a_batch(model: VoiceEmotionModel) -> None:
    clips = [audio.load(p) for p in ravdess("happy", "strong", (5, 6), 3)]
    batch = model.predict_batch(clips)
    assert [np.round(e.probs, 5).tolist() for e in batch] == [
        np.round(model.predict(c).probs, 5).tolist() for c in clips
    ]


def test_concurrent_predictions_from_threads_agree(model: VoiceEmotionModel) -> None:
    pcm = audio.load(ravdess("surprised", "strong", (11,), 1)[0])
    expected = model.predict(pcm).probs
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: model.predict(pcm).probs, range(8)))
    assert all(np.allclose(r, expected, atol=1e-6) for r in results)


@pytest.mark.parametrize(
    ("pcm", "message"),
    [
        (np.zeros(0, dtype=np.float32), "too short"),
        (np.zeros(800, dtype=np.float32), "too short"),
        (np.full(16_000, np.inf, dtype=np.float32), "NaN or infinity"),
        (np.zeros((16_000, 2), dtype=np.float32), "mono"),
        (np.zeros(16_000, dtype=np.int16), "float"),
    ],
)
def test_bad_audio_raises_audio_error(model: VoiceEmotionModel, pcm: np.ndarray, message: str) -> None:
    with pytest.raises(audio.AudioError, match=message):
        model.predict(pcm)


@pytest.mark.parametrize(
    "states",
    [
        np.zeros((50, 80)),
        np.zeros((50, 384)),  # the encoder output alone: the head reads all four blocks
        np.zeros((2, WhisperEncoder.dim)),
        np.full((50, WhisperEncoder.dim), np.nan),
    ],
)
def test_bad_encoder_states_raise_audio_error(model: VoiceEmotionModel, states: np.ndarray) -> None:
    with pytest.raises(audio.AudioError, match="encoder states"):
        model.predict_from_encoder(states)


def test_long_turns_are_truncated_to_the_encoder_window(model: VoiceEmotionModel) -> None:
    pcm = np.tile(audio.load(ravdess("angry", "strong", (2,), 1)[0]), 9)  # ~33 s
    assert model.encode(pcm).shape[0] == 1500
    assert model.predict(pcm).label in LABELS


def test_a_head_saved_before_layers_existed_reads_the_encoder_output_only(tmp_path: Path) -> None:
    from models.voice import VoiceCheckpoint, VoiceHead

    legacy = VoiceHead(layers=1)
    arch = {"channels": 256, "attention": 128, "embedding": 128, "dropout": 0.3, "stride": 2, "fbank_channels": 0}
    VoiceCheckpoint(legacy.state_dict(), LABELS, 1.0, arch, {"version": "old"}).save(tmp_path / "old.pt")
    model = VoiceEmotionModel.load(tmp_path / "old.pt")
    assert model.head.layers == 1
    states = np.random.default_rng(0).normal(size=(60, WhisperEncoder.dim)).astype(np.float32)
    changed_lower_blocks = states.copy()
    changed_lower_blocks[:, : -WhisperEncoder.width] = 0.0
    assert np.allclose(
        model.predict_from_encoder(states).probs, model.predict_from_encoder(changed_lower_blocks).probs, atol=1e-6
    )
