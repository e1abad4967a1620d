"""Per-turn fusion of modality estimates with masked attention.

Each present modality is a token. Its attention score comes from features every
modality shares (its log-probabilities, its confidence, how peaked its
distribution is) passed through one small learned layer, plus a learned
per-modality embedding and bias. Absent modalities are masked out of the
softmax rather than zero-filled, so a turn with text only is fused exactly as
text (up to the temperature, which never changes the label).

The fused distribution *is* the attention-weighted mixture of the modality
distributions, then temperature-scaled: "voice 0.8" means four fifths of the
turn's probability mass comes from the voice estimate.

`load_fusion()` returns the trained `TrainedFusion` (parameters in
`models/weights/fusion.pt`, once per process). `AttentionFusion`, the hand-set
fusion of the foundation, is the documented fallback when no trained weights
exist, and the baseline the benchmark compares against.

Face: no face model exists yet, so nothing was trained with a face token. The
face embedding is zero and its bias a fixed prior (that of the least trusted
trained modality): a present face estimate is scored by the shared features
only. See `models/cards/fusion.md`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Protocol

import numpy as np

from models.emotion import LABELS, MODALITIES, EmotionEstimate, InvalidEstimate, Modality, TurnEmotion
from models.logs import log_event

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_FUSION = WEIGHTS_DIR / "fusion.pt"
_MAX_ENTROPY = float(np.log(len(LABELS)))
_FLOOR = 1e-3  # log-probabilities are clipped here: a zero in one label must not dominate the score
N_FEATURES = len(LABELS) + 2  # log-probabilities, confidence, reliability


class Fuser(Protocol):
    """Anything that fuses one turn's estimates (the trained fusion or the hand-set fallback)."""

    def fuse(self, estimates: Iterable[EmotionEstimate]) -> TurnEmotion: ...


def reliability(estimate: EmotionEstimate) -> float:
    """Confidence times (1 - normalised entropy): 1 for a sure one-hot, 0 for uniform."""
    return estimate.confidence * float(1.0 - _entropy(np.asarray(estimate.probs)[None])[0])


def _entropy(probs: np.ndarray) -> np.ndarray:
    """Normalised entropy in [0, 1] of each row of `probs`."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=-1) / _MAX_ENTROPY


def _present(estimates: Mapping[Modality, EmotionEstimate]) -> list[Modality]:
    """The modalities a turn has, in `MODALITIES` order; a turn with none cannot be fused."""
    present = [m for m in MODALITIES if m in estimates]
    if not present:
        raise InvalidEstimate("cannot fuse a turn with no estimates")
    return present


def _softmax(present: list[Modality], scores: np.ndarray) -> dict[Modality, float]:
    """Attention over the present modalities only: absent ones are masked out, not given zero scores."""
    weights = np.exp(scores - scores.max())
    weights /= weights.sum()
    return {m: float(w) for m, w in zip(present, weights)}


def token_features(probs: np.ndarray, confidence: np.ndarray) -> np.ndarray:
    """Features a token is scored by, the same for every modality: (..., 7) probs and (...) confidences -> (..., 9)."""
    probs = np.asarray(probs, dtype=np.float64)
    peaked = 1.0 - _entropy(probs)
    return np.concatenate(
        [np.log(np.clip(probs, _FLOOR, 1.0)), np.asarray(confidence)[..., None], peaked[..., None]], axis=-1
    )


def _calibrate(mixture: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of a mixture's log-probabilities; keeps the label, changes the confidence."""
    logits = np.log(np.clip(mixture, 1e-12, 1.0)) / temperature
    out = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return out / out.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class FusionWeights:
    """The trained attention: a shared feature layer, per-modality embeddings and biases, a temperature.

    score(token) = v . tanh(W features + b + embedding[modality]) + bias[modality]
    """

    w: np.ndarray  # (hidden, N_FEATURES)
    b: np.ndarray  # (hidden,)
    embedding: np.ndarray  # (len(MODALITIES), hidden), rows in MODALITIES order
    v: np.ndarray  # (hidden,)
    bias: np.ndarray  # (len(MODALITIES),)
    temperature: float

    def scores(self, features: np.ndarray, rows: list[int] | slice) -> np.ndarray:
        """Attention scores of tokens (..., N_FEATURES) of the modalities at `rows` of `MODALITIES`."""
        hidden = np.tanh(features @ self.w.T + self.b + self.embedding[rows])
        return np.asarray(hidden @ self.v + self.bias[rows])

    def fuse_arrays(
        self, probs: np.ndarray, confidence: np.ndarray, mask: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batch form: (n, 3, 7) probs, (n, 3) confidences, (n, 3) presence in `MODALITIES` order ->
        calibrated fused probs (n, 7), the uncalibrated mixture (n, 7), attention weights (n, 3), 0 where absent."""
        if not np.all(mask.any(axis=1)):
            raise InvalidEstimate("cannot fuse a turn with no estimates")
        safe = np.where(mask[..., None], probs, 1.0 / len(LABELS))
        scores = np.where(mask, self.scores(token_features(safe, confidence), slice(None)), -np.inf)
        weights = np.exp(scores - scores.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
        mixture = np.einsum("nm,nmk->nk", weights, safe)
        return _calibrate(mixture, self.temperature), mixture, weights


class TrainedFusion:
    """Masked attention with trained parameters; numpy only, tens of microseconds a turn."""

    def __init__(self, weights: FusionWeights, name: str = "fusion-attention@dev") -> None:
        self.weights = weights
        self.name = name

    @classmethod
    def load(cls, path: Path | None = None) -> TrainedFusion:
        """Read trained parameters written by `models.recipes.fusion.train`."""
        from models.checkpoint import Checkpoint

        checkpoint = Checkpoint.load(path or DEFAULT_FUSION)
        state = {k: v.detach().double().numpy() for k, v in checkpoint.state_dict.items()}
        weights = FusionWeights(
            state["proj.weight"],
            state["proj.bias"],
            state["embedding"],
            state["score.weight"][0],
            state["bias"],
            checkpoint.temperature,
        )
        return cls(weights, f"fusion-attention@{checkpoint.info.get('version', 'dev')}")

    def attention(self, estimates: Mapping[Modality, EmotionEstimate]) -> dict[Modality, float]:
        """Masked softmax over the modalities present; absent ones get no weight at all."""
        present = _present(estimates)
        if len(present) == 1:  # a softmax over one token is 1 whatever its score
            return {present[0]: 1.0}
        probs = np.array([estimates[m].probs for m in present])
        conf = np.array([estimates[m].confidence for m in present])
        scores = self.weights.scores(token_features(probs, conf), [MODALITIES.index(m) for m in present])
        return _softmax(present, scores)

    def fuse(self, estimates: Iterable[EmotionEstimate]) -> TurnEmotion:
        """Fuse one turn. Later estimates of the same modality replace earlier ones."""
        by_modality = {e.modality: e for e in estimates}
        weights = self.attention(by_modality)
        mixture = sum(w * np.asarray(by_modality[m].probs) for m, w in weights.items())
        probs = _calibrate(np.asarray(mixture), self.weights.temperature)
        return TurnEmotion(
            probs=tuple(float(p) for p in probs),
            weights={m.value: w for m, w in weights.items()},
            estimates=tuple(by_modality[m] for m in MODALITIES if m in by_modality),
            confidence=float(probs.max()),
        )


@dataclass(frozen=True)
class FusionParams:
    """Hand-set attention parameters: per-modality prior score and the reliability gain."""

    priors: Mapping[Modality, float] = field(
        default_factory=lambda: {Modality.TEXT: 0.0, Modality.VOICE: 0.0, Modality.FACE: -0.5}
    )
    gain: float = 3.0


class AttentionFusion:
    """The hand-set fusion of the foundation: the fallback when no trained weights exist."""

    name = "fusion-hand-set"

    def __init__(self, params: FusionParams | None = None) -> None:
        self.params = params or FusionParams()

    def attention(self, estimates: Mapping[Modality, EmotionEstimate]) -> dict[Modality, float]:
        """Masked softmax over the modalities present; absent ones get no weight at all."""
        present = _present(estimates)
        scores = np.array(
            [self.params.priors.get(m, 0.0) + self.params.gain * reliability(estimates[m]) for m in present]
        )
        return _softmax(present, scores)

    def fuse(self, estimates: Iterable[EmotionEstimate]) -> TurnEmotion:
        """Fuse one turn. Later estimates of the same modality replace earlier ones."""
        by_modality = {e.modality: e for e in estimates}
        weights = self.attention(by_modality)
        probs = sum(w * np.asarray(by_modality[m].probs) for m, w in weights.items())
        confidence = sum(w * by_modality[m].confidence for m, w in weights.items())
        return TurnEmotion(
            probs=tuple(float(p) for p in np.asarray(probs) / float(np.sum(probs))),
            weights={m.value: w for m, w in weights.items()},
            estimates=tuple(by_modality[m] for m in MODALITIES if m in by_modality),
            confidence=float(confidence),
        )


@functools.lru_cache(maxsize=4)
def load_fusion(path: str | None = None) -> Fuser:
    """The trained fusion, loaded once per process; the hand-set one (logged) if its weights are missing."""
    target = Path(path) if path else DEFAULT_FUSION
    if not target.exists():
        log_event(logger, logging.WARNING, "fusion.weights.missing", path=str(target), fallback=AttentionFusion.name)
        return AttentionFusion()
    fusion = TrainedFusion.load(target)
    log_event(logger, logging.INFO, "fusion.loaded", model=fusion.name, temperature=fusion.weights.temperature)
    return fusion
