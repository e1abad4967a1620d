"""Classification metrics and the report every evaluation prints."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support

from models.emotion import LABELS


@dataclass(frozen=True)
class Report:
    """Scores of predictions against gold labels over the canonical label set."""

    n: int
    accuracy: float
    macro_f1: float
    weighted_f1: float
    per_class: dict[str, dict[str, float]]
    confusion: NDArray[np.float32]
    labels: tuple[str, ...]

    def headline(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "accuracy": round(self.accuracy, 4),
            "macro_f1": round(self.macro_f1, 4),
            "weighted_f1": round(self.weighted_f1, 4),
        }

    def render(self) -> str:
        """Per-class precision/recall/F1/support, then the confusion matrix (rows: gold)."""
        width = max(len(name) for name in self.labels) + 2
        lines = [f"{'label':<{width}}precision  recall  f1      support"]
        for name in self.labels:
            c = self.per_class[name]
            lines.append(f"{name:<{width}}{c['precision']:<11.3f}{c['recall']:<8.3f}{c['f1']:<8.3f}{int(c['support'])}")
        lines.append("")
        lines.append(
            f"accuracy {self.accuracy:.4f}  macro-F1 {self.macro_f1:.4f}  "
            f"weighted-F1 {self.weighted_f1:.4f}  n={self.n}"
        )
        lines.append("")
        lines.append("confusion matrix (rows = gold, columns = predicted)")
        short = [name[:5] for name in self.labels]
        lines.append(" " * width + "".join(f"{s:>7}" for s in short))
        for name, row in zip(self.labels, self.confusion):
            lines.append(f"{name:<{width}}" + "".join(f"{int(v):>7}" for v in row))
        return "\n".join(lines)


def evaluate(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str] = LABELS) -> Report:
    """Score label predictions; classes absent from gold still appear with support 0."""
    labels = tuple(labels)
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    if not gold:
        raise ValueError("nothing to evaluate: no samples with a usable label")
    p, r, f, s = precision_recall_fscore_support(gold, predicted, labels=list(labels), zero_division=0)
    present = [lab for lab in labels if lab in set(gold)]
    return Report(
        n=len(gold),
        accuracy=float(accuracy_score(gold, predicted)),
        # Macro-F1 over the classes the gold data has, so a corpus without
        # "disgusted" is not scored on a class it cannot contain.
        macro_f1=float(f1_score(gold, predicted, labels=present, average="macro", zero_division=0)),
        weighted_f1=float(f1_score(gold, predicted, labels=present, average="weighted", zero_division=0)),
        per_class={
            lab: {"precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": float(s[i])}
            for i, lab in enumerate(labels)
        },
        confusion=confusion_matrix(gold, predicted, labels=list(labels)),
        labels=labels,
    )


def confusion_f1(cm: NDArray[Any]) -> tuple[NDArray[Any], NDArray[Any], NDArray[Any]]:
    """Per-class recall (NaN where a class has no gold rows), F1 and gold counts of a confusion matrix (rows: gold).

    The fast path for scoring many candidates or resamples without sklearn; same numbers as `evaluate`.
    """
    k = len(cm)
    tp, gold, said = np.diag(cm), cm.sum(1), cm.sum(0)
    p = np.divide(tp, said, out=np.zeros(k), where=said > 0)
    r = np.divide(tp, gold, out=np.full(k, np.nan), where=gold > 0)
    f1 = np.divide(2 * p * r, p + r, out=np.zeros(k), where=(gold > 0) & (p + r > 0))
    return r, f1, gold


def bootstrap_interval(
    gold: Sequence[str],
    predicted: Sequence[str],
    groups: Sequence[str | None] | None = None,
    labels: Sequence[str] = LABELS,
    resamples: int = 1000,
    seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """95 % intervals of macro-F1 and of each class's recall, resampling whole groups (dialogues) with replacement.

    Turns of one dialogue are not independent (same speakers, same topic), so the
    resampled unit is the group; rows without a group are their own. Macro-F1 is
    over the classes present in each resample, as `evaluate` scores it. On a split
    whose rare classes have a handful of turns, the interval says how much of a
    difference between two models is the luck of those turns.
    """
    k = len(labels)
    index = {lab: i for i, lab in enumerate(labels)}
    cells = np.array([index[g] * k + index[p] for g, p in zip(gold, predicted)])
    names = [g if g is not None else f"row-{i}" for i, g in enumerate(groups or [None] * len(cells))]
    unique = {name: n for n, name in enumerate(dict.fromkeys(names))}
    of_row = np.array([unique[name] for name in names])
    # One confusion matrix per group; a resample is a sum of groups' matrices.
    per_group = np.zeros((len(unique), k * k))
    np.add.at(per_group, (of_row, cells), 1)
    rng = np.random.default_rng(seed)
    macro, recall = [], []
    for _ in range(resamples):
        counts = np.bincount(rng.integers(0, len(unique), len(unique)), minlength=len(unique))
        r, f1, gold_n = confusion_f1((counts @ per_group).reshape(k, k))
        macro.append(f1[gold_n > 0].mean())
        recall.append(r)
    out = {"macro_f1": _interval(np.array(macro))}
    table = np.array(recall)
    for i, lab in enumerate(labels):
        seen = table[:, i][~np.isnan(table[:, i])]
        if len(seen):
            out[f"recall_{lab}"] = _interval(seen)
    return out


def _interval(values: NDArray[np.float64]) -> tuple[float, float]:
    lo, hi = np.percentile(values, [2.5, 97.5])
    return round(float(lo), 4), round(float(hi), 4)


def expected_calibration_error(probs: NDArray[np.float32], gold_idx: NDArray[np.float32], bins: int = 15) -> float:
    """ECE of the top-class confidence, equal-width bins."""
    return confidence_calibration_error(probs.max(axis=1), probs.argmax(axis=1) == gold_idx, bins)


def confidence_calibration_error(
    confidence: NDArray[np.float32], correct: NDArray[np.float32], bins: int = 15
) -> float:
    """ECE of any reported confidence against whether the reading was right, equal-width bins."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        in_bin = (confidence > lo) & (confidence <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(confidence[in_bin].mean() - correct[in_bin].mean())
    return float(ece)


def json_line(report: Report, **extra: object) -> str:
    return json.dumps({**report.headline(), **extra})
