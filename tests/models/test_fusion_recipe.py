"""The fusion recipe's pieces: training twin, modality dropout, pairs, fitting on a toy problem."""

from __future__ import annotations

import numpy as np
import torch

from models.emotion import LABELS
from models.recipes.fusion.data import TEXT, VOICE, Turns, synthetic_pairs
from models.recipes.fusion.train import HPARAMS, FitData, FusionNet, fit, modality_dropout


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
    net = FusionNet(8)
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
    assert weights.bias[2] == min(weights.bias[TEXT], weights.bias[VOICE])  # face keeps its prior


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
