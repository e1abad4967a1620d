"""The LoRA fine-tune's loop: any device, a time budget that shortens the schedule, a start that need not compete."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pytest
import torch

from models.text import TextEmotionNet, adapted_net, encoder_path, load_tokenizer, trained_delta
from training import data
from training.recipes.text.train import TARGETS, Split, fitted_total, train

SAMPLES = [
    data.TextSample("I'd like to check my balance, please.", "neutral", "d-1", 0),
    data.TextSample("This is the third time you've cut me off!", "angry", "d-1", 1),
    data.TextSample("Thank you so much, that's wonderful.", "happy", "d-2", 0),
    data.TextSample("I'm really worried my account was hacked.", "fearful", "d-2", 1),
    data.TextSample("My dog died last week and I can't cope.", "sad", "d-3", 0),
    data.TextSample("Wait, you're closing the branch?", "surprised", "d-3", 1),
    data.TextSample("That smell in the store was revolting.", "disgusted", "d-4", 0),
    data.TextSample("Can you move my appointment to Friday?", "neutral", "d-4", 1),
]


def args(**overrides: object) -> argparse.Namespace:
    base = dict(
        seed=13, lr=5e-4, head_lr=2e-3, class_weight_power=0.5, batch_size=4, epochs=2, max_steps=0,
        eval_every=0.5, init=None, encoder_only=False, start_competes=True, context_dropout=0.3, max_minutes=0.0,
    )  # fmt: skip
    return argparse.Namespace(**{**base, **overrides})


@pytest.fixture(scope="module")
def splits() -> tuple[Split, dict[str, Split]]:
    tokenizer = load_tokenizer()
    split = Split(tokenizer, SAMPLES, 2, 32)
    return split, {"meld_dev": split}


def net() -> TextEmotionNet:
    torch.manual_seed(0)
    return adapted_net({"targets": list(TARGETS), "rank": 2, "alpha": 4.0, "dropout": 0.0}, 16)


def test_the_schedule_runs_every_planned_step_and_keeps_the_best_scored_state(
    splits: tuple[Split, dict[str, Split]],
) -> None:
    train_split, dev = splits
    model = net()
    before = {k: v.clone() for k, v in trained_delta(model).items()}
    best = train(model, load_tokenizer(), train_split, dev, args())
    assert best["steps_run"] == 4  # 8 samples / 4 per batch x 2 epochs
    assert best["step"] in (1, 2, 3, 4) and 0.0 <= best["score"] <= 1.0
    after = trained_delta(model)
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(torch.equal(after[k], best["delta"][k]) for k in after)  # the net holds the kept state


def test_a_time_budget_ends_training_early_and_still_scores_the_last_state(
    splits: tuple[Split, dict[str, Split]],
) -> None:
    train_split, dev = splits
    best = train(net(), load_tokenizer(), train_split, dev, args(epochs=50, max_minutes=1e-6))
    assert best["steps_run"] == 1 and best["step"] == 1  # past the deadline after one step: scored, then stopped


def test_the_schedule_is_shortened_to_what_fits_before_the_deadline() -> None:
    started = time.monotonic() - 10.0  # 100 steps took 10 s: 10 steps/s
    assert fitted_total(100, started, time.monotonic() + 20.0, 10_000) in range(260, 272)  # 100 + 0.85 x 200
    assert fitted_total(100, started, time.monotonic() + 3600.0, 1_000) == 1_000  # time enough: unchanged
    assert fitted_total(100, started, time.monotonic() - 5.0, 1_000) == 100  # already late: stop here
    # Timed from a warm step: 50 steps in 10 s is 5 steps/s, whatever the slow first steps took.
    assert fitted_total(100, started, time.monotonic() + 20.0, 10_000, since_step=50) in range(180, 187)


def test_the_encoder_can_come_from_a_directory_named_by_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    packaged = encoder_path()
    monkeypatch.setenv("TONELINE_TEXT_ENCODER", str(packaged))
    assert encoder_path() == packaged
    monkeypatch.setenv("TONELINE_TEXT_ENCODER", str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no config.json"):
        encoder_path()
