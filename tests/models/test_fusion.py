"""Fusion: the trained masked attention (shipped) and the hand-set fallback, on any subset of modalities."""

import json
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.emotion import LABELS, MODALITIES, EmotionEstimate, InvalidEstimate, Modality
from models.fusion import DEFAULT_FUSION, AttentionFusion, Fuser, TrainedFusion, load_fusion

TRAINED = TrainedFusion.load()


def est(modality: str, **probs: float) -> EmotionEstimate:
    return EmotionEstimate.from_probs(modality, probs)


@pytest.fixture(params=["trained", "hand-set"])
def fusion(request: pytest.FixtureRequest) -> Fuser:
    return TRAINED if request.param == "trained" else AttentionFusion()


def test_shipped_weights_are_small_and_carry_their_provenance() -> None:
    assert DEFAULT_FUSION.stat().st_size < 50_000
    info = json.loads(DEFAULT_FUSION.with_suffix(".json").read_text())
    assert info["labels"] == list(LABELS) and info["modalities"] == [m.value for m in MODALITIES]
    assert "RAVDESS" in info["data"] and "MELD" in info["data"]
    assert info["synthetic_pairs"] is False  # the shipped fusion is fitted on real turns only
    assert 0.2 < info["temperature"] < 5.0


def test_load_fusion_is_the_trained_one_and_falls_back_without_weights(tmp_path: Path) -> None:
    assert isinstance(load_fusion(), TrainedFusion)
    assert load_fusion() is load_fusion()  # once per process
    assert isinstance(load_fusion(str(tmp_path / "missing.pt")), AttentionFusion)


def test_a_single_modality_keeps_its_label_and_gets_all_the_weight(fusion: Fuser) -> None:
    text = est("text", neutral=0.6, happy=0.4)
    turn = fusion.fuse([text])
    assert turn.weights == {"text": 1.0}
    assert turn.label == text.label


def test_missing_modalities_are_masked_not_zero_filled(fusion: Fuser) -> None:
    turn = fusion.fuse([est("text", sad=0.8, neutral=0.2), est("face", sad=0.5, neutral=0.5)])
    assert set(turn.weights) == {"text", "face"}
    assert math.isclose(sum(turn.weights.values()), 1.0)


def test_the_trained_fused_distribution_is_the_attention_weighted_mixture() -> None:
    # Interpretability: "voice 0.8" must mean 80 % of the mass comes from the voice estimate.
    parts = [est("text", neutral=0.7, happy=0.3), est("voice", angry=0.6, neutral=0.2, sad=0.2)]
    turn = TRAINED.fuse(parts)
    mixture = sum(turn.weights[e.modality.value] * np.asarray(e.probs) for e in parts)
    tempered = np.asarray(mixture) ** (1.0 / TRAINED.weights.temperature)
    assert np.allclose(turn.probs, tempered / tempered.sum(), atol=1e-9)
    assert turn.confidence == pytest.approx(max(turn.probs))


def test_the_trained_fusion_trusts_the_voice_over_the_words_when_both_speak() -> None:
    # What RAVDESS taught it: the same kind of neutral-sounding words, the emotion in the voice.
    turn = TRAINED.fuse([est("text", neutral=0.6, happy=0.2, sad=0.2), est("voice", angry=0.7, neutral=0.3)])
    assert turn.weights["voice"] > 0.7 > turn.weights["text"]
    assert turn.label == "angry"


def test_a_face_token_without_a_trained_embedding_still_fuses_sanely() -> None:
    face = est("face", surprised=0.9, neutral=0.1)
    alone = TRAINED.fuse([face])
    assert alone.label == "surprised" and alone.weights == {"face": 1.0}
    agree = TRAINED.fuse([est("text", happy=0.8, neutral=0.2), est("face", happy=0.9, neutral=0.1)])
    assert agree.label == "happy" and 0.0 < agree.weights["face"] < 1.0
    three = TRAINED.fuse([est("text", neutral=1.0), est("voice", angry=0.8, sad=0.2), face])
    # Its prior is the least trusted trained stream's: it never takes the turn from a confident voice.
    assert three.weights["voice"] > three.weights["face"] and three.label == "angry"


def test_each_modality_removed_in_turn_never_crashes_or_gives_nan(fusion: Fuser) -> None:
    full = [est("text", happy=0.9, neutral=0.1), est("voice", angry=1.0), est("face", sad=0.5, fearful=0.5)]
    for drop in range(3):
        turn = fusion.fuse([e for i, e in enumerate(full) if i != drop])
        assert set(turn.weights) == {e.modality.value for i, e in enumerate(full) if i != drop}
        assert np.all(np.isfinite(turn.probs)) and math.isfinite(turn.valence) and math.isfinite(turn.arousal)


def test_no_estimates_is_an_error(fusion: Fuser) -> None:
    with pytest.raises(InvalidEstimate):
        fusion.fuse([])


def test_batch_and_per_turn_fusion_agree() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(len(LABELS)) * 0.3, size=(50, 3))
    mask = rng.random((50, 3)) < 0.6
    mask[~mask.any(axis=1), 0] = True
    fused, _, weights = TRAINED.weights.fuse_arrays(probs, probs.max(axis=-1), mask)
    for i in range(50):
        turn = TRAINED.fuse(
            [EmotionEstimate.from_probs(m, probs[i, j]) for j, m in enumerate(MODALITIES) if mask[i, j]]
        )
        assert np.allclose(turn.probs, fused[i], atol=1e-6)
        assert all(
            math.isclose(turn.weights[m.value], weights[i, j], abs_tol=1e-9)
            for j, m in enumerate(MODALITIES)
            if mask[i, j]
        )
        assert np.all(weights[i, ~mask[i]] == 0.0)


dist = st.lists(st.floats(0, 1, allow_nan=False), min_size=7, max_size=7).filter(lambda p: sum(p) > 1e-3)
estimate = st.tuples(dist, st.none() | st.floats(0, 1, allow_nan=False))


@given(st.dictionaries(st.sampled_from(["text", "voice", "face"]), estimate, min_size=1), st.booleans())
def test_any_subset_of_valid_estimates_fuses_to_a_valid_distribution(
    parts: dict[str, tuple[list[float], float | None]], trained: bool
) -> None:
    fusion: Fuser = TRAINED if trained else AttentionFusion()
    turn = fusion.fuse([EmotionEstimate.from_probs(m, p, confidence=c) for m, (p, c) in parts.items()])
    assert set(turn.weights) == set(parts)  # absent modalities are absent, not zero
    assert all(np.isfinite(turn.probs)) and math.isclose(sum(turn.probs), 1.0, abs_tol=1e-9)
    assert all(0.0 <= w <= 1.0 for w in turn.weights.values())
    assert math.isclose(sum(turn.weights.values()), 1.0, abs_tol=1e-9)
    assert turn.label in LABELS and 0.0 <= turn.effective_confidence <= 1.0
    assert math.isfinite(turn.valence) and math.isfinite(turn.arousal)
    assert [e.modality for e in turn.estimates] == [m for m in MODALITIES if m.value in parts]


@given(st.sampled_from(list(Modality)), st.sampled_from(LABELS))
def test_a_one_hot_estimate_alone_keeps_its_label(modality: Modality, label: str) -> None:
    turn = TRAINED.fuse([EmotionEstimate.from_probs(modality, {label: 1.0})])
    assert turn.label == label and turn.weights == {modality.value: 1.0}
