"""What the voice head reads of a turn: pooled statistics of the encoder's states (and their checks).

A turn's `pooled_stats` are what the head classifies and what a caller's `CallerBaseline` averages.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.audio import MIN_SAMPLES, AudioError
from models.voice.encoder import WhisperEncoder, frames_covering
from models.whisper import BLOCKS, WIDTH

STATS_DIM = 2 * BLOCKS * WIDTH  # mean and standard deviation over time of every block's (normalised) states


def pooled_stats(states: NDArray[np.float32]) -> NDArray[np.float32]:
    """(T, 4 x 384) encoder states -> (3,072,) mean and standard deviation over time of each block's frames.

    Each frame of each block is normalised on its own first (the blocks' scales differ by
    an order of magnitude, and a level change should not move the statistics). What the
    head reads of a turn, and what a `CallerBaseline` averages.
    """
    x = np.asarray(states, dtype=np.float32).reshape(len(states), BLOCKS, WIDTH)
    x = (x - x.mean(axis=2, keepdims=True)) / (x.std(axis=2, keepdims=True) + 1e-5)
    return np.asarray(np.concatenate([x.mean(axis=0).ravel(), x.std(axis=0).ravel()]), np.float32)


def check_states(states: Any) -> NDArray[np.float32]:
    """Encoder states of one turn as (frames, 4 x 384) float32, or `AudioError` naming what is wrong."""
    arr = np.asarray(states, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] != WhisperEncoder.dim:
        raise AudioError(f"encoder states must have shape (frames, {WhisperEncoder.dim}), got {arr.shape}")
    if arr.shape[0] < frames_covering(MIN_SAMPLES):
        raise AudioError(f"encoder states cover {arr.shape[0]} frames; need at least {frames_covering(MIN_SAMPLES)}")
    if not np.all(np.isfinite(arr)):
        raise AudioError("encoder states contain NaN or infinity")
    return arr
