"""Fit, cross-validate, check and export the evidence fusion (`models.fusion.EvidenceFusion`).

    python -m training.recipes.fusion.train [--no-export] [--no-spoken] [--out models/weights/fusion.json]

Needs the voice head's out-of-fold logits (`python -m training.recipes.voice.train
--no-export` writes `oof.npz` and, for FSDD calm speech, `oof-calm.npz`;
`TONELINE_VOICE_OOF` names another `oof.npz`) and computes, once, the Whisper
transcripts of the RAVDESS clips and the text and face models' estimates (cached
outside the repository). The spoken check needs espeak-ng and flite.

1. Priors (counted, not fitted): each modality's mean distribution over its own real
   turns: text over MELD dev (read in context) and GoEmotions dev, the two corpora
   weighted equally; voice over what the voice head trained on (the RAVDESS
   out-of-fold estimates of the fit's actors and the FSDD calm digit strings); face
   over the FER2013 faces the face model held out. The reference (a calm everyday
   turn) is the text prior.
2. The voice's trust (bounded by 1) and tau, two numbers: maximum likelihood on the
   RAVDESS turns read in a call (voice out-of-fold estimate + text estimate of the
   Whisper transcript), the only real turns with two modalities. Text's trust is 1
   by definition (a chat turn is the text model's reading); the face's is the
   voice's (no real turn has a face and another modality). RAVDESS words never carry
   emotion, but under the departure rule calm words cannot outvote the voice anyway,
   so the fit has nothing to gain from "never listen to the words". Single-modality
   turns (MELD, GoEmotions, FER2013) shape the priors, not the fit.
3. Speaker-held-out evaluation: the voice head's 5 actor folds; each fold's fusion never
   saw its actors; RAVDESS in a call and as first turns, studio and telephone. Then the
   exported fusion is fitted on all 20 actors and checked on MELD test, FER2013
   PublicTest, calm FSDD callers and the contact-centre spoken set
   (`training.recipes.fusion.spoken`). The spoken set is a check, never fitted on.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import minimize

from models.emotion import LABELS, MODALITIES
from models.fusion import DEFAULT_FUSION, FUSION_ARCH, EvidenceWeights
from models.logs import log_event
from training.recipes.fusion.data import (
    FACE,
    TEXT,
    VOICE,
    FoldReadings,
    Turns,
    calm_callers,
    concat,
    face_only,
    ravdess,
    synthetic_pairs,
    text_only,
)
from training.recipes.fusion.report import (
    calibration_check,
    calm_check,
    fer_test,
    meld_test,
    spoken_check,
    summarise,
)

logger = logging.getLogger(__name__)
VERSION = "20261208"  # refit on the 20261207 voice head, with its neutral offset (issue 30)
SYNTHETIC_TEST = "synthetic_pairs_test"
# Report name -> the voice recipe's out-of-fold variant: clips read in a call (the actor's other clips as the
# caller's baseline) and as a caller's first turn, studio and through the evaluation phone line.
RAVDESS_VARIANTS = {
    "studio": "studio",
    "telephone": "tel-eval",
    "studio_first_turn": "studio_first",
    "telephone_first_turn": "tel-eval_first",
}
HPARAMS: dict[str, Any] = {
    "folds": 5,
    # Where the voice's trust starts (logit; 2 = 0.88): the fit is two numbers and smooth, the start only
    # saves steps.
    "start_logit_trust": 2.0,
}


@dataclass(frozen=True)
class FitData:
    """What one fit sees: RAVDESS turns of its actors, text-only dev turns, face-only held-out faces, and the
    calm turns the voice head also trained on (FSDD digit strings: they count in its prior, never in a fit)."""

    ravdess: Turns
    text: list[Turns]
    face: list[Turns] = field(default_factory=list)
    calm: list[Turns] = field(default_factory=list)


def mean_distribution(parts: list[Turns], row: int) -> NDArray[Any]:
    """Mean of modality `row`'s distributions over each part's turns that have it, the parts weighted equally."""
    means = [p.probs[p.mask[:, row], row].mean(axis=0) for p in parts if p.mask[:, row].any()]
    if not means:
        raise ValueError(f"no turns with {MODALITIES[row].value} to count its prior from")
    mean = np.mean(means, axis=0)
    return np.asarray(mean / mean.sum())


def priors(data: FitData) -> tuple[NDArray[Any], NDArray[Any]]:
    """Per-modality priors (3, 7) in `MODALITIES` order, and the reference (the text prior)."""
    out = np.zeros((len(MODALITIES), len(LABELS)))
    out[TEXT] = mean_distribution(data.text, TEXT)
    # The voice head's habit over what it trained on: acted RAVDESS and calm digit strings, by count.
    out[VOICE] = mean_distribution([concat([data.ravdess, *data.calm], "voice training turns")], VOICE)
    # Without held-out faces (a fit for a test) the face borrows the text's prior: an everyday turn.
    out[FACE] = mean_distribution(data.face, FACE) if data.face else out[TEXT]
    return out, out[TEXT].copy()


def weights_of(params: NDArray[Any], prior: NDArray[Any], reference: NDArray[Any]) -> EvidenceWeights:
    """params = (logit trust_voice, log tau); text trust 1; face trust = the voice's (the lower of the two)."""
    voice = float(1.0 / (1.0 + np.exp(-params[0])))
    return EvidenceWeights(prior, reference, np.array([1.0, voice, voice]), float(np.exp(params[1])))


def fit(data: FitData, hp: dict[str, Any]) -> EvidenceWeights:
    """Priors counted from each modality's own turns; trust and tau fitted on the two-modality turns."""
    prior, reference = priors(data)
    multi = data.ravdess.subset(np.flatnonzero(data.ravdess.mask.sum(axis=1) > 1))

    def objective(params: NDArray[Any]) -> float:
        return _nll(weights_of(params, prior, reference), multi)

    start = np.array([float(hp["start_logit_trust"]), 0.0])
    found = minimize(objective, start, method="L-BFGS-B", bounds=[(-6.0, 8.0), (-3.0, 2.0)])
    return weights_of(np.asarray(found.x), prior, reference)


def _nll(weights: EvidenceWeights, turns: Turns) -> float:
    """Mean negative log-likelihood of the gold labels under the fused distributions (contributions not needed)."""
    probs = weights.fuse_probs(turns.probs, turns.confidence, turns.mask)
    return float(-np.log(np.clip(probs[np.arange(len(turns)), turns.labels], 1e-9, 1.0)).mean())


def load_fit_text() -> list[Turns]:
    """Text-only turns the fit may use: MELD dev and GoEmotions dev (the text head was trained on train)."""
    return [text_only("meld", "dev"), text_only("goemotions", "dev")]


def load_fit_face() -> list[Turns]:
    """Face-only turns the fit may use: the FER2013 Training faces the face model held out for selection."""
    return [face_only("selection")]


def load_calm() -> list[Turns]:
    """FSDD calm digit strings in a call (the voice recipe trains on them): for the voice prior, if present."""
    try:
        return [calm_callers("studio")]
    except FileNotFoundError:
        return []


def cross_validate(
    hp: dict[str, Any],
    text: list[Turns] | None = None,
    face: list[Turns] | None = None,
    calm: list[Turns] | None = None,
) -> tuple[dict[str, FoldReadings], list[EvidenceWeights]]:
    """Actor-fold predictions for each RAVDESS variant (studio and telephone, in a call and as first turns; and
    the synthetic test), and each fold's fit (on the in-call studio turns of its training actors)."""
    # The voice recipe's folds; imported here because it pulls in SpeechBrain, which importing this module must not.
    from training.recipes.voice.train import actor_folds

    variants = {name: ravdess(key) for name, key in RAVDESS_VARIANTS.items()}
    text = text if text is not None else load_fit_text()
    face = face if face is not None else load_fit_face()
    calm = calm if calm is not None else load_calm()
    studio = variants["studio"]
    # Not a headline: held-out voice turns paired with MELD test text of the same label, to show what the
    # fusion does when the words carry the emotion too (no real turn of that kind exists here).
    variants[SYNTHETIC_TEST] = synthetic_pairs(studio, text_only("meld", "test"), seed=2026)
    out = {k: (np.zeros((len(v), len(LABELS))), np.zeros((len(v), len(MODALITIES)))) for k, v in variants.items()}
    fits = []
    for k, actors in enumerate(actor_folds(int(hp["folds"]))):
        held = np.isin(studio.actors, actors)
        weights = fit(FitData(studio.subset(np.flatnonzero(~held)), text, face, calm), hp)
        fits.append(weights)
        for name, turns in variants.items():
            part = turns.subset(np.flatnonzero(held))
            out[name][0][held], out[name][1][held] = weights.fuse_arrays(part.probs, part.confidence, part.mask)
        log_event(
            logger,
            logging.INFO,
            "fusion.cv.fold",
            fold=k,
            actors=actors,
            trust_voice=round(float(weights.trust[VOICE]), 3),
            tau=round(weights.tau, 3),
        )
    return {k: FoldReadings(variants[k], *out[k]) for k in variants}, fits


def export(weights: EvidenceWeights, info: dict[str, Any], path: Path) -> None:
    """Write the fusion's parameters and provenance as one JSON file."""
    document = {"arch": FUSION_ARCH, "labels": list(LABELS), "version": VERSION, "params": weights.to_json(), **info}
    path.write_text(json.dumps(document, indent=2) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-export", action="store_true", help="cross-validate and check only")
    parser.add_argument("--no-spoken", action="store_true", help="skip the contact-centre spoken set")
    parser.add_argument("--out", type=Path, default=DEFAULT_FUSION)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    started = time.perf_counter()
    text, face, calm = load_fit_text(), load_fit_face(), load_calm()
    held, fits = cross_validate(HPARAMS, text, face, calm)
    summary = summarise(held)
    summary["calibration"] = calibration_check(held)
    weights = fit(FitData(ravdess("studio"), text, face, calm), HPARAMS)
    checks: dict[str, Any] = {"meld_test": meld_test(weights)[0], "fer_test": fer_test(weights)[0]}
    if calm:
        checks["calm_callers"] = calm_check(weights)
    if not args.no_spoken:
        checks["spoken_contact_centre"] = spoken_check(weights)[0]
    print(json.dumps({"cv": summary, **checks}, indent=2))
    if args.no_export:
        return
    info = {
        "modalities": [m.value for m in MODALITIES],
        "data": (
            "RAVDESS speech, 20 actors (CC BY-NC-SA 4.0): voice head out-of-fold estimates + Whisper tiny.en "
            "transcripts (trust, tau, voice prior); FSDD calm digit strings (CC BY-SA 4.0): voice prior; "
            "MELD dev with dialogue context (GPL-3.0), GoEmotions dev "
            "(CC BY 4.0): text prior and reference; FER2013 Training faces held out by the face model "
            "(research use): face prior"
        ),
        "face": "trust = the lower of text's and voice's (no real turn has a face and another modality)",
        "settings": HPARAMS,
        "cv": {
            **summary,
            "fold_trust_voice": [round(float(w.trust[VOICE]), 4) for w in fits],
            "fold_tau": [round(w.tau, 4) for w in fits],
        },
        **checks,
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    export(weights, info, args.out)
    log_event(logger, logging.INFO, "fusion.export.done", path=str(args.out), tau=round(weights.tau, 4))


if __name__ == "__main__":
    main()
