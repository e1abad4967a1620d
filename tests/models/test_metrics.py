import numpy as np
import pytest

from models.metrics import confidence_calibration_error, expected_calibration_error


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
