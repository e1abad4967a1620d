"""G.711 mu-law 8 kHz at the wire <-> canonical 16 kHz mono float32 inside, converted once at the edge.

Inbound audio arrives in 20 ms chunks; resampling each chunk on its own would
click at every boundary, so each call stream keeps a `soxr.ResampleStream`.
"""

from __future__ import annotations

import numpy as np
import soxr

from models.audio import PHONE_RATE, SAMPLE_RATE, float_to_pcm16, pcm16_to_float, resample, ulaw_decode, ulaw_encode

FRAME_MS = 20
FRAME_BYTES = PHONE_RATE * FRAME_MS // 1000  # 160 mu-law bytes = 20 ms at 8 kHz
ULAW_SILENCE = 0xFF  # mu-law code of 0


class InboundDecoder:
    """One call channel's mu-law 8 kHz byte stream -> canonical float32 chunks, continuous across chunks."""

    def __init__(self) -> None:
        self._stream = soxr.ResampleStream(PHONE_RATE, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def decode(self, payload: bytes) -> np.ndarray:
        """The canonical samples of one chunk (soxr may hold back a few ms of filter delay)."""
        narrow = pcm16_to_float(ulaw_decode(np.frombuffer(payload, dtype=np.uint8)))
        return np.asarray(self._stream.resample_chunk(narrow), dtype=np.float32)

    def flush(self) -> np.ndarray:
        """Whatever is left in the resampler at the end of the stream."""
        return np.asarray(self._stream.resample_chunk(np.zeros(0, np.float32), last=True), dtype=np.float32)


def mulaw_from_canonical(pcm: np.ndarray) -> bytes:
    """Canonical audio -> 8 kHz mu-law bytes for the phone."""
    narrow = resample(np.clip(pcm, -1.0, 1.0), SAMPLE_RATE, PHONE_RATE)
    return ulaw_encode(float_to_pcm16(narrow)).tobytes()


def canonical_from_mulaw(payload: bytes) -> np.ndarray:
    """A whole mu-law 8 kHz clip -> canonical audio (tests and offline use; streams use `InboundDecoder`)."""
    narrow = pcm16_to_float(ulaw_decode(np.frombuffer(payload, dtype=np.uint8)))
    return resample(narrow, PHONE_RATE, SAMPLE_RATE)


def split_frames(payload: bytes, size: int = FRAME_BYTES) -> list[bytes]:
    """Cut wire audio into `size`-byte frames, the last one padded with silence."""
    frames = [payload[i : i + size] for i in range(0, len(payload), size)]
    if frames and len(frames[-1]) < size:
        frames[-1] = frames[-1] + bytes([ULAW_SILENCE]) * (size - len(frames[-1]))
    return frames


def deinterleave(payload: bytes, channels: int) -> list[bytes]:
    """Interleaved 8-bit multi-channel audio -> one byte string per channel (a trailing partial sample is dropped)."""
    usable = len(payload) - len(payload) % channels
    data = np.frombuffer(payload[:usable], dtype=np.uint8)
    return [data[c::channels].tobytes() for c in range(channels)]
