"""The canonical audio format and its edges: loading, resampling, G.711 mu-law, the phone channel."""

from __future__ import annotations

import audioop
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import soundfile as sf
from numpy.typing import NDArray

from models import audio

RATE = audio.SAMPLE_RATE


def tone(freq: float, seconds: float = 1.0, rate: int = RATE, amplitude: float = 0.5) -> NDArray[Any]:
    t = np.arange(int(seconds * rate)) / rate
    pcm: NDArray[Any] = (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return pcm


def band_energy(pcm: NDArray[Any], lo: float, hi: float, rate: int = RATE) -> float:
    spectrum = np.abs(np.fft.rfft(pcm * np.hanning(pcm.size))) ** 2
    freqs = np.fft.rfftfreq(pcm.size, 1.0 / rate)
    return float(spectrum[(freqs >= lo) & (freqs < hi)].sum())


def test_ulaw_matches_the_reference_codec_on_every_int16_value() -> None:
    pcm = np.arange(-32768, 32768, dtype=np.int16)
    reference = np.frombuffer(audioop.lin2ulaw(pcm.tobytes(), 2), dtype=np.uint8)
    assert np.array_equal(audio.ulaw_encode(pcm), reference)
    codes = np.arange(256, dtype=np.uint8)
    reference_decoded = np.frombuffer(audioop.ulaw2lin(codes.tobytes(), 2), dtype=np.int16)
    assert np.array_equal(audio.ulaw_decode(codes), reference_decoded)


def test_ulaw_round_trip_keeps_codes_and_bounds_the_error() -> None:
    codes = np.array([c for c in range(256) if c != 0x7F], dtype=np.uint8)  # 0x7F and 0xFF both mean zero
    assert np.array_equal(audio.ulaw_encode(audio.ulaw_decode(codes)), codes)
    pcm = np.linspace(-32000, 32000, 5001).astype(np.int16)
    error = np.abs(audio.ulaw_decode(audio.ulaw_encode(pcm)).astype(int) - pcm)
    # Segmented companding: the error grows with the level (about half a step, ~1/16 of the level
    # plus the 14-bit truncation) but stays bounded: 512 + 4 at the top segment.
    assert error.max() <= 516
    assert np.all(error <= np.maximum(8, 0.11 * np.abs(pcm.astype(int))))


@pytest.mark.parametrize("rate", [8_000, 22_050, 44_100, 48_000])
def test_load_converts_any_rate_and_channels_to_canonical(tmp_path: Path, rate: int) -> None:
    stereo = np.stack([tone(440.0, rate=rate), tone(440.0, rate=rate)], axis=1)
    path = tmp_path / f"clip-{rate}.wav"
    sf.write(path, stereo, rate, subtype="PCM_16")
    pcm = audio.load(path)
    assert pcm.dtype == np.float32 and pcm.ndim == 1
    assert abs(pcm.size - RATE) <= 2
    peak = np.fft.rfftfreq(pcm.size, 1 / RATE)[np.argmax(np.abs(np.fft.rfft(pcm)))]
    assert abs(peak - 440.0) < 2.0
    assert abs(audio.rms_db(pcm) - audio.rms_db(tone(440.0))) < 0.5


def test_int16_input_is_scaled_to_unit_range() -> None:
    pcm = audio.to_canonical(audio.float_to_pcm16(tone(300.0, rate=8_000)), 8_000)
    assert 0.45 < np.abs(pcm).max() <= 0.52


@pytest.mark.parametrize(
    ("samples", "message"),
    [
        (np.zeros(0, dtype=np.float32), "no samples"),
        (np.zeros(100, dtype=np.float32), "too short"),
        (np.full(RATE, np.nan, dtype=np.float32), "NaN"),
    ],
)
def test_bad_audio_raises_a_named_error(samples: NDArray[Any], message: str) -> None:
    with pytest.raises(audio.AudioError, match=message):
        audio.to_canonical(samples, RATE)


def test_garbage_file_raises_a_named_error(tmp_path: Path) -> None:
    path = tmp_path / "not-audio.wav"
    path.write_bytes(b"RIFF....this is not a wave file at all")
    with pytest.raises(audio.AudioError, match="cannot read audio"):
        audio.load(path)


@pytest.mark.parametrize("snr_db", [20.0, 10.0, 0.0])
@pytest.mark.parametrize("slope", [0.0, -3.0, -6.0])
def test_add_noise_hits_the_requested_snr(snr_db: float, slope: float) -> None:
    clean = tone(500.0, seconds=2.0)
    noisy = audio.add_noise(clean, snr_db, np.random.default_rng(3), slope)
    measured = audio.rms_db(clean) - audio.rms_db(noisy - clean)
    assert abs(measured - snr_db) < 0.1


def test_telephone_band_passes_speech_band_and_cuts_the_rest() -> None:
    inside = audio.telephone_band(tone(1_000.0))
    low = audio.telephone_band(tone(100.0))
    high = audio.telephone_band(tone(5_000.0))
    assert inside.size == RATE and inside.dtype == np.float32
    assert abs(audio.rms_db(inside) - audio.rms_db(tone(1_000.0))) < 1.5
    assert audio.rms_db(low) < audio.rms_db(inside) - 20.0
    assert audio.rms_db(high) < audio.rms_db(inside) - 40.0


def test_channel_output_has_no_energy_above_the_phone_band() -> None:
    rng = np.random.default_rng(0)
    wideband = (0.3 * rng.standard_normal(RATE)).astype(np.float32)
    out = audio.TelephoneChannel(snr_db=(30.0,)).apply(wideband, np.random.default_rng(1))
    speech_band = band_energy(out, 300.0, 3_400.0)
    assert band_energy(out, 4_200.0, 8_000.0) < 1e-4 * speech_band
    assert band_energy(out, 0.0, 100.0) < 1e-2 * speech_band


def test_channel_is_seeded_and_applies_the_drawn_level() -> None:
    channel = audio.TelephoneChannel()
    clean = tone(800.0, seconds=1.0, amplitude=0.1)
    first = channel.apply(clean, np.random.default_rng(42))
    assert np.array_equal(first, channel.apply(clean, np.random.default_rng(42)))
    assert not np.array_equal(first, channel.apply(clean, np.random.default_rng(43)))
    quiet = audio.ChannelSettings(snr_db=40.0, gain_db=-12.0, noise_slope=0.0)
    out = channel.apply(clean, np.random.default_rng(0), quiet)
    assert abs((audio.rms_db(out) - audio.rms_db(clean)) - (-12.0)) < 1.5


def test_channel_rejects_bad_audio() -> None:
    with pytest.raises(audio.AudioError):
        audio.TelephoneChannel().apply(np.zeros((RATE, 2), dtype=np.float32), np.random.default_rng(0))
