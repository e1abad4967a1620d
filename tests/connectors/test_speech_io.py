"""Codec at the edge, VAD turn segmentation with pre-roll, TTS prosody by tone, the recognizer on the shared
encoder pass with a voice head that reads the audio itself."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pytest
from numpy.typing import NDArray

from connectors.speech import codec
from connectors.speech.recognizer import SpeechRecognizer
from connectors.speech.tts import DEFAULT_PROSODY, EspeakEngine, sentences
from models.audio import SAMPLE_RATE, float_to_pcm16, rms_db, ulaw_encode
from models.emotion import LABELS, EmotionEstimate, Modality
from models.listen import TurnListener
from models.turns import SpeechStarted, Turn, TurnEnding, TurnSegmenter, TurnSettings
from models.voice import CallerBaseline, WhisperEncoder
from tests.connectors.speech_fixtures import needs_espeak, speak


def tone(seconds: float, freq: float = 440.0, level: float = 0.3) -> NDArray[Any]:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    pcm: NDArray[Any] = (level * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    return pcm


def trimmed(pcm: NDArray[Any]) -> NDArray[Any]:
    """The speech only: espeak-ng pads its output with silence."""
    loud = np.flatnonzero(np.abs(pcm) > 0.01)
    return pcm[loud[0] : loud[-1] + 1]


def test_streaming_decode_matches_whole_clip_decode() -> None:
    pcm = tone(1.0)
    wire = codec.mulaw_from_canonical(pcm)
    assert len(wire) == 8000
    decoder = codec.InboundDecoder()
    streamed = np.concatenate([decoder.decode(f) for f in codec.split_frames(wire)])
    whole = codec.canonical_from_mulaw(wire)
    # The streaming resampler holds back its filter delay (66 ms for soxr HQ) until more audio comes.
    assert 0 <= whole.size - streamed.size <= 1600
    n = min(streamed.size, whole.size)
    assert np.max(np.abs(streamed[200 : n - 200] - whole[200 : n - 200])) < 0.02
    # A 440 Hz tone survives the phone round trip (mu-law + 8 kHz).
    assert np.corrcoef(streamed[400:n], pcm[400:n])[0, 1] > 0.99


def test_split_frames_pads_the_last_frame_with_mulaw_silence() -> None:
    frames = codec.split_frames(b"\x01" * 330)
    assert [len(f) for f in frames] == [160, 160, 160]
    assert frames[-1][10:] == b"\xff" * 150
    assert ulaw_encode(float_to_pcm16(np.zeros(1)))[0] == codec.ULAW_SILENCE


def test_linear16_round_trip_in_20_ms_frames() -> None:
    pcm = tone(0.5)
    l16 = codec.Linear16Codec(16000)
    frames = l16.frames(pcm[:-50])
    assert {len(f) for f in frames} == {640} and frames[-1][-100:] == b"\x00" * 100
    wire = b"".join(frames)
    decoder = l16.decoder()
    # Frames split at odd offsets still decode to the same samples (a half sample waits for the next chunk).
    back = np.concatenate([decoder.decode(wire[i : i + 333]) for i in range(0, len(wire), 333)])
    assert back.size == len(wire) // 2
    assert np.max(np.abs(back[: pcm.size - 50] - pcm[:-50])) < 1e-4


def test_linear16_at_8_khz_is_resampled_to_the_internal_rate() -> None:
    l16 = codec.Linear16Codec(8000)
    assert l16.frame_bytes == 320 and l16.name == "l16/8000"
    wire = l16.encode(tone(1.0))
    assert len(wire) == 16000
    back = l16.decoder().decode(wire)
    assert 16000 - 1600 <= back.size <= 16000


def test_deinterleave_stereo() -> None:
    assert codec.deinterleave(bytes([1, 2, 3, 4, 5]), 2) == [bytes([1, 3]), bytes([2, 4])]


def test_silence_and_tones_are_not_turns() -> None:
    seg = TurnSegmenter()
    events = seg.push(np.zeros(3 * SAMPLE_RATE, np.float32)) + seg.push(tone(1.0)) + seg.flush()
    assert not [e for e in events if isinstance(e, Turn)]


@needs_espeak
@pytest.mark.asyncio
async def test_two_spoken_turns_are_cut_with_pre_roll() -> None:
    first = await speak("Hello, is anyone there?")
    second = await speak("My internet is down again.")
    gap = np.zeros(SAMPLE_RATE, np.float32)
    stream = np.concatenate([gap, first, gap, second, gap])
    seg = TurnSegmenter(TurnSettings(end_silence_ms=450, pre_roll_ms=320))
    events = []
    for i in range(0, stream.size, 320):  # 20 ms chunks, as they come off the wire
        events += seg.push(stream[i : i + 320])
    starts = [e for e in events if isinstance(e, SpeechStarted)]
    turns = [e for e in events if isinstance(e, Turn)]
    assert len(starts) == 2 and len(turns) == 2, events
    onset = 1.0 + np.argmax(np.abs(first) > 0.01) / SAMPLE_RATE
    # The turn begins before the VAD fired, early enough to keep the first syllable.
    assert turns[0].start <= onset - 0.05 < starts[0].at
    assert turns[0].speech_end < turns[0].end <= turns[0].speech_end + 0.2
    offset = 1.0 + (first.size - np.argmax(np.abs(first[::-1]) > 0.01)) / SAMPLE_RATE
    assert abs(turns[0].speech_end - offset) < 0.3
    assert turns[1].start > turns[0].end
    assert events.index(starts[1]) > events.index(turns[0])


@needs_espeak
@pytest.mark.asyncio
async def test_a_likely_end_of_turn_is_announced_early_with_the_same_audio() -> None:
    said = await speak("My internet is down again.")
    gap = np.zeros(SAMPLE_RATE, np.float32)
    seg = TurnSegmenter(TurnSettings(end_silence_ms=450, prepare_silence_ms=200))
    events = []
    for chunk in np.array_split(np.concatenate([gap, said, gap]), 100):
        events += seg.push(chunk)
    endings = [e for e in events if isinstance(e, TurnEnding)]
    turns = [e for e in events if isinstance(e, Turn)]
    assert len(endings) == 1 and len(turns) == 1, events
    assert events.index(endings[0]) < events.index(turns[0])
    early, final = endings[0].turn, turns[0]
    # Same speech end, same audio: work started on the early one serves the final turn.
    assert early.speech_end == final.speech_end and early.start == final.start
    assert np.array_equal(early.pcm, final.pcm)


@needs_espeak
@pytest.mark.asyncio
async def test_a_pause_shorter_than_the_end_silence_does_not_end_the_turn() -> None:
    first, second = [trimmed(await speak(t)) for t in ("I was charged twice.", "And nobody called me back.")]
    pause = np.zeros(int(0.3 * SAMPLE_RATE), np.float32)  # past prepare (200 ms), short of the end (450 ms)
    gap = np.zeros(SAMPLE_RATE, np.float32)
    seg = TurnSegmenter(TurnSettings(end_silence_ms=450, prepare_silence_ms=200))
    events = seg.push(np.concatenate([gap, first, pause, second, gap]))
    endings = [e.turn for e in events if isinstance(e, TurnEnding)]
    turns = [e for e in events if isinstance(e, Turn)]
    assert len(turns) == 1 and len(endings) == 2, events
    # The first announcement was premature: the final turn holds both phrases and ends later.
    assert endings[0].speech_end < turns[0].speech_end == endings[1].speech_end
    assert turns[0].seconds > endings[0].seconds + 1.0


def test_turn_settings_reject_a_prepare_point_outside_the_pause() -> None:
    with pytest.raises(ValueError, match="prepare_silence_ms"):
        TurnSettings(end_silence_ms=450, prepare_silence_ms=500)
    with pytest.raises(ValueError, match="prepare_silence_ms"):
        TurnSettings(tail_ms=160, prepare_silence_ms=100)
    assert TurnSettings(prepare_silence_ms=None).prepare_silence_ms is None


@needs_espeak
def test_a_caller_who_never_pauses_is_cut_at_the_cap() -> None:
    seg = TurnSegmenter(TurnSettings(max_turn_ms=1000))
    speech = np.concatenate([speak_sync("one two three four five six seven eight nine ten")] * 2)
    turns = [e for e in seg.push(speech) if isinstance(e, Turn)]
    assert turns and turns[0].forced and turns[0].seconds <= 1.05


def speak_sync(text: str) -> NDArray[Any]:
    import asyncio

    return asyncio.run(speak(text))


def test_reply_is_spoken_sentence_by_sentence() -> None:
    assert sentences("Hello. I can help! Is that ok?  Yes") == ["Hello.", "I can help!", "Is that ok?", "Yes"]


def test_prosody_follows_the_tone() -> None:
    p = DEFAULT_PROSODY
    assert p["empathetic"].rate < p["neutral"].rate and p["empathetic"].pitch < p["neutral"].pitch
    assert p["calm"].rate < p["neutral"].rate
    assert p["upbeat"].rate > p["neutral"].rate and p["upbeat"].pitch > p["neutral"].pitch


@needs_espeak
@pytest.mark.asyncio
async def test_espeak_speaks_slower_when_empathetic() -> None:
    engine = EspeakEngine()
    text = "I'm sorry your bill has caused you trouble."
    empathetic, upbeat = await engine.synthesize(text, "empathetic"), await engine.synthesize(text, "upbeat")
    assert empathetic.dtype == np.float32 and np.max(np.abs(empathetic)) <= 1.0
    assert empathetic.size > 1.2 * upbeat.size
    assert "--" in engine.command("-rf /", "neutral")


class LoudnessHead:
    """A voice head that needs the audio itself (not the encoder states): the louder the turn, the angrier."""

    name = "loudness-test-head"

    def read_turn(
        self,
        pcm: NDArray[Any],
        states: NDArray[Any],
        start: float | None,
        end: float | None,
        baseline: CallerBaseline | None,
    ) -> EmotionEstimate:
        anger = float(np.clip((rms_db(pcm) + 40.0) / 40.0, 0.05, 0.95))
        probs = {"angry": anger, "neutral": 1.0 - anger}
        return EmotionEstimate.from_probs(Modality.VOICE, probs, start=start, end=end, model=self.name)


class BrokenHead(LoudnessHead):
    name = "broken-test-head"

    def read_turn(self, *args: Any, **kwargs: Any) -> EmotionEstimate:
        raise RuntimeError("this head cannot read turns")


@pytest.fixture(scope="module")
def whisper() -> WhisperEncoder:
    return WhisperEncoder()


@needs_espeak
def test_a_voice_head_that_needs_the_audio_gets_it_through_the_recognizer(whisper: WhisperEncoder) -> None:
    recognizer = SpeechRecognizer.around(TurnListener(whisper, LoudnessHead()))
    said = speak_sync("My internet is down again.")
    quiet, loud = (recognizer.hear(said * level, 1.0, 3.0) for level in (0.05, 0.9))
    for heard in (quiet, loud):
        assert "internet" in heard.text.lower() and heard.voice is not None
        assert heard.voice.model == "loudness-test-head" and (heard.voice.start, heard.voice.end) == (1.0, 3.0)
    assert quiet.voice is not None and loud.voice is not None
    assert loud.voice.probs[LABELS.index("angry")] > quiet.voice.probs[LABELS.index("angry")] + 0.3


@needs_espeak
def test_a_failing_voice_head_costs_the_turn_its_estimate_never_its_words(
    whisper: WhisperEncoder, caplog: pytest.LogCaptureFixture
) -> None:
    recognizer = SpeechRecognizer.around(TurnListener(whisper, BrokenHead()))
    assert recognizer.has_emotion
    with caplog.at_level(logging.WARNING, logger="models.listen"):
        heard = recognizer.hear(speak_sync("My internet is down again."))
    assert "internet" in heard.text.lower() and heard.voice is None and heard.stats is not None
    failures = [r for r in caplog.records if "listen.voice.failed" in r.getMessage()]
    assert failures and "cannot read turns" in failures[0].getMessage()
