"""The one internal audio format and the conversions at its edges.

Inside Toneline audio is always 16 kHz mono float32 numpy in [-1, 1]
(`SAMPLE_RATE`). Everything else (files at any rate or channel count, 16-bit
PCM, G.711 mu-law from the phone network) is converted once, here, so no two
other formats ever meet.

`TelephoneChannel` simulates what a phone call does to a customer's voice:
level change, background noise, 8 kHz, the 300 to 3400 Hz band, the G.711
mu-law round trip, and back to 16 kHz. It is seeded, so training augmentation
and the telephone evaluation are reproducible.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr
from numpy.typing import NDArray
from scipy import signal

SAMPLE_RATE = 16_000
PHONE_RATE = 8_000
PHONE_BAND = (300.0, 3400.0)
MIN_SAMPLES = SAMPLE_RATE // 10  # 0.1 s: shorter turns carry no usable prosody

# G.711 mu-law constants (ITU-T G.711, as in the reference `audioop.lin2ulaw`).
_ULAW_BIAS = 0x84
_ULAW_BIAS14 = _ULAW_BIAS >> 2
_ULAW_CLIP14 = 8159


class AudioError(ValueError):
    """Audio that cannot be used: unreadable, empty, too short or not finite."""


def check_pcm(pcm: NDArray[Any], name: str = "audio") -> NDArray[np.float32]:
    """Validate canonical audio (1-D, finite, at least `MIN_SAMPLES`); returns it as float32."""
    arr = np.asarray(pcm)
    if arr.ndim != 1:
        raise AudioError(f"{name}: expected mono 1-D samples, got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.floating):
        raise AudioError(f"{name}: expected float samples in [-1, 1], got dtype {arr.dtype}")
    if arr.size < MIN_SAMPLES:
        raise AudioError(f"{name}: {arr.size} samples is too short; need at least {MIN_SAMPLES} (0.1 s at 16 kHz)")
    if not np.all(np.isfinite(arr)):
        raise AudioError(f"{name}: samples contain NaN or infinity")
    return arr.astype(np.float32, copy=False)


def resample(pcm: NDArray[Any], rate_in: int, rate_out: int) -> NDArray[np.float32]:
    """Band-limited resampling (soxr, high quality); float32 in and out."""
    if rate_in <= 0 or rate_out <= 0:
        raise AudioError(f"sample rates must be positive, got {rate_in} -> {rate_out}")
    if rate_in == rate_out:
        return np.asarray(pcm, dtype=np.float32)
    return np.asarray(soxr.resample(np.asarray(pcm, dtype=np.float32), rate_in, rate_out, quality="HQ"), np.float32)


def to_canonical(samples: NDArray[Any], rate: int, name: str = "audio") -> NDArray[np.float32]:
    """Any float or int PCM array, (n,) or (n, channels), at any rate -> canonical 16 kHz mono float32."""
    arr = np.asarray(samples)
    if arr.size == 0:
        raise AudioError(f"{name}: no samples")
    if np.issubdtype(arr.dtype, np.integer):
        arr = arr.astype(np.float32) / float(np.iinfo(arr.dtype).max + 1)
    arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 2:
        arr = arr.mean(axis=1)
    elif arr.ndim != 1:
        raise AudioError(f"{name}: expected (samples,) or (samples, channels), got shape {arr.shape}")
    return check_pcm(np.clip(resample(arr, rate, SAMPLE_RATE), -1.0, 1.0), name)


def load(path: str | Path) -> NDArray[np.float32]:
    """Read any file soundfile can (WAV, FLAC, OGG, ...; any rate and channel count) as canonical audio."""
    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (sf.LibsndfileError, RuntimeError, OSError) as exc:
        raise AudioError(f"{path}: cannot read audio ({exc})") from None
    return to_canonical(data, int(rate), name=str(path))


def float_to_pcm16(pcm: NDArray[np.floating[Any]]) -> NDArray[np.int16]:
    """Float [-1, 1] -> int16, clipped (what a phone line or WAV file carries)."""
    return np.asarray(np.clip(np.round(np.asarray(pcm, dtype=np.float64) * 32768.0), -32768, 32767), np.int16)


def pcm16_to_float(pcm: NDArray[np.int16]) -> NDArray[np.float32]:
    """int16 -> float32 in [-1, 1)."""
    return (np.asarray(pcm, dtype=np.int16).astype(np.float32) / 32768.0).astype(np.float32)


def ulaw_encode(pcm16: NDArray[np.int16]) -> NDArray[np.uint8]:
    """G.711 mu-law: int16 samples -> uint8 codes, bit-exact with CPython's `audioop.lin2ulaw`.

    Like the Sun reference codec that audioop follows, the two low bits are
    dropped first (14-bit companding), so negative values round towards minus infinity.
    """
    v = np.asarray(pcm16, dtype=np.int32) >> 2
    negative = v < 0
    mag = np.minimum(np.where(negative, -v, v), _ULAW_CLIP14) + _ULAW_BIAS14
    segment = np.floor(np.log2(mag)).astype(np.int32) - 5
    code = np.where(segment >= 8, 0x7F, (np.minimum(segment, 7) << 4) | ((mag >> (np.minimum(segment, 7) + 1)) & 0x0F))
    return np.asarray(code ^ np.where(negative, 0x7F, 0xFF), np.uint8)


def ulaw_decode(codes: NDArray[np.uint8]) -> NDArray[np.int16]:
    """G.711 mu-law: uint8 codes -> int16 samples."""
    u = ~np.asarray(codes, dtype=np.int32) & 0xFF
    exponent = (u >> 4) & 0x07
    mag = ((((u & 0x0F) << 3) + _ULAW_BIAS) << exponent) - _ULAW_BIAS
    return np.where(u & 0x80, -mag, mag).astype(np.int16)


def rms_db(pcm: NDArray[np.floating[Any]]) -> float:
    """Level in dB relative to full scale (RMS)."""
    power = float(np.mean(np.square(np.asarray(pcm, dtype=np.float64))))
    return float(10.0 * np.log10(max(power, 1e-20)))


def coloured_noise(n: int, rng: np.random.Generator, slope_db_per_octave: float = 0.0) -> NDArray[np.float32]:
    """Unit-RMS noise; 0 dB/octave is white, -3 pink, -6 brown (office hum and traffic sit in between)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n, 1.0)
    freqs[0] = freqs[1] if n > 1 else 1.0
    spectrum *= freqs ** (slope_db_per_octave / (20.0 * np.log10(2.0)))
    noise = np.fft.irfft(spectrum, n)
    return (noise / max(float(np.sqrt(np.mean(noise**2))), 1e-12)).astype(np.float32)


def add_noise(
    pcm: NDArray[np.float32], snr_db: float, rng: np.random.Generator, slope_db_per_octave: float = 0.0
) -> NDArray[np.float32]:
    """Mix in noise so that signal power / noise power = `snr_db`."""
    signal_rms = float(np.sqrt(np.mean(np.square(pcm, dtype=np.float64))))
    noise = coloured_noise(pcm.size, rng, slope_db_per_octave) * signal_rms * 10.0 ** (-snr_db / 20.0)
    return np.asarray(pcm + noise, np.float32)


_BANDPASS = signal.butter(6, PHONE_BAND, btype="bandpass", fs=PHONE_RATE, output="sos")


@dataclass(frozen=True)
class ChannelSettings:
    """One draw of telephone conditions."""

    snr_db: float
    gain_db: float
    noise_slope: float


@dataclass(frozen=True)
class TelephoneChannel:
    """A seeded simulation of a narrow-band G.711 phone call.

    Each call of `apply` draws an SNR from `snr_db`, a level change from
    `gain_db` and a noise colour, then: level -> noise -> 8 kHz -> 300-3400 Hz
    band-pass -> mu-law encode/decode -> 16 kHz. Noise goes in before the
    channel because the caller's room noise is band-limited by the line too.
    """

    snr_db: tuple[float, ...] = (30.0, 20.0, 15.0, 10.0)
    gain_db: tuple[float, float] = (-15.0, 6.0)
    noise_slopes: tuple[float, ...] = (0.0, -3.0, -6.0)

    def draw(self, rng: np.random.Generator) -> ChannelSettings:
        """Pick the conditions of one call."""
        return ChannelSettings(
            snr_db=float(rng.choice(self.snr_db)),
            gain_db=float(rng.uniform(*self.gain_db)),
            noise_slope=float(rng.choice(self.noise_slopes)),
        )

    def apply(
        self, pcm: NDArray[np.float32], rng: np.random.Generator, settings: ChannelSettings | None = None
    ) -> NDArray[np.float32]:
        """Canonical audio in, canonical audio out, as heard through the simulated phone line."""
        x = check_pcm(pcm)
        s = settings or self.draw(rng)
        x = np.clip(x * 10.0 ** (s.gain_db / 20.0), -1.0, 1.0)  # a hot microphone clips like a real one
        x = add_noise(x, s.snr_db, rng, s.noise_slope)
        return telephone_band(x)


def telephone_band(pcm: NDArray[np.float32]) -> NDArray[np.float32]:
    """The deterministic part of the phone line: 8 kHz, 300-3400 Hz, G.711 mu-law round trip, back to 16 kHz."""
    narrow = resample(np.asarray(pcm, dtype=np.float32), SAMPLE_RATE, PHONE_RATE)
    narrow = signal.sosfilt(_BANDPASS, narrow).astype(np.float32)
    narrow = pcm16_to_float(ulaw_decode(ulaw_encode(float_to_pcm16(narrow))))
    return np.clip(resample(narrow, PHONE_RATE, SAMPLE_RATE), -1.0, 1.0).astype(np.float32)
