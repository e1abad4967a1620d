"""The issue-18 head refit's pieces: the DailyDialog split by dialogue, the prior offset, the family reading."""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from models.emotion import LABELS
from models.text import EmotionHead
from tests.conftest import shared_data
from training.metrics import evaluate
from training.recipes.text.head import (
    SELECTION,
    SPLIT_SHARES,
    best_offset,
    dailydialog_folds,
    dailydialog_split,
    family_read,
    fast_scores,
    folded,
    logits_with,
    mix,
    objective,
    train_head,
    trained,
    with_offset,
)


def test_dailydialog_split_is_by_dialogue_seeded_and_complete() -> None:
    shared_data("text", "dailydialog", "validation")
    parts = dailydialog_split()
    dialogues = {name: {s.dialogue_id for s in samples} for name, samples in parts.items()}
    # No dialogue (so no turn's context) is in two parts; every turn is in one.
    assert not (dialogues["train"] & dialogues["selection"]) and not (dialogues["train"] & dialogues["test"])
    assert not (dialogues["selection"] & dialogues["test"])
    n_dialogues = sum(len(d) for d in dialogues.values())
    for name, share in SPLIT_SHARES.items():
        assert abs(len(dialogues[name]) / n_dialogues - share) < 0.01
    again = dailydialog_split()
    assert [s.text for s in again["test"]] == [s.text for s in parts["test"]]
    assert [s.text for s in dailydialog_split(seed=19)["test"]] != [s.text for s in parts["test"]]


def test_offset_folds_into_the_heads_last_bias() -> None:
    torch.manual_seed(0)
    state = EmotionHead().state_dict()
    x = np.random.default_rng(0).normal(size=(5, 384)).astype(np.float32)
    offset = np.zeros(len(LABELS), dtype=np.float32)
    offset[0] = 0.5
    np.testing.assert_allclose(logits_with(with_offset(state, offset), x), logits_with(state, x, offset), atol=1e-5)
    assert not torch.equal(with_offset(state, offset)["net.4.bias"], state["net.4.bias"])  # a copy, changed


def test_family_is_the_family_with_the_most_probability() -> None:
    # happy 0.4 alone against sad 0.3 + angry 0.3: negative holds more.
    probs = np.array([[0.0, 0.4, 0.3, 0.3, 0.0, 0.0, 0.0], [0.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.5]])
    assert family_read(probs) == ["negative", "neutral"]


def test_heads_from_several_seeds_fold_into_one_head_with_their_mean_logits() -> None:
    x = np.random.default_rng(1).normal(size=(9, 384)).astype(np.float32)
    states = []
    for seed in range(3):
        torch.manual_seed(seed)
        states.append(EmotionHead().state_dict())
    mean = np.mean([logits_with(s, x) for s in states], axis=0)
    one = folded(states)
    assert one["net.1.weight"].shape == (3 * 256, 384)
    np.testing.assert_allclose(logits_with(one, x), mean, atol=1e-5)
    assert folded(states[:1]) is states[0]


def test_fast_scores_agree_with_the_reports() -> None:
    rng = np.random.default_rng(2)
    feats, logits = {}, {}
    for name in SELECTION:
        y = rng.choice(len(LABELS), size=400, p=[0.6, 0.15, 0.08, 0.07, 0.02, 0.0, 0.08])
        feats[name] = {"y": y}
        logits[name] = (
            rng.normal(size=(400, len(LABELS))) + 2.0 * np.eye(len(LABELS))[y] * (rng.random(400) < 0.5)[:, None]
        )
    feats["contact_centre"] = {"y": np.zeros(48, dtype=int)}
    logits["contact_centre"] = rng.normal(size=(48, len(LABELS)))
    fast = fast_scores(logits, feats, 1.0, ["neutral"] * 48)
    for name in SELECTION:
        report = evaluate([LABELS[i] for i in feats[name]["y"]], [LABELS[i] for i in logits[name].argmax(1)])
        assert abs(fast[name]["macro_f1"] - report.macro_f1) < 1e-9  # disgusted absent: not scored, as there
        assert abs(fast[name]["weighted_f1"] - report.weighted_f1) < 1e-9
        assert abs(fast[name]["neutral_recall"] - report.per_class["neutral"]["recall"]) < 1e-9


def test_dailydialog_folds_pool_train_and_selection_and_keep_each_dialogue_in_one_fold() -> None:
    shared_data("text", "dailydialog", "validation")
    parts = dailydialog_split()
    pool, fold = dailydialog_folds(3)
    assert [s.text for s in pool] == [s.text for s in parts["train"] + parts["selection"]], "the features' order"
    folds_of: dict[str, set[int]] = {}
    for s, k in zip(pool, fold):
        folds_of.setdefault(str(s.dialogue_id), set()).add(int(k))
    assert all(len(ks) == 1 for ks in folds_of.values())
    sizes = np.bincount([next(iter(ks)) for ks in folds_of.values()])
    assert len(sizes) == 3 and sizes.max() - sizes.min() <= 1
    assert not {s.dialogue_id for s in pool} & {s.dialogue_id for s in parts["test"]}, "the held-out part stays out"


def test_fold_heads_score_each_pool_row_out_of_fold_and_ship_as_their_mean() -> None:
    rng = np.random.default_rng(3)

    def part(n: int) -> dict[str, NDArray[Any]]:
        return {"x": rng.normal(size=(n, 384)).astype(np.float32), "y": rng.integers(0, len(LABELS), n)}

    feats = {"meld_train": part(40), "goemotions_train": part(40), "dd_train": part(30), "dd_selection": part(30)}
    fold = np.arange(30) % 2
    args = argparse.Namespace(dd_folds=2, fold_of=fold, epochs=[2], seed=5, seeds=1)
    state, oof = trained(feats, 2, 0, 0.5, args)[2]
    assert oof is not None
    alone = [train_head(*mix(feats, 2, 0, fold != k), 0.5, [2], 5 + k)[2] for k in (0, 1)]
    for k in (0, 1):  # a row's logits come from the head that never trained on its fold
        np.testing.assert_allclose(oof[fold == k], logits_with(alone[k], feats["dd_selection"]["x"][fold == k]))
    x = feats["meld_train"]["x"]
    np.testing.assert_allclose(logits_with(state, x), np.mean([logits_with(a, x) for a in alone], 0), atol=1e-5)
    # Without folds the DailyDialog rows are the train part's, and no out-of-fold logits are made.
    assert trained(feats, 1, 0, 0.5, argparse.Namespace(dd_folds=1, epochs=[1], seed=5, seeds=1))[1][1] is None


def test_best_offset_raises_a_class_the_logits_under_say_and_leaves_a_calibrated_reading_alone() -> None:
    rng = np.random.default_rng(3)
    angry = LABELS.index("angry")
    feats, base = {}, {}
    for name in SELECTION:
        y = rng.integers(0, len(LABELS), size=700)
        logits = rng.normal(size=(700, len(LABELS))).astype(np.float32)
        logits[np.arange(700), y] += 2.5
        feats[name] = {"y": y}
        base[name] = logits
    # The contact-centre guard: 48 sentences read right by family, with a margin.
    families = ["negative", "neutral", "positive"] * 16
    of_family = {"negative": angry, "neutral": LABELS.index("neutral"), "positive": LABELS.index("happy")}
    guard = np.zeros((48, len(LABELS)), dtype=np.float32)
    guard[np.arange(48), [of_family[f] for f in families]] = 6.0
    base["contact_centre"] = guard
    constraints = argparse.Namespace(min_neutral_recall=0.0, min_meld=0.0)
    assert np.abs(best_offset(base, feats, 1.0, families, constraints)).max() <= 0.25  # sampling noise at most

    under = {n: v.copy() for n, v in base.items()}
    for name in SELECTION:
        under[name][:, angry] -= 3.0
    offset = best_offset(under, feats, 1.0, families, constraints)
    assert offset[angry] >= 2.0
    before = objective(fast_scores(under, feats, 1.0, families))
    after = objective(fast_scores({n: v + offset for n, v in under.items()}, feats, 1.0, families))
    assert after > before + 0.02
