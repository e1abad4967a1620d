"""What the fusion's evaluation reports: each modality alone and fused, family accuracy, calibration.

Used by `python -m training.recipes.fusion.train` (numbers in `fusion.json`) and
`python -m models.evaluate fusion` (printed report). It imports nothing from the
training script (that would be a cycle: the script imports this).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.emotion import LABELS
from models.fusion import EvidenceWeights
from training.metrics import Report, evaluate, expected_calibration_error
from training.recipes.fusion.data import (
    FACE,
    TEXT,
    VOICE,
    FoldReadings,
    Turns,
    calm_callers,
    face_only,
    spoken_estimates,
    text_only,
)
from training.recipes.fusion.turns import family_scores

# The contact-centre spoken set's bar (issue 16): fused family accuracy, and how far under text alone it may be.
SPOKEN_FLOOR = 0.85
SPOKEN_MARGIN = 0.03
# Held-out RAVDESS actors: fused accuracy at least voice alone minus this.
RAVDESS_MARGIN = 0.01


def _names(idx: NDArray[Any]) -> list[str]:
    return [LABELS[int(i)] for i in idx]


def _report(probs: NDArray[Any], gold: NDArray[Any]) -> Report:
    return evaluate(_names(gold), _names(probs.argmax(axis=1)))


def _scores(report: Report, probs: NDArray[Any], gold: NDArray[Any]) -> dict[str, Any]:
    return {
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "weighted_f1": round(report.weighted_f1, 4),
        "ece": round(expected_calibration_error(probs, gold), 4),
        "family_accuracy": family_scores(_names(gold), probs)["family_accuracy"],
    }


def ravdess_arms(held: FoldReadings) -> dict[str, tuple[NDArray[Any], Report]]:
    """Voice alone, ASR-text alone and fused distributions of held-out turns, with their reports."""
    y = held.turns.labels
    arms = {"voice": held.turns.probs[:, VOICE], "asr_text": held.turns.probs[:, TEXT], "fused": held.fused}
    return {name: (p, _report(p, y)) for name, p in arms.items()}


def summarise_variant(held: FoldReadings) -> dict[str, Any]:
    y = held.turns.labels
    out: dict[str, Any] = {"n": len(y)}
    for name, (probs, report) in ravdess_arms(held).items():
        out[name] = _scores(report, probs, y)
    out["contribution"] = {
        "voice_mean": round(float(held.weights[:, VOICE].mean()), 4),
        "text_mean": round(float(held.weights[:, TEXT].mean()), 4),
        "share_voice_above_text": round(float((held.weights[:, VOICE] > held.weights[:, TEXT]).mean()), 4),
    }
    out["fused_minus_voice_accuracy"] = round(out["fused"]["accuracy"] - out["voice"]["accuracy"], 4)
    same = held.fused.argmax(1) == held.turns.probs[:, VOICE].argmax(1)
    out["label_agreement_with_voice"] = round(float(same.mean()), 4)
    return out


def summarise(held: dict[str, FoldReadings]) -> dict[str, Any]:
    """Speaker-held-out numbers per RAVDESS variant (studio, telephone; and the synthetic pairs test, where
    "asr_text" is the MELD test text paired with the voice turn), with the acceptance check."""
    out: dict[str, Any] = {name: summarise_variant(h) for name, h in held.items()}
    out["fused_at_least_voice_minus_0.01"] = all(
        out[v]["fused_minus_voice_accuracy"] >= -RAVDESS_MARGIN for v in ("studio", "telephone") if v in out
    )
    return out


def single_arms(weights: EvidenceWeights, turns: Turns, row: int, name: str) -> dict[str, tuple[NDArray[Any], Report]]:
    """One modality alone against the fusion on turns that have only it."""
    fused = weights.fuse_probs(turns.probs, turns.confidence, turns.mask)
    alone = turns.probs[:, row]
    return {name: (alone, _report(alone, turns.labels)), "fused": (fused, _report(fused, turns.labels))}


def single_modality_test(
    weights: EvidenceWeights, turns: Turns, row: int, name: str
) -> tuple[dict[str, Any], dict[str, tuple[NDArray[Any], Report]]]:
    """Scores of `name` alone vs fused and their label agreement, on held-out turns."""
    arms = single_arms(weights, turns, row, name)
    summary: dict[str, Any] = {"n": len(turns)}
    for arm, (probs, report) in arms.items():
        summary[arm] = _scores(report, probs, turns.labels)
    summary["label_agreement"] = round(float((arms[name][0].argmax(1) == arms["fused"][0].argmax(1)).mean()), 4)
    return summary, arms


def meld_test(weights: EvidenceWeights) -> tuple[dict[str, Any], dict[str, tuple[NDArray[Any], Report]]]:
    """MELD test with dialogue context (never used by the text head's or the fusion's fit)."""
    return single_modality_test(weights, text_only("meld", "test"), TEXT, "text")


def fer_test(weights: EvidenceWeights) -> tuple[dict[str, Any], dict[str, tuple[NDArray[Any], Report]]]:
    """FER2013 PublicTest (never used by the face model's or the fusion's fit): face alone vs fused."""
    return single_modality_test(weights, face_only("test"), FACE, "face")


def ece_gap(fused: NDArray[Any], single: NDArray[Any], gold: NDArray[Any], draws: int = 300) -> dict[str, float]:
    """ECE(fused) - ECE(single) on the same turns, with a 95 % bootstrap interval over turns (seeded)."""
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(draws):
        i = rng.integers(0, len(gold), len(gold))
        gaps.append(expected_calibration_error(fused[i], gold[i]) - expected_calibration_error(single[i], gold[i]))
    point = expected_calibration_error(fused, gold) - expected_calibration_error(single, gold)
    low, high = np.percentile(gaps, [2.5, 97.5])
    return {"gap": round(float(point), 4), "low": round(float(low), 4), "high": round(float(high), 4)}


def calibration_check(held: dict[str, FoldReadings]) -> dict[str, Any]:
    """Is the fused ECE no worse than the best single modality's? Per RAVDESS set: the gap to the better
    calibrated of voice alone and ASR text alone, and whether its bootstrap interval admits 0 or less."""
    out: dict[str, Any] = {}
    for name in ("studio", "telephone"):
        h = held[name]
        y = h.turns.labels
        singles = {"voice": h.turns.probs[:, VOICE], "asr_text": h.turns.probs[:, TEXT]}
        best = min(singles, key=lambda k: expected_calibration_error(singles[k], y))
        gap = ece_gap(h.fused, singles[best], y)
        out[name] = {"best_single": best, "fused_minus_best_ece": gap, "fused_no_worse": gap["low"] <= 0.0}
    return out


def calm_check(weights: EvidenceWeights) -> dict[str, Any]:
    """Calm people reading digit strings (FSDD, voice estimates leave-one-speaker-out) with their words, as a
    first turn and later in a call: the share of turns each arm reads as negative and as neutral."""
    out: dict[str, Any] = {}
    for name, variant in (
        ("first_turn", "studio_first"),
        ("in_a_call", "studio"),
        ("telephone_first_turn", "tel-eval_first"),
    ):
        turns = calm_callers(variant)
        fused = weights.fuse_probs(turns.probs, turns.confidence, turns.mask)
        arms = {"text": turns.probs[:, TEXT], "voice": turns.probs[:, VOICE], "fused": fused}
        out[name] = {"n": len(turns)} | {
            arm: {
                "negative_share": round(family_scores(_names(turns.labels), p)["families"]["negative"] / len(turns), 4),
                "neutral_share": family_scores(_names(turns.labels), p)["family_accuracy"],
            }
            for arm, p in arms.items()
        }
    return out


def spoken_check(weights: EvidenceWeights) -> tuple[dict[str, Any], dict[str, NDArray[Any]]]:
    """Family accuracy of text alone, voice alone and fused on the spoken set, overall, per voice and per kind."""
    turns = spoken_estimates()
    fused = weights.fuse_probs(turns.probs, turns.confidence, turns.mask)
    arms = {"text": turns.probs[:, TEXT], "voice": turns.probs[:, VOICE], "fused": fused}
    gold = _names(turns.labels)
    summary: dict[str, Any] = {"n": len(turns)}
    for arm, probs in arms.items():
        summary[arm] = {**_scores(_report(probs, turns.labels), probs, turns.labels), **family_scores(gold, probs)}
    for key in ("voice", "kind"):
        groups = turns.groups[key]
        summary[f"by_{key}"] = {
            g: {
                arm: family_scores([gold[i] for i in np.flatnonzero(groups == g)], p[groups == g])["family_accuracy"]
                for arm, p in arms.items()
            }
            for g in sorted(set(groups))
        }
    text_acc, fused_acc = summary["text"]["family_accuracy"], summary["fused"]["family_accuracy"]
    summary["meets_bar"] = bool(fused_acc >= SPOKEN_FLOOR and fused_acc >= text_acc - SPOKEN_MARGIN)
    return summary, arms
