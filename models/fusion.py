"""Per-turn fusion of modality estimates with masked attention.

Each present modality is a token. Its attention score is a learned trust of
its modality plus learned non-negative slopes on how sure the token is (its
confidence, how peaked its distribution is): trust grows with sureness, at a
rate learned per modality. Absent modalities are masked out of the softmax
rather than zero-filled, so a turn with text only is fused exactly as text (up
to the temperature, which never changes the label).

The fused distribution *is* the attention-weighted mixture of the modality
distributions, then temperature-scaled: "voice 0.8" means four fifths of the
turn's probability mass comes from the voice estimate.

`load_fusion()` returns the trained `TrainedFusion` (parameters in
`models/weights/fusion.pt`, once per process). `AttentionFusion`, the hand-set
fusion of the foundation, is the documented fallback when no trained weights
exist, and the baseline the benchmark compares against.

Face: no real turn has a face and another modality, so the face token's attention
is not learned (a face-only turn gives it weight 1 whatever the parameters). Its
trust and slopes are a fixed prior, the lower of text's and voice's: a face is
never trusted a priori more than the least trusted trained stream. Face-only
turns do take part in the temperature. See `models/cards/fusion.md`.
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
N_FEATURES = 2  # a token's confidence and 1 - normalised entropy
FUSION_ARCH = "reliability-monotone"


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
    """How sure a token is, the same for every modality: (..., 7) probs and (...) confidences -> (..., 2)."""
    peaked = 1.0 - _entropy(np.asarray(probs, dtype=np.float64))
    return np.stack([np.broadcast_to(np.asarray(confidence, dtype=np.float64), peaked.shape), peaked], axis=-1)


def _calibrate(mixture: np.ndarray, temperature: float) -> np.ndarray:
    """Temperature scaling of a mixture's log-probabilities; keeps the label, changes the confidence."""
    logits = np.log(np.clip(mixture, 1e-12, 1.0)) / temperature
    out = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return out / out.sum(axis=-1, keepdims=True)


@dataclass(frozen=True)
class FusionWeights:
    """The trained attention: per modality, a trust and how fast trust grows with the token's sureness.

    score(token) = bias[modality] + slope[modality] . (confidence, 1 - entropy), slopes >= 0

    Monotone by construction: a less sure estimate never gets more weight than a surer one of the
    same modality. A free feature network (tried first) fitted RAVDESS, where the words are always
    sure and never informative, and then gave an *unsure* text token most of the weight, a region
    it had never seen; its held-out accuracy also swung with the random init (card).
    """

    bias: np.ndarray  # (len(MODALITIES),), rows in MODALITIES order
    slope: np.ndarray  # (len(MODALITIES), N_FEATURES), non-negative
    temperature: float

    def scores(self, features: np.ndarray, rows: list[int] | slice) -> np.ndarray:
        """Attention scores of tokens (..., N_FEATURES) of the modalities at `rows` of `MODALITIES`."""
        return np.asarray((features * self.slope[rows]).sum(axis=-1) + self.bias[rows])

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

        target = path or DEFAULT_FUSION
        checkpoint = Checkpoint.load(target)
        if checkpoint.arch.get("attention") != FUSION_ARCH:
            raise ValueError(
                f"{target}: fusion weights of another architecture ({checkpoint.arch}); "
                f"this code reads {FUSION_ARCH!r}: re-run `make train-fusion`"
            )
        state = {k: v.detach().double().numpy() for k, v in checkpoint.state_dict.items()}
        if np.any(state["slope"] < 0):
            raise ValueError(f"{target}: fusion slopes must be non-negative")
        weights = FusionWeights(state["bias"], state["slope"], checkpoint.temperature)
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
