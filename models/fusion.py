"""Per-turn fusion: a turn is as emotional as the trustworthy channel that carries the emotion.

Neutral is the absence of evidence, not evidence against an emotion. On a call the words
may carry the anger ("I am furious, you charged me twice", read in a flat voice) or the
voice may ("thank you so much", said through clenched teeth); a calm channel must never
outvote the one that is upset. So the fusion reads each modality's *departure from its
own habit* and lets the channel that departs most speak for the turn.

Emotion is read in three ordered steps, each a yes/no question (`TIERS`):
negative (sad, angry, fearful, disgusted)? if not, happy? if not, surprised? else neutral.
For one modality with distribution p these are q_neg = p(neg), q_happy = p(happy) / (1 - p(neg)),
q_surprised = p(surprised) / (p(surprised) + p(neutral)): the distribution over the families is
exactly the product of these steps, so nothing is lost. Then, for each step t:

- departure d_m = logit q_m - logit prior_m, where prior_m is what modality m says on
  average over its own training data (the voice head, trained on acted RAVDESS, calls 60 %
  of everything negative; the text model, trained on conversation, about 25 %): "0.6
  negative" is news from the text and habit from the voice;
- reliability r_m = trust_m * min(1, confidence / max p): the part of an estimate's confidence
  its distribution does not already show (1 for an estimate whose confidence is its top
  probability; lower when a model says "do not trust me on this audio", as the voice does
  on a caller's first turn or on unusual audio), times a fitted trust of the modality
  (text: 1 by definition);
- selection w_m = softmax over the present modalities of r_m * d_m / tau: the channel that
  departs most from its habit, discounted by how far it can be trusted, leads;
- fused step logit Z = sum_m w_m * z~_m, with z~_m = r_m * logit q_m + (1 - r_m) * logit reference:
  each channel's own reading, pulled toward the reference (a calm everyday turn) as its
  reliability falls.

Which negative emotion: the mixture of the modalities' distributions within the negative
family, weighted by the same w of the negative step. A single modality with full
reliability passes through exactly (its own distribution), so chat turns (text only) and
face-only turns read as their model reads them. Absent modalities are masked out of the
softmax, never zero-filled.

`TurnEmotion.weights` is each modality's *contribution to this turn's result*: its Shapley
share of the fused probability of the turn's label, where a coalition of modalities is
fused alone and the empty coalition is the reference prior; negative shares (a modality
that argued against the label, such as polite words in an angry voice) count as 0, the
rest is normalised to sum to 1 (equal shares when no modality lifted the label above the
reference). "voice 0.9, text 0.1" on an angry turn: the anger came from the voice.

Parameters (`models/weights/fusion.json`, written by `make train-fusion`): the priors of
each modality and the reference, the trusts and tau. `AttentionFusion`, the hand-set
masked attention of the foundation, is the fallback when no weights exist.
"""

from __future__ import annotations

import functools
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Protocol

import numpy as np
from numpy.typing import NDArray

from models.emotion import (
    LABEL_INDEX,
    LABELS,
    MODALITIES,
    NEGATIVE_LABELS,
    EmotionEstimate,
    InvalidEstimate,
    Modality,
    TurnEmotion,
)
from models.logs import log_event

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_FUSION = WEIGHTS_DIR / "fusion.json"
FUSION_ARCH = "neutral-relative-evidence"
TIERS = ("negative", "happy", "surprised")
_NEG = np.array([LABEL_INDEX[k] for k in NEGATIVE_LABELS])
_HAPPY, _SURPRISED, _NEUTRAL = LABEL_INDEX["happy"], LABEL_INDEX["surprised"], LABEL_INDEX["neutral"]
_EPS = 1e-6
_MAX_ENTROPY = float(np.log(len(LABELS)))


class Fuser(Protocol):
    """Anything that fuses one turn's estimates (the trained fusion or the hand-set fallback)."""

    def fuse(self, estimates: Iterable[EmotionEstimate]) -> TurnEmotion: ...


def _logit(q: NDArray[np.float64]) -> NDArray[np.float64]:
    q = np.clip(q, _EPS, 1.0 - _EPS)
    return np.asarray(np.log(q) - np.log1p(-q))


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def tier_masses(probs: NDArray[np.float64]) -> NDArray[np.float64]:
    """(..., 7) distributions -> (..., 3) the probability of each step of `TIERS`, given the earlier ones said no."""
    p = np.asarray(probs, dtype=np.float64)
    neg = p[..., _NEG].sum(axis=-1)
    happy = p[..., _HAPPY] / np.maximum(1.0 - neg, _EPS)
    surprised = p[..., _SURPRISED] / np.maximum(p[..., _SURPRISED] + p[..., _NEUTRAL], _EPS)
    return np.stack([neg, happy, surprised], axis=-1)


def compose(steps: NDArray[np.float64], within_negative: NDArray[np.float64]) -> NDArray[np.float64]:
    """Inverse of `tier_masses`: (..., 3) step probabilities and (..., 4) shares of the negative labels -> (..., 7)."""
    neg, happy, surprised = steps[..., 0], steps[..., 1], steps[..., 2]
    out = np.zeros((*steps.shape[:-1], len(LABELS)))
    out[..., _NEG] = neg[..., None] * within_negative
    out[..., _HAPPY] = (1.0 - neg) * happy
    out[..., _SURPRISED] = (1.0 - neg) * (1.0 - happy) * surprised
    out[..., _NEUTRAL] = (1.0 - neg) * (1.0 - happy) * (1.0 - surprised)
    return out


def reliability(probs: NDArray[np.float64], confidence: NDArray[np.float64]) -> NDArray[np.float64]:
    """The share of an estimate's confidence its distribution does not show: min(1, confidence / max p)."""
    top = np.asarray(probs).max(axis=-1)
    return np.asarray(np.clip(np.asarray(confidence) / np.maximum(top, _EPS), 0.0, 1.0))


@dataclass(frozen=True)
class EvidenceWeights:
    """The fitted fusion: per-modality priors (rows in `MODALITIES` order), the reference, trusts, tau."""

    priors: NDArray[np.float64]  # (3, 7): each modality's mean distribution over its own training data
    reference: NDArray[np.float64]  # (7,): a calm everyday turn; also the empty coalition of the contributions
    trust: NDArray[np.float64]  # (3,) in (0, 1]: how far each modality is believed at full confidence (text: 1)
    tau: float  # softness of the choice (small: the most departing channel alone; large: an average)

    def steps(
        self, probs: NDArray[np.float64], confidence: NDArray[np.float64], mask: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """(n, 3, 7) probs, (n, 3) confidences, (n, 3) presence -> fused step probabilities (n, 3) and the
        selection weights (n, 3 steps, 3 modalities), 0 where a modality is absent."""
        if not np.all(mask.any(axis=1)):
            raise InvalidEstimate("cannot fuse a turn with no estimates")
        z = _logit(tier_masses(probs))  # (n, m, t)
        departure = z - _logit(tier_masses(self.priors))[None]
        r = (reliability(probs, confidence) * self.trust[None])[..., None]  # (n, m, 1)
        scores = r * departure / self.tau
        scores = np.where(mask[..., None], scores, -np.inf)
        w = np.exp(scores - scores.max(axis=1, keepdims=True))
        w = w / w.sum(axis=1, keepdims=True)  # (n, m, t)
        shrunk = r * z + (1.0 - r) * _logit(tier_masses(self.reference))[None, None]
        fused = _sigmoid(np.where(mask[..., None], w * shrunk, 0.0).sum(axis=1))
        return fused, np.transpose(w, (0, 2, 1))

    def fuse_arrays(
        self, probs: NDArray[np.float64], confidence: NDArray[np.float64], mask: NDArray[np.bool_]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Batch form: fused distributions (n, 7) and each modality's contribution (n, 3), 0 where absent.

        Every coalition of each turn's modalities is fused in one batch (the full one is the turn itself)."""
        n, m = mask.shape
        members = _coalitions(m)  # (2^m, m); row b holds the modalities of bit mask b; row 0 is empty
        sub = mask[:, None, :] & members[None]  # (n, 2^m, m)
        empty = ~sub.any(axis=2)
        rows = np.where(empty[..., None], mask[:, None, :], sub).reshape(-1, m)  # empty rows: any valid mask
        repeat = np.repeat(np.arange(n), len(members))
        out = self.fuse_probs(probs[repeat], confidence[repeat], rows).reshape(n, len(members), len(LABELS))
        fused = out[:, -1]  # the coalition of every modality: the turn as it is
        label = fused.argmax(axis=1)
        value = np.where(empty, self.reference[label][:, None], out[np.arange(n), :, label])
        return fused, _shapley_shares(value, mask)

    def fuse_probs(
        self, probs: NDArray[np.float64], confidence: NDArray[np.float64], mask: NDArray[np.bool_]
    ) -> NDArray[np.float64]:
        """Fused distributions (n, 7) without the contributions (for fitting)."""
        steps, w = self.steps(probs, confidence, mask)
        within = probs[..., _NEG] / np.maximum(probs[..., _NEG].sum(axis=-1, keepdims=True), _EPS)  # (n, m, 4)
        mixture = np.einsum("nm,nmk->nk", w[:, 0], np.where(mask[..., None], within, 0.0))
        return compose(steps, mixture / np.maximum(mixture.sum(axis=-1, keepdims=True), _EPS))

    def to_json(self) -> dict[str, Any]:
        return {
            "priors": {m.value: [float(x) for x in self.priors[i]] for i, m in enumerate(MODALITIES)},
            "reference": [float(x) for x in self.reference],
            "trust": {m.value: float(self.trust[i]) for i, m in enumerate(MODALITIES)},
            "tau": float(self.tau),
        }

    @classmethod
    def from_json(cls, params: Mapping[str, Any]) -> EvidenceWeights:
        priors = np.array([params["priors"][m.value] for m in MODALITIES], dtype=np.float64)
        trust = np.array([params["trust"][m.value] for m in MODALITIES], dtype=np.float64)
        reference = np.asarray(params["reference"], dtype=np.float64)
        tau = float(params["tau"])
        if priors.shape != (len(MODALITIES), len(LABELS)) or reference.shape != (len(LABELS),):
            raise ValueError("fusion priors must be one distribution over the labels per modality")
        if np.any(priors <= 0) or np.any(reference <= 0) or not tau > 0:
            raise ValueError("fusion priors and tau must be positive")
        if np.any(trust <= 0) or np.any(trust > 1):
            raise ValueError("fusion trusts must lie in (0, 1]")
        return cls(priors / priors.sum(axis=1, keepdims=True), reference / reference.sum(), trust, tau)


@functools.lru_cache(maxsize=4)
def _coalitions(players: int) -> NDArray[np.bool_]:
    """(2^players, players) membership of every coalition, row b holding the players of bit mask b."""
    return np.array([[bool(b >> j & 1) for j in range(players)] for b in range(2**players)])


def _shapley_shares(value: NDArray[np.float64], mask: NDArray[np.bool_]) -> NDArray[np.float64]:
    """Shapley values of each player from coalition values (n, 2^m) indexed by bit mask, clipped at 0 and
    normalised over the present players (equal shares when none lifted the value)."""
    n, m = mask.shape
    phi = np.zeros((n, m))
    for j in range(m):
        for b in range(2**m):
            if not b >> j & 1:
                size = bin(b).count("1")
                weight = math.factorial(size) * math.factorial(m - size - 1) / math.factorial(m)
                phi[:, j] += weight * (value[:, b | 1 << j] - value[:, b])
    phi = np.where(mask, np.maximum(phi, 0.0), 0.0)  # an absent modality adds nothing (its coalitions equal)
    total = phi.sum(axis=1, keepdims=True)
    equal = mask / mask.sum(axis=1, keepdims=True)
    return np.asarray(np.where(total > 1e-9, phi / np.maximum(total, 1e-12), equal))


def _arrays(
    by_modality: Mapping[Modality, EmotionEstimate],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.bool_]]:
    probs = np.full((1, len(MODALITIES), len(LABELS)), 1.0 / len(LABELS))
    confidence = np.ones((1, len(MODALITIES)))
    mask = np.zeros((1, len(MODALITIES)), dtype=bool)
    for i, m in enumerate(MODALITIES):
        if m in by_modality:
            probs[0, i], confidence[0, i], mask[0, i] = by_modality[m].probs, by_modality[m].confidence, True
    return probs, confidence, mask


class EvidenceFusion:
    """The shipped fusion (`EvidenceWeights` from `fusion.json`); numpy only, well under a millisecond a turn."""

    def __init__(self, weights: EvidenceWeights, name: str = "fusion-evidence@dev") -> None:
        self.weights = weights
        self.name = name

    @classmethod
    def load(cls, path: Path | None = None) -> EvidenceFusion:
        """Read the parameters `training.recipes.fusion.train` wrote; older formats fail naming the fix."""
        target = path or DEFAULT_FUSION
        redo = "re-run `make train-fusion` (python -m training.recipes.fusion.train) to write the current format"
        if target.suffix != ".json":
            raise ValueError(f"{target}: the fusion reads its parameters from a .json file (fusion.json); {redo}")
        try:
            raw = json.loads(target.read_text())
        except json.JSONDecodeError as exc:
            raise ValueError(f"{target}: not JSON ({exc}); {redo}") from None
        if not isinstance(raw, dict) or raw.get("arch") != FUSION_ARCH or "params" not in raw:
            arch = raw.get("arch") if isinstance(raw, dict) else None
            raise ValueError(f"{target}: fusion weights of another design ({arch!r}), not {FUSION_ARCH!r}: {redo}")
        if tuple(raw.get("labels", ())) != LABELS:
            raise ValueError(f"{target}: fitted for labels {raw.get('labels')}, this code uses {list(LABELS)}; {redo}")
        return cls(EvidenceWeights.from_json(raw["params"]), f"fusion-evidence@{raw.get('version', 'dev')}")

    def fuse(self, estimates: Iterable[EmotionEstimate]) -> TurnEmotion:
        """Fuse one turn. Later estimates of the same modality replace earlier ones."""
        by_modality = {e.modality: e for e in estimates}
        if not by_modality:
            raise InvalidEstimate("cannot fuse a turn with no estimates")
        arrays = _arrays(by_modality)
        if len(by_modality) == 1:  # one modality carries the whole turn: no coalitions to weigh
            fused, contributions = self.weights.fuse_probs(*arrays), arrays[2].astype(np.float64)
        else:
            fused, contributions = self.weights.fuse_arrays(*arrays)
        probs = fused[0] / fused[0].sum()
        return TurnEmotion(
            probs=tuple(float(p) for p in probs),
            weights={m.value: float(contributions[0, i]) for i, m in enumerate(MODALITIES) if m in by_modality},
            estimates=tuple(by_modality[m] for m in MODALITIES if m in by_modality),
            confidence=float(probs.max()),
        )


def _entropy(probs: NDArray[np.float64]) -> NDArray[np.float64]:
    """Normalised entropy in [0, 1] of each row of `probs`."""
    p = np.clip(probs, 1e-12, 1.0)
    return np.asarray(-(p * np.log(p)).sum(axis=-1) / _MAX_ENTROPY)


def _present(estimates: Mapping[Modality, EmotionEstimate]) -> list[Modality]:
    """The modalities a turn has, in `MODALITIES` order; a turn with none cannot be fused."""
    present = [m for m in MODALITIES if m in estimates]
    if not present:
        raise InvalidEstimate("cannot fuse a turn with no estimates")
    return present


@dataclass(frozen=True)
class FusionParams:
    """Hand-set attention parameters: per-modality prior score and the reliability gain."""

    priors: Mapping[Modality, float] = field(
        default_factory=lambda: {Modality.TEXT: 0.0, Modality.VOICE: 0.0, Modality.FACE: -0.5}
    )
    gain: float = 3.0


class AttentionFusion:
    """The hand-set masked attention of the foundation: the fallback when no fitted weights exist.

    A mixture weighted by how sure each estimate is (confidence times 1 - normalised entropy);
    it does not know that neutral is the absence of evidence, which is why it is only the fallback.
    """

    name = "fusion-hand-set"

    def __init__(self, params: FusionParams | None = None) -> None:
        self.params = params or FusionParams()

    def attention(self, estimates: Mapping[Modality, EmotionEstimate]) -> dict[Modality, float]:
        """Masked softmax over the modalities present; absent ones get no weight at all."""
        present = _present(estimates)
        sure = [estimates[m].confidence * float(1.0 - _entropy(np.asarray(estimates[m].probs))) for m in present]
        scores = np.array([self.params.priors.get(m, 0.0) + self.params.gain * s for m, s in zip(present, sure)])
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


@functools.lru_cache(maxsize=4)
def load_fusion(path: str | None = None) -> Fuser:
    """The fitted fusion, loaded once per process; the hand-set one (logged) if its weights are missing."""
    target = Path(path) if path else DEFAULT_FUSION
    if not target.exists():
        log_event(logger, logging.WARNING, "fusion.weights.missing", path=str(target), fallback=AttentionFusion.name)
        return AttentionFusion()
    fusion = EvidenceFusion.load(target)
    log_event(logger, logging.INFO, "fusion.loaded", model=fusion.name, tau=fusion.weights.tau)
    return fusion
