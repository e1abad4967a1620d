"""The caller baseline: how one caller sounds when calm in this call, and which turns may teach it (`CalmGate`).

Emotion is a departure from how this caller sounds when calm, so each call keeps a `CallerBaseline` (the running
mean of the `pooled_stats` of its earlier turns that read calm on their own, in memory only). A first turn, or
a caller who has not sounded calm yet, has no baseline and is read as a first turn.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.audio import AudioError
from models.emotion import FAMILIES, LABELS, EmotionEstimate
from models.voice.stats import STATS_DIM


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
