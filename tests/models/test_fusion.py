import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.emotion import LABELS, EmotionEstimate, InvalidEstimate, Modality
from models.fusion import AttentionFusion


def est(modality: str, **probs: float) -> EmotionEstimate:
    return EmotionEstimate.from_probs(modality, probs)


def test_a_single_modality_is_fused_to_itself() -> None:
    text = est("text", neutral=0.6, happy=0.4)
    turn = AttentionFusion().fuse([text])
    assert turn.weights == {"text": 1.0}
    assert np.allclose(turn.probs, text.probs)


def test_missing_modalities_are_masked_not_zero_filled() -> None:
    # With zero-filling, a missing voice would still take attention mass and
    # dilute the text distribution; masked, the weights only cover what exists.
    turn = AttentionFusion().fuse([est("text", sad=0.8, neutral=0.2), est("face", sad=0.5, neutral=0.5)])
    assert set(turn.weights) == {"text", "face"}
    assert math.isclose(sum(turn.weights.values()), 1.0)


def test_a_confident_voice_outweighs_an_unsure_text() -> None:
    text = est("text", neutral=0.4, happy=0.3, sad=0.3)
    voice = est("voice", angry=0.95, neutral=0.05)
    turn = AttentionFusion().fuse([text, voice])
    assert turn.weights["voice"] > 0.7 > turn.weights["text"]
    assert turn.label == "angry"
    assert [e.modality for e in turn.estimates] == [Modality.TEXT, Modality.VOICE]


def test_no_estimates_is_an_error() -> None:
    with pytest.raises(InvalidEstimate):
        AttentionFusion().fuse([])


dist = st.lists(st.floats(0, 1, allow_nan=False), min_size=7, max_size=7).filter(lambda p: sum(p) > 1e-3)


@given(st.dictionaries(st.sampled_from(["text", "voice", "face"]), dist, min_size=1))
def test_any_subset_fuses_to_a_valid_distribution(parts: dict[str, list[float]]) -> None:
    turn = AttentionFusion().fuse([EmotionEstimate.from_probs(m, p) for m, p in parts.items()])
    assert set(turn.weights) == set(parts)
    assert all(np.isfinite(turn.probs)) and math.isclose(sum(turn.probs), 1.0, abs_tol=1e-9)
    assert math.isclose(sum(turn.weights.values()), 1.0, abs_tol=1e-9)
    assert turn.label in LABELS
