"""The shared encoder pass: one turn in, the decoder's encoder output and the voice estimate out."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from models.audio import SAMPLE_RATE, AudioError
from models.listen import MAX_TURN_SAMPLES, PAD_SECONDS, TurnListener
from models.voice import CallerBaseline, frames_covering, pooled_stats
from models.whisper import WIDTH


@pytest.fixture(scope="module")
def listener() -> TurnListener:
    return TurnListener.load()


def voiced(seconds: float, seed: int = 0) -> NDArray[Any]:
    """A buzzy, pitch-varying sound with some noise: not speech, but audio the encoder and head read."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pitch = 120 + 30 * np.sin(2 * np.pi * 0.7 * t)
    buzz = np.sign(np.sin(2 * np.pi * np.cumsum(pitch) / SAMPLE_RATE))
    pcm: NDArray[Any] = (0.2 * buzz + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    return pcm


def test_one_pass_gives_the_decoder_its_states_and_reads_the_voice_without_learning(listener: TurnListener) -> None:
    baseline = CallerBaseline()
    baseline.add(pooled_stats(listener.encoder.encode(voiced(2.0, seed=1))))
    pcm = voiced(2.0)
    encoded = listener.forward(listener.preprocess(pcm))
    listening = listener.postprocess(encoded, 0.5, 2.5, baseline=baseline)
    # The decoder reads every frame of the turn and its trailing silence, the last block only.
    assert listening.decoder_states.shape == (int((2.0 + PAD_SECONDS) * 50), WIDTH)
    assert np.array_equal(listening.decoder_states, encoded.states[:, -WIDTH:])
    # The voice reads only the frames covering the turn, against the baseline, which it leaves as it was.
    assert len(encoded.covering) == frames_covering(pcm.size) == 100
    assert listening.stats is not None and np.array_equal(listening.stats, pooled_stats(encoded.covering))
    assert listening.voice is not None and (listening.voice.start, listening.voice.end) == (0.5, 2.5)
    assert baseline.turns == 1
    # The whole pass in one call gives the same, and without emotion neither estimate nor statistics.
    again = listener.listen(pcm, 0.5, 2.5, baseline=baseline)
    assert again.voice is not None and again.voice.probs == listening.voice.probs
    plain = listener.listen(pcm, emotion=False)
    assert plain.voice is None and plain.stats is None and np.array_equal(plain.decoder_states, again.decoder_states)


def test_a_long_turn_is_cut_so_that_it_and_its_pad_fit_whispers_window(listener: TurnListener) -> None:
    listening = listener.listen(voiced(40.0), emotion=False)
    assert listening.seconds == MAX_TURN_SAMPLES / SAMPLE_RATE == 30.0 - PAD_SECONDS
    assert listening.decoder_states.shape == (1500, WIDTH)


@pytest.mark.parametrize("pcm", [np.zeros(100, np.float32), np.zeros((2, 8000), np.float32)], ids=["short", "2-d"])
def test_audio_outside_the_internal_format_is_refused(listener: TurnListener, pcm: NDArray[Any]) -> None:
    with pytest.raises(AudioError):
        listener.listen(pcm)
