"""Wire audio <-> canonical 16 kHz mono float32 inside, converted once at the edge, for every provider.

A `WireCodec` is what the call core knows of a provider's audio: a per-call
streaming decoder, an encoder, and the 20 ms frame size replies are cut into.
Two exist: G.711 mu-law 8 kHz (Twilio, AudioHook) and 16-bit little-endian
linear PCM at 8 or 16 kHz (Vonage). Inbound audio arrives in 20 ms chunks;
resampling each chunk on its own would click at every boundary, so each call
stream keeps a `soxr.ResampleStream`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
import soxr
from numpy.typing import NDArray

from models.audio import PHONE_RATE, SAMPLE_RATE, float_to_pcm16, pcm16_to_float, resample, ulaw_decode, ulaw_encode

FRAME_MS = 20
FRAME_BYTES = PHONE_RATE * FRAME_MS // 1000  # 160 mu-law bytes = 20 ms at 8 kHz
ULAW_SILENCE = 0xFF  # mu-law code of 0


class StreamDecoder(Protocol):
    """One call channel's wire bytes -> canonical float32 chunks, continuous across chunks."""

    def decode(self, payload: bytes) -> NDArray[np.float32]: ...


class WireCodec(Protocol):
    """A provider's audio format, as the call core needs it."""

    @property
    def name(self) -> str: ...

    @property
    def frame_bytes(self) -> int:
        """Bytes of one 20 ms outbound frame."""

    @property
    def bytes_per_second(self) -> int: ...

    def decoder(self) -> StreamDecoder:
        """A fresh decoder for one call (it keeps resampler state)."""

    def encode(self, pcm: NDArray[np.float32]) -> bytes:
        """Canonical audio -> wire bytes."""

    def frames(self, pcm: NDArray[np.float32]) -> list[bytes]:
        """Canonical audio -> wire frames of `frame_bytes`, the last padded with the codec's silence."""


class InboundDecoder:
    """One call channel's mu-law 8 kHz byte stream -> canonical float32 chunks, continuous across chunks."""

    def __init__(self) -> None:
        self._stream = soxr.ResampleStream(PHONE_RATE, SAMPLE_RATE, 1, dtype="float32", quality="HQ")

    def decode(self, payload: bytes) -> NDArray[np.float32]:
        """The canonical samples of one chunk (soxr may hold back a few ms of filter delay)."""
        narrow = pcm16_to_float(ulaw_decode(np.frombuffer(payload, dtype=np.uint8)))
        return np.asarray(self._stream.resample_chunk(narrow), dtype=np.float32)


class Linear16Decoder:
    """Little-endian 16-bit PCM at `rate` -> canonical chunks; an odd trailing byte waits for the next chunk."""

    def __init__(self, rate: int) -> None:
        self._carry = b""
        self._stream = (
            None if rate == SAMPLE_RATE else soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        )

    def decode(self, payload: bytes) -> NDArray[np.float32]:
        data = self._carry + payload
        usable = len(data) - len(data) % 2
        self._carry = data[usable:]
        pcm = pcm16_to_float(np.frombuffer(data[:usable], dtype="<i2"))
        if self._stream is None:
            return pcm
        return np.asarray(self._stream.resample_chunk(pcm), dtype=np.float32)


@dataclass(frozen=True)
class MulawCodec:
    """G.711 mu-law at 8 kHz, one byte a sample."""

    name: str = "mulaw/8000"
    frame_bytes: int = FRAME_BYTES
    bytes_per_second: int = PHONE_RATE

    def decoder(self) -> StreamDecoder:
        return InboundDecoder()

    def encode(self, pcm: NDArray[np.float32]) -> bytes:
        return mulaw_from_canonical(pcm)

    def frames(self, pcm: NDArray[np.float32]) -> list[bytes]:
        return split_frames(self.encode(pcm), self.frame_bytes, ULAW_SILENCE)


@dataclass(frozen=True)
class Linear16Codec:
    """16-bit little-endian linear PCM (Vonage's `audio/l16;rate=...`), 20 ms frames."""

    rate: int = SAMPLE_RATE

    @property
    def name(self) -> str:
        return f"l16/{self.rate}"

    @property
    def frame_bytes(self) -> int:
        return self.rate * FRAME_MS // 1000 * 2  # 640 bytes at 16 kHz

    @property
    def bytes_per_second(self) -> int:
        return self.rate * 2

    def decoder(self) -> StreamDecoder:
        return Linear16Decoder(self.rate)

    def encode(self, pcm: NDArray[np.float32]) -> bytes:
        audio = np.clip(pcm, -1.0, 1.0)
        if self.rate != SAMPLE_RATE:
            audio = resample(audio, SAMPLE_RATE, self.rate)
        return float_to_pcm16(audio).astype("<i2").tobytes()

    def frames(self, pcm: NDArray[np.float32]) -> list[bytes]:
        return split_frames(self.encode(pcm), self.frame_bytes, 0)


MULAW_8K = MulawCodec()


def mulaw_from_canonical(pcm: NDArray[np.float32]) -> bytes:
    """Canonical audio -> 8 kHz mu-law bytes for the phone."""
    narrow = resample(np.clip(pcm, -1.0, 1.0), SAMPLE_RATE, PHONE_RATE)
    return ulaw_encode(float_to_pcm16(narrow)).tobytes()


def canonical_from_mulaw(payload: bytes) -> NDArray[np.float32]:
    """A whole mu-law 8 kHz clip -> canonical audio (tests and offline use; streams use `InboundDecoder`)."""
    narrow = pcm16_to_float(ulaw_decode(np.frombuffer(payload, dtype=np.uint8)))
    return resample(narrow, PHONE_RATE, SAMPLE_RATE)


def split_frames(payload: bytes, size: int = FRAME_BYTES, pad: int = ULAW_SILENCE) -> list[bytes]:
    """Cut wire audio into `size`-byte frames, the last one padded with the silence byte `pad`."""
    frames = [payload[i : i + size] for i in range(0, len(payload), size)]
    if frames and len(frames[-1]) < size:
        frames[-1] = frames[-1] + bytes([pad]) * (size - len(frames[-1]))
    return frames


def deinterleave(payload: bytes, channels: int) -> list[bytes]:
    """Interleaved 8-bit multi-channel audio -> one byte string per channel (a trailing partial sample is dropped)."""
    usable = len(payload) - len(payload) % channels
    data = np.frombuffer(payload[:usable], dtype=np.uint8)
    return [data[c::channels].tobytes() for c in range(channels)]
