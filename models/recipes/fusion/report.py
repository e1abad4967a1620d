"""What the fusion's evaluation reports: voice alone, ASR-text alone and fused, with calibration.

Used by `python -m models.recipes.fusion.train` (numbers in the checkpoint's
sidecar) and `python -m models.evaluate fusion` (printed report).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from models.emotion import LABELS
from models.fusion import FusionWeights
from models.metrics import Report, evaluate, expected_calibration_error
from models.recipes.fusion.data import FACE, TEXT, VOICE, Turns, face_only, text_only
from models.recipes.fusion.train import HeldOut


def _names(idx: np.ndarray) -> list[str]:
    return [LABELS[int(i)] for i in idx]


def _report(probs: np.ndarray, gold: np.ndarray) -> Report:
    return evaluate(_names(gold), _names(probs.argmax(axis=1)))


def _scores(report: Report, probs: np.ndarray, gold: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": round(report.accuracy, 4),
        "macro_f1": round(report.macro_f1, 4),
        "weighted_f1": round(report.weighted_f1, 4),
        "ece": round(expected_calibration_error(probs, gold), 4),
    }


def ravdess_arms(held: HeldOut) -> dict[str, tuple[np.ndarray, Report]]:
    """Voice alone, ASR-text alone and fused distributions of held-out turns, with their reports."""
    y = held.turns.labels
    arms = {"voice": held.turns.probs[:, VOICE], "asr_text": held.turns.probs[:, TEXT], "fused": held.fused}
    return {name: (p, _report(p, y)) for name, p in arms.items()}


def summarise_variant(held: HeldOut) -> dict[str, Any]:
    y = held.turns.labels
    out: dict[str, Any] = {"n": len(y)}
    for name, (probs, report) in ravdess_arms(held).items():
        out[name] = _scores(report, probs, y)
    out["fused"]["ece_before_temperature"] = round(expected_calibration_error(held.mixture, y), 4)
    out["attention"] = {
        "voice_mean": round(float(held.weights[:, VOICE].mean()), 4),
        "text_mean": round(float(held.weights[:, TEXT].mean()), 4),
        "voice_min": round(float(held.weights[:, VOICE].min()), 4),
        "share_voice_above_text": round(float((held.weights[:, VOICE] > held.weights[:, TEXT]).mean()), 4),
    }
    out["fused_minus_voice_accuracy"] = round(out["fused"]["accuracy"] - out["voice"]["accuracy"], 4)
    return out


def summarise(held: dict[str, HeldOut], pairs: bool = False) -> dict[str, Any]:
    """Speaker-held-out numbers per RAVDESS variant (studio, telephone; and the synthetic pairs test, where
    "asr_text" is the MELD test text paired with the voice turn)."""
    return {"synthetic_pairs": pairs, **{name: summarise_variant(h) for name, h in held.items()}}


def single_arms(weights: FusionWeights, turns: Turns, row: int, name: str) -> dict[str, tuple[np.ndarray, Report]]:
    """One modality alone against the fusion on turns that have only it (the fusion sees the same single token)."""
    fused, _, _ = weights.fuse_arrays(turns.probs, turns.confidence, turns.mask)
    alone = turns.probs[:, row]
    return {name: (alone, _report(alone, turns.labels)), "fused": (fused, _report(fused, turns.labels))}


def single_modality_test(
    weights: FusionWeights, turns: Turns, row: int, name: str
) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, Report]]]:
    """Scores of `name` alone vs fused, their label agreement and the calibration gap, on held-out turns."""
    arms = single_arms(weights, turns, row, name)
    summary: dict[str, Any] = {"n": len(turns)}
    for arm, (probs, report) in arms.items():
        summary[arm] = _scores(report, probs, turns.labels)
    summary["label_agreement"] = round(float((arms[name][0].argmax(1) == arms["fused"][0].argmax(1)).mean()), 4)
    gap = ece_gap(arms["fused"][0], arms[name][0], turns.labels)
    summary["fused_minus_single_ece"] = gap
    summary["fused_no_worse"] = gap["low"] <= 0.0
    return summary, arms


def meld_test(weights: FusionWeights) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, Report]]]:
    """MELD test with dialogue context (never used by the text head's or the fusion's training)."""
    return single_modality_test(weights, text_only("meld", "test"), TEXT, "text")


def fer_test(weights: FusionWeights) -> tuple[dict[str, Any], dict[str, tuple[np.ndarray, Report]]]:
    """FER2013 PublicTest (never used by the face model's or the fusion's training): face alone vs fused."""
    return single_modality_test(weights, face_only("test"), FACE, "face")


def ece_gap(fused: np.ndarray, single: np.ndarray, gold: np.ndarray, draws: int = 300) -> dict[str, float]:
    """ECE(fused) - ECE(single) on the same turns, with a 95 % bootstrap interval over turns (seeded)."""
    rng = np.random.default_rng(0)
    gaps = []
    for _ in range(draws):
        i = rng.integers(0, len(gold), len(gold))
        gaps.append(expected_calibration_error(fused[i], gold[i]) - expected_calibration_error(single[i], gold[i]))
    point = expected_calibration_error(fused, gold) - expected_calibration_error(single, gold)
    low, high = np.percentile(gaps, [2.5, 97.5])
    return {"gap": round(float(point), 4), "low": round(float(low), 4), "high": round(float(high), 4)}


def calibration_check(held: dict[str, HeldOut]) -> dict[str, Any]:
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
