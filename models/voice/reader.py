"""Voice emotion at run time: `VoiceEmotionModel` reads a turn's encoder states with the trained head.

The head (`VoiceHead`, about 4 MB in `models/weights/`) reads the turn's pooled statistics beside the caller's
baseline (`CallerBaseline`); audio unlike the training data gets a lower confidence, and so does a first turn.
One entry point per use:

- `read_turn`: the shared turn pass. `models.listen.TurnListener` runs one Whisper encoder pass per turn for
  the telephony connectors; ASR decodes the text from its last layer and the head reads all of it, so the
  emotion costs only the head. It never teaches the baseline: the connector offers the turn it keeps
  (`CallerBaseline.learn`).
- `predict(pcm16k)`: a standalone clip; runs the encoder itself (`predict_batch` for several clips of one
  caller). The baseline learns only where the caller asks (`learn=True`).

The lower-level readers (`predict_from_encoder[_batch]`, `predict_from_stats`) serve evaluation, recipes and
benchmarks that already hold encoder states or statistics. Load once per process (`VoiceEmotionModel.load()`);
every public method is thread-safe. Callers run it off the event loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from models.emotion import EmotionEstimate, Modality
from models.logs import log_event
from models.voice.baseline import CallerBaseline
from models.voice.encoder import WhisperEncoder
from models.voice.head import DEFAULT_HEAD, VoiceCheckpoint, VoiceHead, load_head
from models.voice.stats import check_states, pooled_stats

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Span:
    start: float | None
    end: float | None


class VoiceEmotionModel:
    """16 kHz PCM (or Whisper encoder states) -> `EmotionEstimate`; thread-safe, load once.

    Pass the call's `CallerBaseline` to read a turn against how the caller sounded when
    calm; it learns only where asked (`learn`; the connectors read with `read_turn`,
    which never learns, and offer the turn they keep with `CallerBaseline.learn`).
    Without a baseline, or with an empty one, a turn is read as a first turn: the same
    head without the departure, and a lower confidence.
    """

    def __init__(
        self, encoder: WhisperEncoder | None, head: VoiceHead, temperature: float, name: str, threads: int = 1
    ) -> None:
        self._encoder = encoder
        self._threads = threads
        self.head = head.eval()
        self.temperature = temperature
        self.name = name
        # The torch modules are shared; one turn at a time keeps them on their thread budget.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, head_path: Path | None = None, threads: int = 1) -> VoiceEmotionModel:
        """Load the shipped (or given) head and the bundled encoder; `threads` caps CPU use of both."""
        torch.set_num_threads(threads)
        path = head_path or DEFAULT_HEAD
        checkpoint = VoiceCheckpoint.load(path)
        head = load_head(checkpoint, path)
        name = f"voice-whisper-stats@{checkpoint.info.get('version', 'dev')}"
        log_event(logger, logging.INFO, "voice.model.loaded", model=name, temperature=checkpoint.temperature)
        # The encoder loads on first use: the telephony connector hands over the states of its own
        # ASR pass (`predict_from_encoder`) and would otherwise hold a second Whisper in memory.
        return cls(None, head, checkpoint.temperature, name, threads)

    @property
    def encoder(self) -> WhisperEncoder:
        """The bundled Whisper tiny.en encoder, loaded on first use."""
        with self._lock:
            if self._encoder is None:
                self._encoder = WhisperEncoder(threads=self._threads)
            return self._encoder

    def encode(self, pcm16k: NDArray[np.float32]) -> NDArray[np.float32]:
        """Whisper encoder states (T, 4 x 384) of one turn, as `predict_from_encoder` takes them."""
        encoder = self.encoder
        with self._lock:
            return encoder.encode(pcm16k)

    @torch.inference_mode()
    def forward(
        self, stats: NDArray[np.float32], baselines: Sequence[NDArray[np.float32] | None]
    ) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.float32]]:
        """Calibrated logits, embeddings and familiarity (1: like the training audio) of (B, 3,072) statistics."""
        x = torch.from_numpy(np.asarray(stats, dtype=np.float32))
        has = torch.tensor([b is not None for b in baselines], dtype=torch.float32)
        base = torch.from_numpy(np.stack([x[i].numpy() if b is None else b for i, b in enumerate(baselines)]))
        logits, emb = self.head(x, base, has)
        familiarity = self.head.familiarity(self.head.distance(x))
        return (logits / self.temperature).numpy(), emb.numpy(), familiarity.numpy()

    def postprocess(
        self,
        logits: NDArray[np.float32],
        emb: NDArray[np.float32],
        familiarity: NDArray[np.float32],
        has_baseline: Sequence[bool],
        spans: Sequence[_Span],
    ) -> list[EmotionEstimate]:
        """Estimates whose confidence is the top probability, rescaled to held-out accuracy for a first turn or
        a turn with a baseline, times the turn's familiarity (low on audio unlike the training data)."""
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        scale = self.head.confidence_scale.numpy()
        confidence = [
            float(np.clip(p.max() * scale[int(b)] * f, 0.0, 1.0)) for p, b, f in zip(probs, has_baseline, familiarity)
        ]
        return [
            EmotionEstimate.from_probs(
                Modality.VOICE, p, confidence=c, embedding=e, start=span.start, end=span.end, model=self.name
            )
            for p, c, e, span in zip(probs, confidence, emb, spans)
        ]

    def read_turn(
        self,
        pcm: NDArray[np.float32],
        states: NDArray[np.float32],
        start: float | None = None,
        end: float | None = None,
        baseline: CallerBaseline | None = None,
    ) -> EmotionEstimate:
        """One turn as `models.listen.TurnListener` hands it over (a `VoiceReader`): read from the encoder states
        covering it (this head needs no audio) against `baseline`, which it does not join: the caller adds the
        turn once it keeps it."""
        return self.predict_from_encoder(states, start, end, baseline, learn=False)

    def predict_from_encoder_batch(
        self,
        states: Sequence[NDArray[np.float32]],
        spans: Sequence[tuple[float | None, float | None]] | None = None,
        baseline: CallerBaseline | None = None,
        learn: bool = False,
    ) -> list[EmotionEstimate]:
        """Estimates from already-computed encoder states, each (T, 4 x 384) covering one turn.

        With a `baseline`, the turns are one caller's, in order: each is read against
        the calm turns before it (in the baseline already, or, with `learn`, earlier in this
        list). With `learn` each turn is then offered to it (`CallerBaseline.learn`: it joins
        if it reads calm on its own); without, the caller offers the turn itself once it keeps it.
        """
        if not states:
            return []
        stats = np.stack([pooled_stats(check_states(s)) for s in states])
        return self.predict_from_stats(stats, spans, baseline, learn)

    def predict_from_stats(
        self,
        stats: NDArray[np.float32],
        spans: Sequence[tuple[float | None, float | None]] | None = None,
        baseline: CallerBaseline | None = None,
        learn: bool = False,
    ) -> list[EmotionEstimate]:
        """Estimates from (B, 3,072) `pooled_stats` of one caller's turns in order (`predict_from_encoder_batch`).

        With `learn`, each turn is offered to the baseline after it is read (`CallerBaseline.learn`): it
        joins only when its absolute reading, the turn read without a baseline, is calm."""
        spans_ = [_Span(*s) for s in (spans or [(None, None)] * len(stats))]
        if baseline is None:
            baselines: list[NDArray[np.float32] | None] = [None] * len(stats)
        elif learn:
            absolute = self._read(stats, [None] * len(stats), spans_)
            baselines = [baseline.read_then_learn(s, a)[0] for s, a in zip(stats, absolute)]
        else:
            baselines = [baseline.mean()] * len(stats)
        return self._read(stats, baselines, spans_)

    def _read(
        self, stats: NDArray[np.float32], baselines: Sequence[NDArray[np.float32] | None], spans: Sequence[_Span]
    ) -> list[EmotionEstimate]:
        with self._lock:
            logits, emb, familiarity = self.forward(stats, baselines)
        return self.postprocess(logits, emb, familiarity, [b is not None for b in baselines], spans)

    def predict_from_encoder(
        self,
        states: NDArray[np.float32],
        start: float | None = None,
        end: float | None = None,
        baseline: CallerBaseline | None = None,
        learn: bool = False,
    ) -> EmotionEstimate:
        """One turn from Whisper encoder states the ASR pass already computed (only the covering frames)."""
        return self.predict_from_encoder_batch([states], [(start, end)], baseline, learn)[0]

    def predict_batch(
        self,
        turns: Sequence[NDArray[np.float32]],
        spans: Sequence[tuple[float | None, float | None]] | None = None,
        baseline: CallerBaseline | None = None,
        learn: bool = False,
    ) -> list[EmotionEstimate]:
        """Estimates for several turns of canonical audio (16 kHz mono float32); with a `baseline`, one
        caller's turns in order (each offered to it after it is read only with `learn`)."""
        states = [self.encode(pcm) for pcm in turns]
        return self.predict_from_encoder_batch(states, spans, baseline, learn)

    def predict(
        self,
        pcm16k: NDArray[np.float32],
        start: float | None = None,
        end: float | None = None,
        baseline: CallerBaseline | None = None,
        learn: bool = False,
    ) -> EmotionEstimate:
        """One customer turn of canonical audio -> voice `EmotionEstimate` (raises `AudioError` on bad audio);
        with `learn`, the turn is then offered to `baseline` (`CallerBaseline.learn`)."""
        return self.predict_batch([pcm16k], [(start, end)], baseline, learn)[0]
