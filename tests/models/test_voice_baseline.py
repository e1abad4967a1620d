"""The per-caller baseline: a running mean of the calm turns, read before each turn is offered to it, never
serialised; the head's mask."""

from __future__ import annotations

import copy
import json
import pickle
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from numpy.typing import NDArray

from connectors.speech.recognizer import Hearing
from models.audio import AudioError
from models.emotion import EmotionEstimate, Modality
from models.voice import STATS_DIM, CallerBaseline, CalmGate, VoiceHead, held_out_speakers, pooled_stats


def stats(seed: int) -> NDArray[Any]:
    return np.random.default_rng(seed).normal(size=STATS_DIM).astype(np.float32)


def test_a_turn_is_read_against_the_turns_before_it_then_joins_them() -> None:
    baseline = CallerBaseline()
    assert baseline.turns == 0 and baseline.mean() is None
    assert baseline.read_then_add(stats(1)) is None  # the first turn has no baseline
    second = baseline.read_then_add(stats(2))
    assert second is not None and np.allclose(second, stats(1))
    baseline.add(stats(3))
    mean = baseline.mean()
    assert baseline.turns == 3 and mean is not None
    assert np.allclose(mean, (stats(1) + stats(2) + stats(3)) / 3, atol=1e-6)


@pytest.mark.parametrize("bad", [np.zeros(10), np.full(STATS_DIM, np.nan), np.zeros((2, STATS_DIM))])
def test_bad_statistics_are_refused_and_change_nothing(bad: NDArray[Any]) -> None:
    baseline = CallerBaseline()
    with pytest.raises(AudioError, match="baseline statistics"):
        baseline.add(bad)
    assert baseline.turns == 0


def test_the_baseline_is_never_serialised_copied_or_shown() -> None:
    baseline = CallerBaseline()
    baseline.add(stats(1))
    for serialise in (pickle.dumps, copy.deepcopy, copy.copy):
        with pytest.raises(TypeError, match="in memory for one call"):
            serialise(baseline)
    with pytest.raises(TypeError):
        json.dumps(baseline)
    assert repr(baseline) == "CallerBaseline(turns=1)"
    assert not hasattr(baseline, "__dict__")  # nothing but its slots to leak


def reading(**probs: float) -> EmotionEstimate:
    return EmotionEstimate.from_probs(Modality.VOICE, probs, confidence=0.8)


CALM, ANGRY = reading(neutral=0.9, happy=0.1), reading(angry=0.8, neutral=0.2)


def test_a_hearing_keeps_its_statistics_out_of_its_repr_and_offers_them_once_kept() -> None:
    heard = Hearing("four five six", None, 0.01, 10.0, 10.0, stats(4), CALM)
    assert "stats" not in repr(heard) and "array" not in repr(heard)
    baseline = CallerBaseline()
    assert heard.keep_in(baseline) and baseline.turns == 1
    assert not Hearing("", None, 0.9, 1.0, 1.0).keep_in(baseline)  # no emotion ran: nothing to add
    assert not Hearing("no", None, 0.1, 1.0, 1.0, stats(5)).keep_in(baseline)  # no reading: not known to be calm
    assert not Hearing("I'm furious", ANGRY, 0.01, 1.0, 1.0, stats(6), ANGRY).keep_in(baseline)
    assert (baseline.turns, baseline.passed_over) == (1, 2)


def test_the_baseline_learns_only_turns_whose_absolute_reading_is_calm() -> None:
    gate = CalmGate()
    assert gate.admits(CALM) and gate.admits(reading(neutral=0.5, surprised=0.4, happy=0.1))
    assert not gate.admits(ANGRY)
    assert not gate.admits(reading(neutral=0.7, angry=0.3))  # mostly neutral, but too much anger in it
    assert not gate.admits(reading(happy=0.9, neutral=0.1))  # a departure too, if not a negative one
    baseline = CallerBaseline()
    assert baseline.read_then_learn(stats(1), ANGRY) == (None, False)
    assert baseline.learn(stats(2), None) is False
    assert baseline.mean() is None and (baseline.turns, baseline.passed_over) == (0, 2)
    assert baseline.learn(stats(3), CALM) and baseline.turns == 1
    before, joined = baseline.read_then_learn(stats(4), CALM)
    assert joined and before is not None and np.allclose(before, stats(3), atol=1e-6)
    with pytest.raises(AudioError, match="baseline statistics"):  # bad statistics fail whatever the reading
        baseline.learn(np.full(STATS_DIM, np.nan, np.float32), ANGRY)
    strict = CallerBaseline(CalmGate(min_calm=0.95))
    assert not strict.learn(stats(1), CALM) and strict.turns == 0


def test_without_a_baseline_the_head_ignores_whatever_is_in_the_baseline_slot() -> None:
    head = VoiceHead(hidden=16, embedding=8, components=4).eval()
    x = torch.from_numpy(np.stack([stats(1), stats(2)]))
    none = torch.zeros(2)
    a, _ = head(x, torch.from_numpy(np.stack([stats(3), stats(4)])), none)
    b, _ = head(x, torch.zeros(2, STATS_DIM), none)
    assert torch.allclose(a, b)
    with_baseline, _ = head(x, torch.zeros(2, STATS_DIM), torch.ones(2))
    assert not torch.allclose(a, with_baseline)


def test_distance_is_small_on_the_training_distribution_and_large_off_it() -> None:
    rng = np.random.default_rng(0)
    train = rng.normal(size=(400, STATS_DIM)).astype(np.float32) * rng.uniform(0.5, 2.0, STATS_DIM).astype(np.float32)
    head = VoiceHead(hidden=16, embedding=8, components=8)
    head.fit_distribution(train)
    near = head.distance(torch.from_numpy(train[:50])).numpy()
    far = head.distance(torch.from_numpy(train[:50] * 4.0)).numpy()
    assert 0.7 < near.mean() < 1.3 and far.mean() > 3 * near.mean() and far.min() > near.mean()
    head.familiar.copy_(torch.tensor([1.5, 0.5]))
    familiarity = head.familiarity(torch.tensor([1.0, 1.5, 2.0, 2.5])).numpy()
    assert np.allclose(familiarity, [1.0, 1.0, 0.5, 0.25])


def test_pooled_statistics_ignore_the_level_of_each_block() -> None:
    states = np.random.default_rng(1).normal(size=(60, STATS_DIM // 2)).astype(np.float32)
    louder = states * 3.0 + 1.0
    assert pooled_stats(states).shape == (STATS_DIM,)
    assert np.allclose(pooled_stats(states), pooled_stats(louder), atol=1e-4)


def test_held_out_speakers_need_a_head_that_names_them(tmp_path: Path) -> None:
    (tmp_path / "head.json").write_text(json.dumps({"labels": []}))
    with pytest.raises(ValueError, match="names no held-out speakers"):
        held_out_speakers(tmp_path / "head.pt")
