"""The shared emotion vocabulary: labels, valence/arousal, estimates and turns.

Every modality maps into the same seven labels; every consumer (fusion, policy,
state store, dashboard) reads the same two typed units, `EmotionEstimate` and
`TurnEmotion`, which serialise to small JSON dicts for Rasa metadata and Redis.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np
from numpy.typing import NDArray

LABELS: tuple[str, ...] = (
    "neutral",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgusted",
    "surprised",
)
LABEL_INDEX: dict[str, int] = {name: i for i, name in enumerate(LABELS)}

# Valence in [-1, 1], arousal in [0, 1]. Anchored on the NRC VAD lexicon scores
# of the label words (rescaled); "surprised" is kept only mildly positive
# because in contact centres surprise is as often bad news as good.
VALENCE: Mapping[str, float] = {
    "neutral": 0.0,
    "happy": 0.9,
    "sad": -0.75,
    "angry": -0.8,
    "fearful": -0.7,
    "disgusted": -0.7,
    "surprised": 0.1,
}
AROUSAL: Mapping[str, float] = {
    "neutral": 0.2,
    "happy": 0.7,
    "sad": 0.3,
    "angry": 0.9,
    "fearful": 0.8,
    "disgusted": 0.6,
    "surprised": 0.85,
}
_VALENCE_VEC = np.array([VALENCE[name] for name in LABELS])
_AROUSAL_VEC = np.array([AROUSAL[name] for name in LABELS])
# The labels a customer is unhappy in. Routing asks how sure we are that a turn is
# one of them together, not how sure we are of the single top label: a turn read as
# angry 0.49 / disgusted 0.43 is a confident negative turn, not an unsure one.
NEGATIVE_LABELS: tuple[str, ...] = tuple(name for name in LABELS if VALENCE[name] < 0)
_NEGATIVE_MASK = np.array([VALENCE[name] < 0 for name in LABELS], dtype=float)
# Coarse families for people and rules that do not need seven labels. Surprise is
# neutral here: in a service conversation it is a reaction, not a mood.
FAMILIES: Mapping[str, tuple[str, ...]] = {
    "negative": NEGATIVE_LABELS,
    "neutral": ("neutral", "surprised"),
    "positive": ("happy",),
}
FAMILY_OF_LABEL: Mapping[str, str] = {label: family for family, labels in FAMILIES.items() for label in labels}
_FAMILY_MASKS = {
    family: np.array([name in members for name in LABELS], dtype=float) for family, members in FAMILIES.items()
}
FAMILY_NAMES: tuple[str, ...] = tuple(FAMILIES)
# Where evidence of a family that no label of it carries goes (`with_family_evidence`): dissatisfaction
# with no named emotion is disappointment, which GoEmotions' Ekman grouping files under sadness (calm,
# low arousal: a complaint stated calmly is not an outburst); plain talk is neutral; praise is happy.
FAMILY_DEFAULT_LABEL: Mapping[str, str] = {"negative": "sad", "neutral": "neutral", "positive": "happy"}

# Names other corpora use for the canonical labels. Anything not here (calm,
# love, contempt, ...) is not silently folded into a neighbour: callers skip it.
ALIASES: Mapping[str, str] = {
    "neutral": "neutral",
    "no emotion": "neutral",
    "none": "neutral",
    "happy": "happy",
    "happiness": "happy",
    "joy": "happy",
    "sad": "sad",
    "sadness": "sad",
    "angry": "angry",
    "anger": "angry",
    "fearful": "fearful",
    "fear": "fearful",
    "disgusted": "disgusted",
    "disgust": "disgusted",
    "surprised": "surprised",
    "surprise": "surprised",
}


class InvalidEstimate(ValueError):
    """An emotion estimate (or its JSON form) that cannot be used."""


class Modality(str, enum.Enum):
    """The streams Toneline reads a customer's emotion from."""

    TEXT = "text"
    VOICE = "voice"
    FACE = "face"


MODALITIES: tuple[Modality, ...] = (Modality.TEXT, Modality.VOICE, Modality.FACE)


def canonical_label(name: str) -> str | None:
    """Map a dataset's label name to the canonical one, or None if it has none."""
    return ALIASES.get(name.strip().lower())


def valence_of(probs: Sequence[float] | NDArray[np.floating[Any]]) -> float:
    """Expected valence under a distribution over `LABELS`."""
    return float(np.dot(np.asarray(probs, dtype=float), _VALENCE_VEC))


def arousal_of(probs: Sequence[float] | NDArray[np.floating[Any]]) -> float:
    """Expected arousal under a distribution over `LABELS`."""
    return float(np.dot(np.asarray(probs, dtype=float), _AROUSAL_VEC))


def negative_of(probs: Sequence[float] | NDArray[np.floating[Any]]) -> float:
    """Probability of the negative labels together (`NEGATIVE_LABELS`)."""
    return float(np.dot(np.asarray(probs, dtype=float), _NEGATIVE_MASK))


def family_of(probs: Sequence[float] | NDArray[np.floating[Any]]) -> str:
    """The family (`FAMILIES`) holding the most probability, not the family of the top label.

    Four labels share the negative mass: "I appreciate you trying, but this is still not
    working and I'm really frustrated" reads happy 0.47 against the negative labels'
    0.49 together. Mapping the top label would call that customer positive; the
    family's total is what routing acts on too (`negative_of`).
    """
    p = np.asarray(probs, dtype=float)
    return max(_FAMILY_MASKS, key=lambda family: float(np.dot(p, _FAMILY_MASKS[family])))


def family_masses(probs: NDArray[np.floating[Any]]) -> NDArray[np.floating[Any]]:
    """Rows of `probs` (..., len(LABELS)) summed per family, in `FAMILY_NAMES` order."""
    return np.stack([probs @ _FAMILY_MASKS[f] for f in FAMILY_NAMES], axis=-1)


def with_family_evidence(
    probs: NDArray[np.floating[Any]], families: NDArray[np.floating[Any]], weight: float
) -> NDArray[np.floating[Any]]:
    """Labels' probabilities moved toward a family-level reading (a sentiment head's), rows of (..., len(LABELS)).

    Each family's target mass is `(1 - weight) * its mass in probs + weight * families[f]`.
    A family that loses mass keeps its labels' proportions; the mass a family gains
    goes to its `FAMILY_DEFAULT_LABEL`, so the sentiment head can say "unhappy" without
    inventing which emotion: a calm complaint reads as disappointment, not anger, and
    the labels the emotion head did name stay as it named them. `weight` 0 is `probs`.
    """
    probs = np.asarray(probs, dtype=float)
    have = family_masses(probs)
    target = (1.0 - weight) * have + weight * np.asarray(families, dtype=float)
    out = probs.copy()
    for j, family in enumerate(FAMILY_NAMES):
        members = _FAMILY_MASKS[family].astype(bool)
        scale = np.minimum(target[..., j], have[..., j]) / np.maximum(have[..., j], 1e-12)
        out[..., members] *= scale[..., None]
        out[..., LABEL_INDEX[FAMILY_DEFAULT_LABEL[family]]] += np.maximum(target[..., j] - have[..., j], 0.0)
    out /= out.sum(axis=-1, keepdims=True)
    return out


def normalise_probs(raw: Sequence[float] | Mapping[str, float] | NDArray[np.floating[Any]]) -> tuple[float, ...]:
    """Validate a distribution over `LABELS` (list or label->p dict) and renormalise it.

    Raises `InvalidEstimate` naming what is wrong: wrong length, unknown label,
    NaN/inf, negative mass or all-zero mass.
    """
    if isinstance(raw, Mapping):
        unknown = [k for k in raw if k not in LABEL_INDEX]
        if unknown:
            raise InvalidEstimate(f"unknown emotion labels {unknown}; expected a subset of {list(LABELS)}")
        values = [raw.get(name, 0.0) for name in LABELS]
    elif isinstance(raw, (str, bytes)) or not isinstance(raw, (Sequence, np.ndarray)):
        raise InvalidEstimate(f"probabilities must be a list or a label -> p object, got {type(raw).__name__}")
    else:
        values = list(raw)
        if len(values) != len(LABELS):
            raise InvalidEstimate(
                f"expected {len(LABELS)} probabilities in the order {list(LABELS)}, got {len(values)}"
            )
    try:
        arr = np.asarray(values, dtype=float)
    except (TypeError, ValueError, OverflowError) as exc:
        raise InvalidEstimate(f"probabilities must be numbers: {exc}") from None
    if not np.all(np.isfinite(arr)):
        raise InvalidEstimate("probabilities contain NaN or infinity")
    if np.any(arr < 0):
        raise InvalidEstimate("probabilities must not be negative")
    with np.errstate(over="ignore"):
        total = float(arr.sum())
    if not math.isfinite(total):  # values near the float limit overflow the sum: scale them first
        arr = arr / float(arr.max())
        total = float(arr.sum())
    if total <= 0:
        raise InvalidEstimate("probabilities sum to zero")
    return tuple(float(p) for p in arr / total)


def _finite(value: Any, name: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):  # OverflowError: an integer beyond float range
        raise InvalidEstimate(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(number):
        raise InvalidEstimate(f"{name} must be finite, got {value!r}")
    return number


class _Distribution:
    """Label, valence and arousal read off a distribution `probs` over `LABELS`."""

    probs: tuple[float, ...]

    @property
    def label(self) -> str:
        """The most probable canonical label."""
        return LABELS[int(np.argmax(self.probs))]

    @property
    def valence(self) -> float:
        return valence_of(self.probs)

    @property
    def arousal(self) -> float:
        return arousal_of(self.probs)

    @property
    def negative(self) -> float:
        """Probability that the customer is in a negative state (any of `NEGATIVE_LABELS`)."""
        return negative_of(self.probs)

    @property
    def family(self) -> str:
        """negative, neutral or positive: the family with the most probability (`family_of`)."""
        return family_of(self.probs)

    def probs_dict(self) -> dict[str, float]:
        # Full precision: JSON round-trips floats exactly, and rounding could tie two labels and flip the argmax
        # between the process that wrote an estimate and the one that reads it.
        return {name: float(p) for name, p in zip(LABELS, self.probs)}


@dataclass(frozen=True)
class EmotionEstimate(_Distribution):
    """One modality's view of one customer turn.

    `probs` follows `LABELS`. `confidence` is the model's own reliability in
    [0, 1] (by default the top probability). `embedding` is an optional vector
    that a trained fusion model may attend over.
    """

    modality: Modality
    probs: tuple[float, ...]
    confidence: float
    start: float | None = None
    end: float | None = None
    embedding: tuple[float, ...] | None = None
    model: str = ""

    @classmethod
    def from_probs(
        cls,
        modality: Modality | str,
        probs: Sequence[float] | Mapping[str, float] | NDArray[np.floating[Any]],
        *,
        confidence: float | None = None,
        start: float | None = None,
        end: float | None = None,
        embedding: Sequence[float] | NDArray[np.floating[Any]] | None = None,
        model: str = "",
    ) -> EmotionEstimate:
        """Build a validated estimate; confidence defaults to the top probability."""
        try:
            mod = Modality(modality)
        except ValueError:
            raise InvalidEstimate(
                f"unknown modality {modality!r}; expected one of {[m.value for m in MODALITIES]}"
            ) from None
        clean = normalise_probs(probs)
        conf = max(clean) if confidence is None else _finite(confidence, "confidence")
        if not 0.0 <= conf <= 1.0:
            raise InvalidEstimate(f"confidence must lie in [0, 1], got {conf}")
        emb = None
        if embedding is not None:
            try:
                values = np.asarray(embedding, dtype=float).ravel()
            except (TypeError, ValueError, OverflowError):
                raise InvalidEstimate("an embedding must be a list of numbers") from None
            emb = tuple(_finite(x, "embedding value") for x in values)
        span = [None if t is None else _finite(t, "time") for t in (start, end)]
        return cls(mod, clean, conf, span[0], span[1], emb, model)

    def to_dict(self, *, with_embedding: bool = True) -> dict[str, Any]:
        """JSON-ready dict; probabilities keyed by label so readers need no order."""
        out: dict[str, Any] = {
            "modality": self.modality.value,
            "probs": self.probs_dict(),
            "label": self.label,
            "confidence": round(self.confidence, 6),
            "valence": round(self.valence, 6),
            "arousal": round(self.arousal, 6),
        }
        if self.start is not None or self.end is not None:
            out["start"], out["end"] = self.start, self.end
        if self.model:
            out["model"] = self.model
        if with_embedding and self.embedding is not None:
            out["embedding"] = [round(x, 6) for x in self.embedding]
        return out

    @classmethod
    def from_dict(cls, data: Any, *, modality: Modality | str | None = None) -> EmotionEstimate:
        """Parse the dict form (as produced by `to_dict` or sent by a connector)."""
        if not isinstance(data, Mapping):
            raise InvalidEstimate(f"an emotion estimate must be a JSON object, got {type(data).__name__}")
        if "probs" not in data:
            raise InvalidEstimate("an emotion estimate needs 'probs'")
        return cls.from_probs(
            modality if modality is not None else data.get("modality", ""),
            data["probs"],
            confidence=data.get("confidence"),
            start=data.get("start"),
            end=data.get("end"),
            embedding=data.get("embedding"),
            model=str(data.get("model", "")),
        )


@dataclass(frozen=True)
class TurnEmotion(_Distribution):
    """The fused emotion of one customer turn, with the attention weight of each modality."""

    probs: tuple[float, ...]
    weights: Mapping[str, float]
    estimates: tuple[EmotionEstimate, ...] = field(default_factory=tuple)
    confidence: float | None = None

    @property
    def effective_confidence(self) -> float:
        """The fusion's confidence, or the top probability when none was given."""
        return self.confidence if self.confidence is not None else float(max(self.probs))

    def to_dict(self) -> dict[str, Any]:
        """Small JSON dict for parse data, Redis and the dashboard (embeddings dropped)."""
        return {
            "label": self.label,
            "confidence": round(self.effective_confidence, 6),
            "valence": round(self.valence, 6),
            "arousal": round(self.arousal, 6),
            "negative": round(self.negative, 6),
            "family": self.family,
            "probs": self.probs_dict(),
            "weights": {k: round(v, 6) for k, v in self.weights.items()},
            "estimates": [e.to_dict(with_embedding=False) for e in self.estimates],
        }

    @classmethod
    def from_dict(cls, data: Any) -> TurnEmotion:
        """Parse the dict form; raises `InvalidEstimate` naming the bad field."""
        if not isinstance(data, Mapping) or "probs" not in data:
            raise InvalidEstimate("a turn emotion must be a JSON object with 'probs'")
        weights = data.get("weights", {})
        if not isinstance(weights, Mapping):
            raise InvalidEstimate("'weights' must be an object of modality -> weight")
        estimates = tuple(EmotionEstimate.from_dict(e) for e in data.get("estimates", []))
        return cls(
            probs=normalise_probs(data["probs"]),
            weights={str(k): _finite(v, f"weight of {k}") for k, v in weights.items()},
            estimates=estimates,
            confidence=None if data.get("confidence") is None else _finite(data["confidence"], "confidence"),
        )
