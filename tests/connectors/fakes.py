"""In-process fakes of the call core's seams, with the same interfaces as the real parts.

`FakeRecognizer` is a `Recognizer` (Whisper's place), `FakeTts` a `TtsEngine`
(espeak-ng's), `FakeBot` a `BotGateway` (Rasa's), `FakeTransfer` a
`TransferAdapter` (a provider's REST API). They make the call core testable in
milliseconds: the real VAD, codecs, session and stream run; only the models,
the bot and the provider's REST API are stood in for. `caller_speech` is a
synthetic voiced utterance the real silero VAD takes for speech.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
from numpy.typing import NDArray
from scipy.signal import lfilter

from connectors.bot import BotGateway, BotReply
from connectors.call.transfer import TransferError
from connectors.frames import CallStart
from connectors.speech.recognizer import Hearing, Recognizer
from connectors.speech.tts import TtsEngine, TtsError
from models.audio import SAMPLE_RATE
from models.emotion import EmotionEstimate, Modality
from models.voice import STATS_DIM, CallerBaseline

# Formants (Hz, bandwidth) of four vowels: a, i, u, e.
_VOWELS = (
    ((730, 90), (1090, 110), (2440, 170)),
    ((270, 60), (2290, 100), (3010, 120)),
    ((300, 60), (870, 90), (2240, 120)),
    ((530, 80), (1840, 100), (2480, 140)),
)


def _syllable(vowel: int, seconds: float, f0: float, rng: np.random.Generator) -> NDArray[Any]:
    """A short noise burst (a consonant), then glottal pulses with a falling pitch through a vowel's formants."""
    n = int(seconds * SAMPLE_RATE)
    t = np.arange(n) / SAMPLE_RATE
    phase = np.cumsum(f0 * (1.1 - 0.2 * t / seconds)) / SAMPLE_RATE
    signal = (np.diff(np.floor(phase), prepend=0) > 0) + 0.02 * rng.standard_normal(n)
    for centre, bandwidth in _VOWELS[vowel % len(_VOWELS)]:
        r, theta = np.exp(-np.pi * bandwidth / SAMPLE_RATE), 2 * np.pi * centre / SAMPLE_RATE
        signal = lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], signal)
    signal *= np.sin(np.pi * t / seconds) ** 0.5
    consonant = 0.05 * rng.standard_normal(int(0.04 * SAMPLE_RATE))
    return np.concatenate([consonant, 0.3 * signal / np.abs(signal).max()])


def caller_speech(seconds: float, seed: int = 0) -> NDArray[Any]:
    """300 ms of quiet, then `seconds` of speech-like syllables the real silero VAD takes for speech
    (it does not fire on sound that starts a stream, hence the lead-in)."""
    rng = np.random.default_rng(seed)
    parts, total, vowel = [silence(0.3)], 0, 0
    while total < seconds * SAMPLE_RATE:
        part = _syllable(vowel, rng.uniform(0.15, 0.3), rng.uniform(100, 140), rng)
        parts.append(part)
        total, vowel = total + part.size, vowel + 1
    pcm: NDArray[Any] = np.concatenate(parts)[: int((seconds + 0.3) * SAMPLE_RATE)].astype(np.float32)
    return pcm


def silence(seconds: float) -> NDArray[Any]:
    return np.zeros(int(seconds * SAMPLE_RATE), np.float32)


CALM_READING = EmotionEstimate.from_probs(Modality.VOICE, {"neutral": 1.0}, confidence=0.9)


class FakeRecognizer(Recognizer):
    """Hears scripted words: the n-th distinct turn (by start time) says `lines[n]`, early pass or not."""

    def __init__(
        self,
        lines: list[str],
        delay_s: float = 0.0,
        voice: EmotionEstimate | None = None,
        absolute: EmotionEstimate | None = CALM_READING,
    ) -> None:
        self.lines = lines
        self.delay_s = delay_s  # a slow Whisper, in the worker thread
        self.voice = voice
        self.absolute = absolute  # the head's reading without a baseline: calm, so the turns join the baseline
        self.passes: list[tuple[float | None, float | None]] = []
        self.baselines: list[CallerBaseline | None] = []  # the baseline each pass was read against
        self.emotions: list[bool] = []  # whether each pass was asked to run the voice head
        self._starts: list[float | None] = []
        self._lock = threading.Lock()

    @property
    def has_emotion(self) -> bool:
        return self.voice is not None

    def hear(
        self,
        pcm: NDArray[Any],
        start: float | None = None,
        end: float | None = None,
        emotion: bool = True,
        baseline: CallerBaseline | None = None,
    ) -> Hearing:
        time.sleep(self.delay_s)
        with self._lock:
            self.passes.append((start, end))
            self.baselines.append(baseline)
            self.emotions.append(emotion)
            if start not in self._starts:
                self._starts.append(start)
            index = self._starts.index(start)
        text = self.lines[index] if index < len(self.lines) else ""
        stats = np.full(STATS_DIM, float(index), np.float32)  # what the real encoder would pool for the baseline
        absolute = self.absolute if emotion else None
        return Hearing(text, self.voice if emotion else None, 0.01 if text else 0.9, 1.0, 1.0, stats, absolute)


class FakeTts(TtsEngine):
    """Speaks `seconds` of a quiet tone per sentence; remembers what it said in which tone."""

    name = "fake-tts"

    def __init__(self, seconds: float = 0.2, delay_s: float = 0.0, fail_on: str | None = None) -> None:
        self.seconds = seconds
        self.delay_s = delay_s
        self.fail_on = fail_on
        self.spoken: list[tuple[str, str]] = []

    async def synthesize(self, text: str, tone: str = "neutral") -> NDArray[Any]:
        await asyncio.sleep(self.delay_s)
        if self.fail_on is not None and self.fail_on in text:
            raise TtsError(f"cannot say {text!r}")
        self.spoken.append((text, tone))
        t = np.arange(int(self.seconds * SAMPLE_RATE)) / SAMPLE_RATE
        pcm: NDArray[Any] = (0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)
        return pcm


@dataclass
class FakeBot(BotGateway):
    """Answers each turn with `reply(text)`; remembers every turn it was sent."""

    reply: Callable[[str], BotReply] = lambda text: BotReply((f"You said {text}.",), "calm")
    turns: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)

    async def send(self, sender_id: str, text: str, metadata: dict[str, Any]) -> BotReply:
        self.turns.append((sender_id, text, metadata))
        return self.reply(text)


@dataclass
class FakeTransfer:
    """A provider's transfer: records each call moved, or refuses with `fail_status`."""

    fail_status: int | None = None
    moved: list[tuple[str, float]] = field(default_factory=list)

    async def transfer(self, call: CallStart) -> None:
        if self.fail_status is not None:
            raise TransferError(self.fail_status, "refused by the fake")
        self.moved.append((call.call_id, time.monotonic()))
