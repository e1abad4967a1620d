"""Speech recognition of one turn: Whisper tiny.en's decoder (CTranslate2) on the shared encoder pass.

`models.listen.TurnListener` encodes only the turn and 1.5 s of trailing silence
(about ten times cheaper than Whisper's 30 s window, and what the voice head
reads). Whisper's decoder, though, was trained to read a whole window: 1,500
encoder frames, the speech followed by the encoder's picture of silence up to
the 30 s mark. Given only the turn's ~200 frames it does not see that the
speech has ended, and greedy decoding without timestamps runs on, repeating
the sentence or its start ("dogs are sitting by the door dogs are sitting by")
until the token cap, on about half of the read sentences (RAVDESS, cut as the
call core cuts turns). Neither the pad, nor the cap, nor `no_repeat_ngram_size`
stops it; decoding with timestamp tokens over the short states loops more.

The fix is at that cause: before decoding, the turn's states are completed to
the full window with the encoder's own output for silence at those positions
(`silence_states`: one 30 s pass over digital silence at load time, nothing per
turn). The decoder then reads what it was trained on, ends the sentence, and
decodes as well as Whisper's own 30 s encoding does (measured in
`models/cards/voice.md`), for a few milliseconds more decoding per turn
(cross-attention over 1,500 frames) and no extra encoder work. The states the
voice head reads are untouched.

`no_repeat_ngram_size=3` stays: it never stopped the sentence loop (the loop
changes case and punctuation, so its token trigrams differ), but on very short
turns of single spoken digits it keeps "6, 6, 6, 6" from running on (FSDD digit
strings: WER 0.17 without, 0.13 with; no change on sentences). As a safety net,
`drop_repeated_tail` removes a trailing sentence that restarts an earlier one;
it is not what stops the loop.

Load once per process (`WhisperDecoder.around`); `decode` is thread-safe.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.listen import Listening, TurnListener
from models.logs import log_event
from models.voice import MAX_SAMPLES, WINDOW_MEL_FRAMES, WhisperEncoder, last_layer

__all__ = ["DecodeSettings", "Decoded", "WhisperDecoder", "drop_repeated_tail", "silence_states"]

logger = logging.getLogger(__name__)
MAX_TOKENS = 120
TOKENS_PER_SECOND = 6  # fast speech is ~4 tokens/s; the cap bounds the cost of any hallucination
WINDOW_FRAMES = WINDOW_MEL_FRAMES // 2  # encoder frames in Whisper's 30 s window
MIN_REPEAT_WORDS = 3  # a trailing restart of an earlier sentence this long is dropped


@dataclass(frozen=True)
class DecodeSettings:
    """How a turn is decoded. The defaults are the shipped runtime; `before_fix()` is the decoding before
    issue 33's fix, the turn's states alone and no safety net (kept to measure against, `bench.asr_decode`)."""

    window: bool = True  # complete the turn's states to the 30 s window with the encoder's silence
    beam_size: int = 1
    no_repeat_ngram_size: int = 3
    safety_net: bool = True  # drop a trailing sentence that restarts an earlier one

    @classmethod
    def before_fix(cls) -> DecodeSettings:
        return cls(window=False, safety_net=False)


@dataclass(frozen=True)
class Decoded:
    """The turn's text, Whisper's no-speech probability and whether the safety net cut a repeated tail."""

    text: str
    no_speech_prob: float
    dropped_repeat: bool = False


def silence_states(encoder: WhisperEncoder) -> NDArray[np.float32]:
    """(1500, 384): the encoder output of a 30 s window of digital silence, what the decoder reads after speech."""
    mel = encoder.mel(np.zeros(MAX_SAMPLES, np.float32))[:, :WINDOW_MEL_FRAMES]
    return last_layer(encoder.encode_mel(mel))


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9]+")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("'", ""))


def drop_repeated_tail(text: str, min_words: int = MIN_REPEAT_WORDS) -> str:
    """`text` without trailing sentences that restart an earlier sentence of it (a decoding loop's signature:
    "Dogs are sitting by the door. Dogs are sitting by"). A repeat of at least `min_words` words that begins
    the earlier sentence counts; words are compared without case and punctuation. Anything else is kept."""
    sentences = _SENTENCE_END.split(text.strip())
    kept = sentences[:1]
    for sentence in sentences[1:]:
        words = _words(sentence)
        if len(words) >= min_words and any(_words(k)[: len(words)] == words for k in kept):
            break  # everything after the restart is the loop's
        kept.append(sentence)
    return " ".join(kept)


class WhisperDecoder:
    """Whisper tiny.en's CTranslate2 decoder (int8) and tokenizer for the listener's encoder states."""

    def __init__(
        self, model: Any, tokenizer: Any, silence: NDArray[np.float32], settings: DecodeSettings | None = None
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.silence = silence
        self.settings = settings or DecodeSettings()
        self.prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    @classmethod
    def around(cls, listener: TurnListener, workers: int = 1, settings: DecodeSettings | None = None) -> WhisperDecoder:
        """The decoder and tokenizer of the listener's Whisper (`model_dir`); `workers` calls may run at once."""
        return cls.load(listener.model_dir, listener.encoder, workers, settings)

    @classmethod
    def load(
        cls, path: Path, encoder: WhisperEncoder, workers: int = 1, settings: DecodeSettings | None = None
    ) -> WhisperDecoder:
        import ctranslate2
        import tokenizers
        from faster_whisper.tokenizer import Tokenizer

        model = ctranslate2.models.Whisper(
            str(path), device="cpu", compute_type="int8", intra_threads=1, inter_threads=max(1, workers)
        )
        tokenizer = Tokenizer(tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")), False)
        return cls(model, tokenizer, silence_states(encoder), settings)

    def window(self, states: NDArray[np.float32]) -> NDArray[np.float32]:
        """The turn's (T, 384) decoder states followed by the silence states of frames T..1499."""
        if not self.settings.window or states.shape[0] >= WINDOW_FRAMES:
            return states
        return np.ascontiguousarray(np.concatenate([states, self.silence[states.shape[0] :]]), np.float32)

    def decode(self, listening: Listening) -> Decoded:
        """The turn's text (greedy by default, no timestamps) and Whisper's no-speech probability."""
        import ctranslate2

        s = self.settings
        result = self.model.generate(
            ctranslate2.StorageView.from_array(self.window(listening.decoder_states)[None]),
            [self.prompt],
            beam_size=s.beam_size,
            max_length=self.max_tokens(listening.seconds),
            no_repeat_ngram_size=s.no_repeat_ngram_size,
            return_no_speech_prob=True,
        )[0]
        text = str(self.tokenizer.decode(result.sequences_ids[0])).strip()
        kept = drop_repeated_tail(text) if s.safety_net else text
        if kept != text:  # the words stay out of the log (privacy); only that it happened
            log_event(logger, logging.WARNING, "asr.repeat.dropped", seconds=round(listening.seconds, 2))
        return Decoded(kept, float(result.no_speech_prob), kept != text)

    def describe(self) -> str:
        """The decoding in words, for reports."""
        s = self.settings
        window = "states completed to the 30 s window" if s.window else "the turn's states alone"
        search = "greedy" if s.beam_size == 1 else f"beam {s.beam_size}"
        repeats = f", no_repeat_ngram_size={s.no_repeat_ngram_size}" if s.no_repeat_ngram_size else ""
        net = ", repeated-tail safety net" if s.safety_net else ""
        return f"CTranslate2 int8, {window}, {search}, no timestamps{repeats}{net}"

    def max_tokens(self, seconds: float) -> int:
        return min(MAX_TOKENS, len(self.prompt) + 8 + int(TOKENS_PER_SECOND * seconds))
