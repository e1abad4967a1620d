import json
import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from models.emotion import (
    AROUSAL,
    FAMILIES,
    LABELS,
    VALENCE,
    EmotionEstimate,
    InvalidEstimate,
    Modality,
    TurnEmotion,
    canonical_label,
    family_of,
)


def test_label_set_is_the_canonical_seven() -> None:
    assert LABELS == ("neutral", "happy", "sad", "angry", "fearful", "disgusted", "surprised")
    assert set(VALENCE) == set(AROUSAL) == set(LABELS)
    assert all(-1 <= v <= 1 for v in VALENCE.values()) and all(0 <= a <= 1 for a in AROUSAL.values())


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("joy", "happy"),
        ("Anger", "angry"),
        ("sadness", "sad"),
        ("fear", "fearful"),
        ("disgust", "disgusted"),
        ("surprise", "surprised"),
        ("no emotion", "neutral"),
        ("calm", None),
        ("love", None),
    ],
)
def test_aliases_map_into_the_canonical_set_and_nothing_else(raw: str, expected: str | None) -> None:
    assert canonical_label(raw) == expected


def test_families_partition_the_labels_by_valence() -> None:
    members = [label for labels in FAMILIES.values() for label in labels]
    assert sorted(members) == sorted(LABELS)
    assert all(VALENCE[label] < 0 for label in FAMILIES["negative"])
    for label in LABELS:  # a sure estimate sits in its label's family
        family = next(f for f, labels in FAMILIES.items() if label in labels)
        assert family_of([float(name == label) for name in LABELS]) == family


def test_family_is_read_from_the_mass_not_the_top_label() -> None:
    # happy is the top label, but the negative labels together outweigh it: a polite complaint.
    polite_complaint = EmotionEstimate.from_probs("text", {"happy": 0.47, "angry": 0.3, "sad": 0.19, "neutral": 0.04})
    assert polite_complaint.label == "happy"
    assert polite_complaint.family == "negative"
    assert TurnEmotion(probs=polite_complaint.probs, weights={"text": 1.0}).to_dict()["family"] == "negative"
    # surprise counts with neutral: a reaction, not a mood.
    assert family_of([0.3, 0.35, 0.0, 0.0, 0.0, 0.0, 0.35]) == "neutral"


def test_valence_and_arousal_follow_the_distribution() -> None:
    angry = EmotionEstimate.from_probs("text", {"angry": 1.0})
    happy = EmotionEstimate.from_probs("text", {"happy": 1.0})
    assert angry.valence == pytest.approx(VALENCE["angry"]) and angry.arousal == pytest.approx(AROUSAL["angry"])
    assert happy.valence > 0 > angry.valence
    assert angry.label == "angry" and angry.confidence == 1.0


@pytest.mark.parametrize(
    "probs",
    [[0.5] * 6, [float("nan")] + [0.1] * 6, [-0.1] + [0.2] * 6, [0.0] * 7, {"furious": 1.0}, ["a"] * 7],
)
def test_invalid_probabilities_are_refused_with_a_reason(probs: object) -> None:
    with pytest.raises(InvalidEstimate) as info:
        EmotionEstimate.from_probs("voice", probs)  # type: ignore[arg-type]
    assert str(info.value)


def test_unknown_modality_and_bad_confidence_are_refused() -> None:
    with pytest.raises(InvalidEstimate, match="modality"):
        EmotionEstimate.from_probs("smell", [1 / 7] * 7)
    with pytest.raises(InvalidEstimate, match="confidence"):
        EmotionEstimate.from_probs("voice", [1 / 7] * 7, confidence=1.5)


probabilities = st.lists(st.floats(0, 1, allow_nan=False), min_size=7, max_size=7).filter(lambda p: sum(p) > 1e-6)


@given(probabilities, st.sampled_from(list(Modality)), st.one_of(st.none(), st.lists(st.floats(-5, 5), max_size=8)))
def test_estimate_round_trips_through_json(probs: list[float], modality: Modality, emb: list[float] | None) -> None:
    est = EmotionEstimate.from_probs(modality, probs, embedding=emb, start=0.5, end=1.25, model="m")
    back = EmotionEstimate.from_dict(json.loads(json.dumps(est.to_dict())))
    assert back.modality == est.modality and back.label == est.label
    assert np.allclose(back.probs, est.probs, atol=1e-5)
    assert math.isclose(sum(back.probs), 1.0, abs_tol=1e-9)
    assert (back.embedding is None) == (emb is None)


def test_turn_emotion_serialises_small_and_parses_back() -> None:
    text = EmotionEstimate.from_probs("text", {"neutral": 0.7, "happy": 0.3})
    voice = EmotionEstimate.from_probs("voice", {"angry": 0.9, "neutral": 0.1}, embedding=[0.1] * 256)
    turn = TurnEmotion(
        probs=tuple(0.5 * np.array(text.probs) + 0.5 * np.array(voice.probs)),
        weights={"text": 0.5, "voice": 0.5},
        estimates=(text, voice),
    )
    data = turn.to_dict()
    assert "embedding" not in json.dumps(data), "embeddings stay out of parse data and Redis"
    back = TurnEmotion.from_dict(json.loads(json.dumps(data)))
    assert back.label == turn.label and back.weights == {"text": 0.5, "voice": 0.5}
    assert [e.modality for e in back.estimates] == [Modality.TEXT, Modality.VOICE]
    with pytest.raises(InvalidEstimate):
        TurnEmotion.from_dict({"weights": {}})


def test_family_evidence_moves_mass_to_the_plain_label_and_keeps_named_emotions() -> None:
    from models.emotion import FAMILY_NAMES, LABEL_INDEX, family_masses, with_family_evidence

    probs = np.array([0.7, 0.1, 0.02, 0.06, 0.01, 0.01, 0.1])  # neutral 0.8, happy 0.1, negative 0.1
    sentiment = np.array([0.9, 0.08, 0.02])  # a complaint stated calmly: negative 0.9
    assert np.allclose(with_family_evidence(probs, sentiment, 0.0), probs)
    out = with_family_evidence(probs, sentiment, 0.5)
    assert np.isclose(out.sum(), 1.0)
    masses = dict(zip(FAMILY_NAMES, family_masses(out)))
    assert np.isclose(masses["negative"], 0.5 * 0.1 + 0.5 * 0.9)
    assert np.isclose(masses["positive"], 0.5 * 0.1 + 0.5 * 0.02)
    # What the negative family gained went to sad (disappointment), not to anger: the anger the
    # emotion head named stays as it named it, so a calm complaint is no outburst.
    assert np.isclose(out[LABEL_INDEX["angry"]], probs[LABEL_INDEX["angry"]])
    gained = masses["negative"] - 0.1
    assert np.isclose(out[LABEL_INDEX["sad"]], probs[LABEL_INDEX["sad"]] + gained)
    # A family that lost mass kept its labels' proportions (neutral : surprised as 0.7 : 0.1).
    assert np.isclose(out[LABEL_INDEX["neutral"]] / out[LABEL_INDEX["surprised"]], 7.0)


def test_family_evidence_reads_batches_row_by_row() -> None:
    from models.emotion import with_family_evidence

    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(7), size=5)
    families = rng.dirichlet(np.ones(3), size=5)
    batch = with_family_evidence(probs, families, 0.7)
    rows = np.stack([with_family_evidence(p, f, 0.7) for p, f in zip(probs, families)])
    assert np.allclose(batch, rows) and np.allclose(batch.sum(1), 1.0)
