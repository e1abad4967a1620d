"""The fusion recipe's pieces: priors, the fit on a toy problem, pairs, the spoken set, no import cycle."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from models.emotion import LABELS
from tests.conftest import shared_data
from training.recipes.fusion.data import FACE, TEXT, VOICE, Turns, face_only, synthetic_pairs
from training.recipes.fusion.spoken import VOICES, missing_engines, sentences, synthesise
from training.recipes.fusion.train import HPARAMS, FitData, fit, mean_distribution, priors

REPO = Path(__file__).resolve().parents[2]


def toy_turns(n: int, seed: int, voice_knows: float = 0.6) -> Turns:
    """Voice estimates that know the label, text estimates that say neutral whatever it is (as RAVDESS)."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, len(LABELS), n)
    probs = np.full((n, 3, len(LABELS)), 1.0 / len(LABELS))
    probs[:, VOICE] = rng.dirichlet(np.ones(len(LABELS)), n) * (1 - voice_knows)
    probs[np.arange(n), VOICE, labels] += voice_knows
    probs[:, TEXT] = rng.dirichlet(np.ones(len(LABELS)), n) * 0.3
    probs[:, TEXT, 0] += 0.7
    mask = np.zeros((n, 3), dtype=bool)
    mask[:, [TEXT, VOICE]] = True
    return Turns(probs, probs.max(axis=-1), mask, labels, rng.integers(1, 21, n), "toy")


def text_only_turns(n: int, seed: int) -> Turns:
    turns = toy_turns(n, seed)
    mask = turns.mask.copy()
    mask[:, VOICE] = False
    return Turns(turns.probs, turns.confidence, mask, turns.labels, turns.actors, "toy text")


def test_priors_are_each_modalitys_mean_over_its_own_turns() -> None:
    ravdess, text = toy_turns(300, 0), text_only_turns(200, 1)
    prior, reference = priors(FitData(ravdess, [text]))
    assert np.allclose(prior[VOICE], ravdess.probs[:, VOICE].mean(axis=0))
    assert np.allclose(prior[TEXT], text.probs[:, TEXT].mean(axis=0)) and np.allclose(reference, prior[TEXT])
    assert np.allclose(prior[FACE], prior[TEXT])  # no faces: an everyday turn
    calm = toy_turns(100, 5)
    calm.probs[:, VOICE] = np.eye(len(LABELS))[0]  # calm digit strings the voice reads as neutral
    with_calm, _ = priors(FitData(ravdess, [text], calm=[calm]))
    pooled = np.concatenate([ravdess.probs[:, VOICE], calm.probs[:, VOICE]]).mean(axis=0)
    assert np.allclose(with_calm[VOICE], pooled) and with_calm[VOICE][0] > prior[VOICE][0]
    with pytest.raises(ValueError, match="no turns with face"):
        mean_distribution([text], FACE)


def test_fit_keeps_the_voice_when_the_words_say_nothing() -> None:
    weights = fit(FitData(toy_turns(400, 1), [text_only_turns(300, 2)]), HPARAMS)
    held = toy_turns(200, 3)
    fused, contributions = weights.fuse_arrays(held.probs, held.confidence, held.mask)
    voice_alone = (held.probs[:, VOICE].argmax(1) == held.labels).mean()
    assert (fused.argmax(1) == held.labels).mean() >= voice_alone - 0.01
    emotional = held.labels != 0
    assert contributions[emotional, VOICE].mean() > 0.8  # the emotion came from the voice
    assert weights.trust[TEXT] == 1.0 and weights.trust[FACE] == weights.trust[VOICE]


def test_fit_trusts_a_voice_that_is_often_wrong_less() -> None:
    sure = fit(FitData(toy_turns(400, 1, voice_knows=0.6), [text_only_turns(300, 2)]), HPARAMS)
    rng = np.random.default_rng(4)
    noisy = toy_turns(400, 1, voice_knows=0.6)
    wrong = rng.random(len(noisy)) < 0.6
    noisy.labels[wrong] = 0  # the voice hears an emotion where there is none
    unsure = fit(FitData(noisy, [text_only_turns(300, 2)]), HPARAMS)
    assert unsure.trust[VOICE] < sure.trust[VOICE]


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


def test_report_and_train_import_in_either_order() -> None:
    for first, second in (("report", "train"), ("train", "report")):
        code = f"import training.recipes.fusion.{first}, training.recipes.fusion.{second}"
        done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-1500:]


def test_the_spoken_sentences_are_labelled_in_the_canonical_set() -> None:
    found = sentences()
    assert {s.label for s in found} <= set(LABELS)
    assert len({s.id for s in found}) == len(found)


@pytest.mark.skipif(bool(missing_engines()), reason=f"needs {missing_engines()} (apt-get install espeak-ng flite)")
def test_each_voice_speaks_into_the_cache_once(tmp_path: Path) -> None:
    from models import audio

    sentence = sentences()[0]
    for voice in VOICES:
        path = synthesise(sentence, voice, tmp_path)
        pcm = audio.load(path)
        assert 1.0 < pcm.size / audio.SAMPLE_RATE < 10.0 and float(np.abs(pcm).max()) > 0.05
        stamp = path.stat().st_mtime_ns
        assert synthesise(sentence, voice, tmp_path) == path and path.stat().st_mtime_ns == stamp
    assert not list(tmp_path.rglob("*.part.wav"))


def test_face_only_turns_are_the_face_models_estimates_on_faces_it_held_out() -> None:
    shared_data("faces", "fer2013")
    from models.face import FaceEmotionModel
    from training.recipes.face.train import load_fer

    selection = face_only("selection")
    # 10 % of Training, stratified: the faces the shipped face model held out for selection (0.63 there).
    assert len(selection) == 2874 and selection.mask[:, FACE].all() and not selection.mask[:, [TEXT, VOICE]].any()
    assert 0.58 < (selection.probs[:, FACE].argmax(1) == selection.labels).mean() < 0.70
    test = face_only("test")
    faces, labels = load_fer("PublicTest")
    assert (test.labels == labels).all()
    assert np.allclose(test.probs[:64, FACE], FaceEmotionModel.load(threads=1).predict_faces(faces[:64]), atol=1e-6)


def test_calm_callers_are_the_voice_recipes_fsdd_turns_with_their_digits() -> None:
    shared_data("speech", "fsdd")
    from training.recipes.fusion.data import calm_callers, oof_path

    if not oof_path().with_name("oof-calm.npz").exists():
        pytest.skip(f"needs the voice recipe's FSDD out-of-fold logits beside {oof_path()}")
    calm = calm_callers("studio_first")
    assert len(calm) > 500 and (calm.labels == 0).all() and calm.mask[:, [TEXT, VOICE]].all()
    assert set(calm.groups["speaker"]) == {"fsdd-george", "fsdd-jackson", "fsdd-lucas"}
    # A first turn carries less confidence than its top probability (the voice model's first-turn scale).
    assert (calm.confidence[:, VOICE] <= calm.probs[:, VOICE].max(axis=1) + 1e-9).all()
