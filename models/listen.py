"""One Whisper encoder pass per customer turn, shared by speech recognition and voice emotion.

`TurnListener.listen` takes one turn in the internal audio format (`models.audio`:
16 kHz mono float32) and returns a `Listening`: what ASR needs (the encoder output
proper, which CTranslate2's Whisper decoder accepts in place of a spectrogram) and
the voice estimate, both from the same pass. The stages:

- `preprocess`: check the audio, truncate it to Whisper's window, add `PAD_SECONDS`
  of trailing silence (Whisper decodes a clip that ends exactly at the last word
  badly: it repeats the last phrase until the token limit) and take the log-mel.
  Only the clip is encoded, not Whisper's 30 s window: about ten times cheaper on a
  short turn, and what the voice head was trained on. The decoder reads these states
  completed to the window with the encoder's silence (`models.asr`): on the clip's
  states alone it runs on past the end of the speech, pad or not.
- `forward`: the encoder (all four blocks' outputs, `models.voice.WhisperEncoder`).
- `postprocess`: the voice head reads the turn (its audio and the encoder frames that
  cover it) against the caller's baseline, and once more without it where the baseline
  has turns (the absolute reading, `Listening.absolute`); the turn's pooled statistics
  are kept for that baseline (`Listening.stats`, offered by the caller once it keeps the
  turn: `CallerBaseline.learn` takes it only if the absolute reading is calm).

A voice head is any `VoiceReader`: the shipped `VoiceEmotionModel` reads the
encoder states; a head that needs the audio itself gets it too. A head that fails
costs the turn its voice estimate, never its words (logged as `listen.voice.failed`).

Load once per process (`TurnListener.load`); `listen` is thread-safe (the encoder
runs in inference mode, the shipped head holds its own lock). Callers run it off
the event loop.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

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

__all__ = ["CallerBaseline", "EncodedTurn", "Listening", "TurnInput", "TurnListener", "VoiceReader"]

logger = logging.getLogger(__name__)
PAD_SECONDS = 1.5
PAD_SAMPLES = int(PAD_SECONDS * SAMPLE_RATE)
MAX_TURN_SAMPLES = MAX_SAMPLES - PAD_SAMPLES  # the turn and its pad fit Whisper's 30 s window


class VoiceReader(Protocol):
    """A voice emotion head as the listener drives it; implementations are thread-safe."""

    @property
    def name(self) -> str:
        """Model name and version, for the estimate's provenance and the logs."""

    def read_turn(
        self,
        pcm: NDArray[np.float32],
        states: NDArray[np.float32],
        start: float | None,
        end: float | None,
        baseline: CallerBaseline | None,
    ) -> EmotionEstimate:
        """One turn: its canonical audio and the (T, 4 x 384) encoder states covering it, read against the
        caller's earlier turns (`baseline`, never changed here; None: a first turn)."""


@dataclass(frozen=True)
class TurnInput:
    """A turn ready for the encoder (`preprocess`)."""

    pcm: NDArray[np.float32]  # the turn, checked, at most `MAX_TURN_SAMPLES`
    mel: NDArray[np.float32]  # (80, F) log-mel of the turn and its trailing silence; F even, at most 3000


@dataclass(frozen=True)
class EncodedTurn:
    """A turn and its encoder states (`forward`)."""

    pcm: NDArray[np.float32]
    states: NDArray[np.float32]  # (F / 2, 4 x 384): every frame, the trailing silence's too
    encode_ms: float

    @property
    def covering(self) -> NDArray[np.float32]:
        """The frames that cover the turn itself (not its pad): what the voice head reads."""
        return self.states[: frames_covering(self.pcm.size)]

    @property
    def seconds(self) -> float:
        return self.pcm.size / SAMPLE_RATE


@dataclass(frozen=True)
class Listening:
    """What one encoder pass gives: the decoder's input and, when asked for, the voice estimate.

    `stats` are the turn's pooled encoder statistics, for the call's `CallerBaseline`; they
    characterise a voice, so they stay out of the repr and are never logged or stored.
    `absolute` is the head's reading of the turn without a baseline (`voice` itself when the
    turn was read without one): whether the turn may join the baseline.
    """

    decoder_states: NDArray[np.float32]  # (T, 384): the encoder output proper, what Whisper's decoder reads
    seconds: float  # length of the turn heard (after truncation to the window)
    voice: EmotionEstimate | None
    encode_ms: float
    voice_ms: float
    stats: NDArray[np.float32] | None = field(default=None, repr=False, compare=False)
    absolute: EmotionEstimate | None = field(default=None, repr=False, compare=False)


class TurnListener:
    """Whisper tiny.en's encoder plus an optional voice head: one pass per turn; load once, thread-safe."""

    def __init__(self, encoder: WhisperEncoder, voice: VoiceReader | None, model_dir: Path | None = None) -> None:
        self.encoder = encoder
        self.voice = voice
        self.model_dir = model_dir or encoder_path()  # the CTranslate2 Whisper (decoder, tokenizer) of these weights

    @classmethod
    def load(cls, emotion: bool = True, head: Path | None = None, threads: int = 1) -> TurnListener:
        """The bundled Whisper encoder and, when `emotion` and its weights are there, the voice head."""
        path = encoder_path()
        voice = _load_voice(head, threads) if emotion else None
        return cls(WhisperEncoder(path, threads=threads), voice, path)

    @property
    def has_voice(self) -> bool:
        return self.voice is not None

    def preprocess(self, pcm: NDArray[np.float32]) -> TurnInput:
        """Check and truncate the turn, pad it with silence, take its log-mel (raises `AudioError` on bad audio)."""
        turn = check_pcm(pcm, "turn")[:MAX_TURN_SAMPLES]
        mel = self.encoder.mel(np.concatenate([turn, np.zeros(PAD_SAMPLES, np.float32)]))
        return TurnInput(turn, mel[:, : min(mel.shape[1] // 2 * 2, WINDOW_MEL_FRAMES)])

    def forward(self, turn: TurnInput, started: float | None = None) -> EncodedTurn:
        """The encoder pass; `encode_ms` counts from `started` (default: now), so it can include `preprocess`."""
        t0 = time.perf_counter() if started is None else started
        states = self.encoder.encode_mel(turn.mel)
        return EncodedTurn(turn.pcm, states, (time.perf_counter() - t0) * 1000)

    def postprocess(
        self,
        encoded: EncodedTurn,
        start: float | None = None,
        end: float | None = None,
        emotion: bool = True,
        baseline: CallerBaseline | None = None,
    ) -> Listening:
        """The decoder's input, and the voice estimate when `emotion` and a head is loaded."""
        t0 = time.perf_counter()
        voice, stats, absolute = None, None, None
        if emotion and self.voice is not None:
            covering = encoded.covering
            voice = absolute = self._read(self.voice, encoded.pcm, covering, start, end, baseline)
            if voice is not None and baseline is not None and baseline.turns:
                absolute = self._read(self.voice, encoded.pcm, covering, start, end, None)  # the head alone
            stats = pooled_stats(covering)
        voice_ms = (time.perf_counter() - t0) * 1000
        return Listening(
            last_layer(encoded.states), encoded.seconds, voice, encoded.encode_ms, voice_ms, stats, absolute
        )

    def listen(
        self,
        pcm: NDArray[np.float32],
        start: float | None = None,
        end: float | None = None,
        emotion: bool = True,
        baseline: CallerBaseline | None = None,
    ) -> Listening:
        """One turn through the three stages. The voice reads the turn against `baseline` (the caller's earlier
        turns in this call) without adding it: the caller does that for the turn it keeps."""
        started = time.perf_counter()
        return self.postprocess(self.forward(self.preprocess(pcm), started), start, end, emotion, baseline)

    @staticmethod
    def _read(
        voice: VoiceReader,
        pcm: NDArray[np.float32],
        states: NDArray[np.float32],
        start: float | None,
        end: float | None,
        baseline: CallerBaseline | None,
    ) -> EmotionEstimate | None:
        try:
            return voice.read_turn(pcm, states, start, end, baseline)
        except Exception as exc:  # any head's failure: the turn keeps its words, only the estimate is lost
            log_event(logger, logging.WARNING, "listen.voice.failed", model=voice.name, error=repr(exc))
            return None


def _load_voice(head: Path | None, threads: int) -> VoiceEmotionModel | None:
    path = head or DEFAULT_HEAD
    if not path.exists():
        log_event(logger, logging.WARNING, "listen.voice_model.unavailable", head=str(path), reason="missing weights")
        return None
    return VoiceEmotionModel.load(path, threads=threads)
