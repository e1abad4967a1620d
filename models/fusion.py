"""Per-turn fusion of modality estimates with masked attention.

Each present modality is a token; its attention score is a learned-or-set
modality prior plus a gain times the estimate's reliability (its confidence,
discounted by the entropy of its distribution). Absent modalities are masked
out of the softmax rather than zero-filled, so a turn with text only is fused
exactly as text, and the weights say which stream the result leans on.

The parameters here are set by hand for the foundation; the trained fusion
model (its own issue) keeps this interface: `fuse(estimates) -> TurnEmotion`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping

import numpy as np

from models.emotion import LABELS, MODALITIES, EmotionEstimate, InvalidEstimate, Modality, TurnEmotion

_MAX_ENTROPY = float(np.log(len(LABELS)))


@dataclass(frozen=True)
class FusionParams:
    """Attention parameters: per-modality prior score and the reliability gain."""

    priors: Mapping[Modality, float] = field(
        default_factory=lambda: {Modality.TEXT: 0.0, Modality.VOICE: 0.0, Modality.FACE: -0.5}
    )
    gain: float = 3.0


def reliability(estimate: EmotionEstimate) -> float:
    """Confidence times (1 - normalised entropy): 1 for a sure one-hot, 0 for uniform."""
    p = np.clip(np.asarray(estimate.probs), 1e-12, 1.0)
    entropy = float(-(p * np.log(p)).sum())
    return estimate.confidence * (1.0 - entropy / _MAX_ENTROPY)


class AttentionFusion:
    """Fuse whatever modality estimates a turn has into one `TurnEmotion`."""

    def __init__(self, params: FusionParams | None = None) -> None:
        self.params = params or FusionParams()

    def attention(self, estimates: Mapping[Modality, EmotionEstimate]) -> dict[Modality, float]:
        """Masked softmax over the modalities present; absent ones get no weight at all."""
        present = [m for m in MODALITIES if m in estimates]
        if not present:
            raise InvalidEstimate("cannot fuse a turn with no estimates")
        scores = np.array(
            [self.params.priors.get(m, 0.0) + self.params.gain * reliability(estimates[m]) for m in present]
        )
        weights = np.exp(scores - scores.max())
        weights /= weights.sum()
        return {m: float(w) for m, w in zip(present, weights)}

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
