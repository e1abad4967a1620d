import numpy as np
import pytest

from training.metrics import bootstrap_interval, confidence_calibration_error, evaluate, expected_calibration_error


def test_calibration_error_is_the_gap_between_confidence_and_accuracy() -> None:
    confidence = np.array([0.9, 0.9, 0.9, 0.9, 0.3, 0.3])
    correct = np.array([True, True, False, False, False, False])
    # Bin 0.9: 4/6 of turns, gap |0.9 - 0.5| = 0.4; bin 0.3: 2/6, gap |0.3 - 0| = 0.3.
    assert confidence_calibration_error(confidence, correct, bins=10) == pytest.approx(4 / 6 * 0.4 + 2 / 6 * 0.3)
    assert confidence_calibration_error(np.array([0.75] * 4), np.array([True, True, True, False])) == 0.0


def test_top_label_calibration_reads_the_top_probability() -> None:
    probs = np.array([[0.8, 0.2], [0.8, 0.2], [0.4, 0.6]])
    gold = np.array([0, 1, 1])
    assert expected_calibration_error(probs, gold, bins=10) == pytest.approx(2 / 3 * 0.3 + 1 / 3 * 0.4)


def test_bootstrap_interval_holds_the_point_estimate_and_counts_a_dialogue_as_one_piece_of_evidence() -> None:
    rng = np.random.default_rng(1)
    labels = ("neutral", "happy", "sad")
    gold = list(rng.choice(labels, 600, p=[0.7, 0.2, 0.1]))
    # Errors come by dialogue (a model that misreads one speaker misreads all their turns).
    wrong_dialogue = rng.random(20) < 0.3
    pred = [
        str(rng.choice([x for x in labels if x != g])) if wrong_dialogue[i // 30] else g for i, g in enumerate(gold)
    ]
    point = evaluate(gold, pred, labels).macro_f1
    by_dialogue = bootstrap_interval(gold, pred, [f"d{i // 30}" for i in range(600)], labels, resamples=400)
    by_row = bootstrap_interval(gold, pred, None, labels, resamples=400)
    assert by_dialogue["macro_f1"][0] < point < by_dialogue["macro_f1"][1]

    def width(iv: tuple[float, float]) -> float:
        return iv[1] - iv[0]

    assert width(by_dialogue["macro_f1"]) > 2 * width(by_row["macro_f1"]), "20 dialogues are not 600 turns"
    assert set(by_dialogue) == {"macro_f1", "recall_neutral", "recall_happy", "recall_sad"}


def test_bootstrap_interval_of_perfect_predictions_is_a_point_and_rows_without_a_group_stand_alone() -> None:
    gold = ["neutral", "sad"] * 20
    assert bootstrap_interval(gold, gold, None, ("neutral", "sad"), resamples=50)["macro_f1"] == (1.0, 1.0)
