"""The fusion recipe's pieces: training twin, modality dropout, pairs, fitting on a toy problem."""

from __future__ import annotations

import numpy as np
import torch

from models.emotion import LABELS
from models.recipes.fusion.data import FACE, TEXT, VOICE, Turns, face_only, synthetic_pairs
from models.recipes.fusion.train import HPARAMS, FitData, FusionNet, fit, modality_dropout
from tests.conftest import shared_data


def toy_turns(n: int, seed: int) -> Turns:
    """Voice estimates that know the label, text estimates that say neutral whatever it is (as RAVDESS)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n)
    probs = np.zeros((n, 3, len(LABELS)))
    probs[:, VOICE] = rng.dirichlet(np.ones(len(LABELS)), n) * 0.4
    probs[np.arange(n), VOICE, labels] += 0.6
    probs[:, TEXT] = rng.dirichlet(np.ones(len(LABELS)), n) * 0.3
    probs[:, TEXT, 0] += 0.7
    mask = np.zeros((n, 3), dtype=bool)
    mask[:, [TEXT, VOICE]] = True
    return Turns(probs, probs.max(axis=-1), mask, labels, rng.integers(1, 21, n), "toy")


def test_training_twin_and_numpy_inference_agree() -> None:
    torch.manual_seed(0)
    net = FusionNet()
    net.set_face_prior()
    turns = toy_turns(20, 0)
    turns.mask[::3, VOICE] = False
    mixture, weights = net(
        torch.from_numpy(turns.features).float(), torch.from_numpy(turns.probs).float(), torch.from_numpy(turns.mask)
    )
    _, np_mixture, np_weights = net.export(1.0).fuse_arrays(turns.probs, turns.confidence, turns.mask)
    assert np.allclose(mixture.detach().numpy(), np_mixture, atol=1e-5)
    assert np.allclose(weights.detach().numpy(), np_weights, atol=1e-5)


def test_fit_learns_to_trust_the_informative_modality() -> None:
    weights = fit(FitData(toy_turns(400, 1), []), {**HPARAMS, "steps": 150})
    held = toy_turns(200, 2)
    fused, _, attention = weights.fuse_arrays(held.probs, held.confidence, held.mask)
    assert attention[:, VOICE].mean() > 0.8
    assert (fused.argmax(1) == held.labels).mean() >= (held.probs[:, VOICE].argmax(1) == held.labels).mean() - 0.01
    assert weights.bias[FACE] == min(weights.bias[TEXT], weights.bias[VOICE])  # face keeps its prior
    assert (weights.slope >= 0).all() and (weights.slope[FACE] <= weights.slope[[TEXT, VOICE]].max(axis=0)).all()


def test_modality_dropout_never_removes_the_last_modality() -> None:
    turns = toy_turns(300, 3)
    dropped = modality_dropout(turns, 0.5, seed=0)
    assert dropped.mask.any(axis=1).all()
    assert 0.35 < (dropped.mask.sum(axis=1) == 1).mean() < 0.65


def test_synthetic_pairs_join_same_label_turns() -> None:
    voice = toy_turns(50, 4)
    text = toy_turns(200, 5)
    pairs = synthetic_pairs(voice, text, seed=0)
    assert np.array_equal(pairs.labels, voice.labels)
    for i in range(len(pairs)):
        assert any(
            np.array_equal(pairs.probs[i, TEXT], text.probs[j, TEXT])
            for j in np.flatnonzero(text.labels == pairs.labels[i])
        )


def test_face_only_turns_take_part_in_the_temperature() -> None:
    # Overconfident face estimates (0.95 on a label that is right 60 % of the time) pull the shared
    # temperature above what the voice turns alone ask for.
    rng = np.random.default_rng(6)
    n = 600
    labels = rng.integers(0, len(LABELS), n)
    said = np.where(rng.random(n) < 0.6, labels, (labels + 1) % len(LABELS))
    probs = np.full((n, 3, len(LABELS)), 0.0)
    probs[:, FACE] = 0.05 / (len(LABELS) - 1)
    probs[np.arange(n), FACE, said] = 0.95
    mask = np.zeros((n, 3), dtype=bool)
    mask[:, FACE] = True
    face = Turns(probs, probs.max(axis=-1), mask, labels, np.zeros(n, dtype=int), "toy faces")
    voice = toy_turns(400, 1)
    without = fit(FitData(voice, []), {**HPARAMS, "steps": 50}).temperature
    with_faces = fit(FitData(voice, [], [face]), {**HPARAMS, "steps": 50}).temperature
    assert with_faces > without + 0.2


def test_face_only_turns_are_the_face_models_estimates_on_faces_it_held_out() -> None:
    shared_data("faces", "fer2013")
    from models.face import FaceEmotionModel
    from models.recipes.face.train import load_fer

    selection = face_only("selection")
    # 10 % of Training, stratified: the faces the shipped face model held out for selection (0.63 there).
    assert len(selection) == 2874 and selection.mask[:, FACE].all() and not selection.mask[:, [TEXT, VOICE]].any()
    assert 0.58 < (selection.probs[:, FACE].argmax(1) == selection.labels).mean() < 0.70
    test = face_only("test")
    faces, labels = load_fer("PublicTest")
    assert (test.labels == labels).all()
    assert np.allclose(test.probs[:64, FACE], FaceEmotionModel.load(threads=1).predict_faces(faces[:64]), atol=1e-6)
