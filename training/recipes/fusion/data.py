"""The fusion's training and evaluation turns, built from real unimodal data only.

- RAVDESS voice turns: the voice head's out-of-fold estimate (from the actor
  fold that never heard the speaker, `training.recipes.voice.train`'s `oof.npz`)
  plus the text model's estimate of the clip's Whisper transcript
  (`training.recipes.fusion.asr`). The words are two fixed neutral sentences, so
  the emotion is in the voice only.
- Text-only turns: the text model's estimates on MELD and GoEmotions splits its
  head was not trained on (dev to fit, MELD test to evaluate). MELD turns are
  read with the two turns before them, as the NLU component reads a chat.
- Face-only turns: the face model's estimates on FER2013 faces it was not trained
  on (its selection split of Training to fit, PublicTest to evaluate).

Estimates are cached under ~/.cache/toneline/fusion, keyed by the inputs and the
model's weights.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from models.emotion import LABEL_INDEX, LABELS, MODALITIES, Modality
from models.face import DEFAULT_WEIGHTS as FACE_MODEL
from models.text import CONTEXT_TURNS
from models.text import DEFAULT_MODEL as TEXT_MODEL
from models.voice import DEFAULT_HEAD as VOICE_HEAD
from training import data
from training.recipes.calibration import softmax
from training.recipes.fusion.paths import CACHE

VOICE_RUNS = (
    Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "voice-runs" / "calm-neutral"
)  # the shipped head: hparams calm: neutral
TEXT, VOICE, FACE = (MODALITIES.index(m) for m in (Modality.TEXT, Modality.VOICE, Modality.FACE))


@dataclass(frozen=True)
class Turns:
    """Fusion examples: per-modality distributions and confidences, which are present, gold labels, speakers."""

    probs: NDArray[Any]  # (n, 3, 7), rows in MODALITIES order; uniform where absent (masked, never read)
    confidence: NDArray[Any]  # (n, 3)
    mask: NDArray[Any]  # (n, 3) bool, True where the modality is present
    labels: NDArray[Any]  # (n,) indices into LABELS
    actors: NDArray[Any]  # (n,) RAVDESS actor, 0 for text-only corpora
    source: str
    groups: dict[str, NDArray[Any]] = field(default_factory=dict)  # per-turn tags for breakdowns (voice, kind)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: NDArray[Any]) -> Turns:
        return Turns(
            self.probs[index],
            self.confidence[index],
            self.mask[index],
            self.labels[index],
            self.actors[index],
            self.source,
            {k: v[index] for k, v in self.groups.items()},
        )


def concat(parts: list[Turns], source: str) -> Turns:
    return Turns(
        np.concatenate([p.probs for p in parts]),
        np.concatenate([p.confidence for p in parts]),
        np.concatenate([p.mask for p in parts]),
        np.concatenate([p.labels for p in parts]),
        np.concatenate([p.actors for p in parts]),
        source,
    )


def _digest(weights: Path, *parts: str) -> str:
    # Keyed by the weights themselves: two models trained on the same day share a version string.
    version = hashlib.sha256(weights.read_bytes()).hexdigest()[:16]
    return hashlib.sha256("\n".join([version, *parts]).encode()).hexdigest()[:16]


def text_probs(texts: list[str], tag: str, contexts: list[list[str]] | None = None) -> NDArray[Any]:
    """Calibrated text-model distributions (n, 7) of `texts` (each read after `contexts[i]`), cached."""
    context_key = [] if contexts is None else ["\x1e".join(c) for c in contexts]
    path = CACHE / f"text-{tag}-{_digest(TEXT_MODEL, *texts, *context_key)}.npy"
    if path.exists():
        return np.asarray(np.load(path))
    from models.text import TextEmotionModel

    model = TextEmotionModel.load(threads=1)
    out = []
    for start in range(0, len(texts), 128):
        chunk = None if contexts is None else contexts[start : start + 128]
        out += [e.probs for e in model.predict_batch(texts[start : start + 128], chunk)]
    probs = np.array(out, dtype=np.float64).reshape(-1, len(LABELS))
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, probs)
    return probs


def face_probs(images: NDArray[Any], tag: str) -> NDArray[Any]:
    """Calibrated face-model distributions (n, 7) of 48x48 faces, cached."""
    path = CACHE / f"face-{tag}-{_digest(FACE_MODEL, hashlib.sha256(images.tobytes()).hexdigest())}.npy"
    if path.exists():
        return np.asarray(np.load(path))
    from models.face import FaceEmotionModel

    model = FaceEmotionModel.load(threads=1)
    probs = np.concatenate([model.predict_faces(images[i : i + 512]) for i in range(0, len(images), 512)])
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(path, probs)
    return np.asarray(probs)


def _turns(n: int, labels: NDArray[Any], actors: NDArray[Any], source: str, **present: NDArray[Any]) -> Turns:
    probs = np.full((n, len(MODALITIES), len(LABELS)), 1.0 / len(LABELS))
    mask = np.zeros((n, len(MODALITIES)), dtype=bool)
    for name, p in present.items():
        row = MODALITIES.index(Modality(name))
        probs[:, row], mask[:, row] = p, True
    confidence = probs.max(axis=-1)  # what `EmotionEstimate.from_probs` uses by default
    return Turns(probs, confidence, mask, labels, actors, source)


def text_only(corpus: str, split: str) -> Turns:
    """Text-only turns of MELD or GoEmotions (Ekman, single-label) `split`."""
    samples = data.meld(split) if corpus == "meld" else data.goemotions(split)
    contexts = data.contexts(samples, CONTEXT_TURNS) if corpus == "meld" else None
    probs = text_probs([s.text for s in samples], f"{corpus}-{split}", contexts)
    labels = np.array([LABEL_INDEX[s.label] for s in samples])
    return _turns(len(samples), labels, np.zeros(len(samples), dtype=int), f"{corpus} {split}", text=probs)


def face_only(split: str) -> Turns:
    """Face-only FER2013 turns: "selection" (the 10 % of Training the face model held out) or "test" (PublicTest)."""
    from training.recipes.face.train import SELECTION_SHARE, held_out_seed, load_fer, stratified_split

    if split == "selection":
        images, labels = load_fer("Training")
        # The faces the shipped weights held out: their split seed is in the sidecar.
        seed = held_out_seed(json.loads(FACE_MODEL.with_suffix(".json").read_text()))
        _, held = stratified_split(labels, SELECTION_SHARE, seed)
        images, labels = images[held], labels[held]
    elif split == "test":
        images, labels = load_fer("PublicTest")
    else:
        raise ValueError(f"unknown FER2013 split {split!r}: selection or test")
    probs = face_probs(images, f"fer-{split}")
    return _turns(len(labels), labels, np.zeros(len(labels), dtype=int), f"fer2013 {split}", face=probs)


def voice_temperature() -> float:
    """The shipped voice head's temperature (fitted on out-of-fold logits of the same CV)."""
    return float(json.loads(VOICE_HEAD.with_suffix(".json").read_text())["temperature"])


def voice_neutral_offset() -> float:
    """What the voice recipe added to the exported head's neutral logit (issue 30). Out-of-fold logits come from
    fold heads before it, so the fusion adds it too: its voice prior and fit must see the voice the runtime sees."""
    settings = json.loads(VOICE_HEAD.with_suffix(".json").read_text()).get("settings", {})
    return float(settings.get("neutral_offset", 0.0))


def oof_path(runs: Path | None = None) -> Path:
    """The voice head's out-of-fold logits: `TONELINE_VOICE_OOF` if set, else the voice recipe's run folder."""
    named = os.environ.get("TONELINE_VOICE_OOF")
    return Path(named) if named and runs is None else (runs or VOICE_RUNS) / "oof.npz"


def load_oof(runs: Path | None = None) -> dict[str, NDArray[Any]]:
    path = oof_path(runs)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} is missing: run `python -m training.recipes.voice.train --no-export` first "
            "(it saves the voice head's out-of-fold logits)"
        )
    return dict(np.load(path))


def voice_confidence(probs: NDArray[Any], distance: NDArray[Any], with_baseline: bool) -> NDArray[Any]:
    """The confidence the shipped voice model gives these estimates: top probability x its scale for a first
    turn or a turn with a baseline x the familiarity of the audio (`models.voice.VoiceEmotionModel.postprocess`)."""
    import torch

    from models.voice import VoiceEmotionModel

    head = VoiceEmotionModel.load(threads=1).head
    familiarity = head.familiarity(torch.from_numpy(np.asarray(distance, dtype=np.float32))).numpy()
    scale = float(head.confidence_scale.numpy()[int(with_baseline)])
    return np.asarray(np.clip(probs.max(axis=-1) * scale * familiarity, 0.0, 1.0))


def _voice_estimates(oof: dict[str, NDArray[Any]], variant: str) -> tuple[NDArray[Any], NDArray[Any]]:
    """Calibrated voice distributions and confidences of `variant` (`studio`, `tel-eval`, `*_first`)."""
    logits = oof[f"logits_{variant}"].astype(np.float64).copy()
    logits[:, LABEL_INDEX["neutral"]] += voice_neutral_offset()
    probs = softmax(logits / voice_temperature())
    audio = variant.removesuffix("_first")
    if f"distance_{audio}" not in oof:  # an older voice recipe: confidence is the top probability
        return probs, probs.max(axis=-1)
    return probs, voice_confidence(probs, oof[f"distance_{audio}"], not variant.endswith("_first"))


def ravdess(variant: str = "studio", runs: Path | None = None) -> Turns:
    """RAVDESS turns: out-of-fold voice estimate of `variant` + the text estimate of the clip's ASR transcript.

    `studio` / `tel-eval`: each clip read in a call (the voice recipe's baseline: other clips of the actor);
    `studio_first` / `tel-eval_first`: read as a caller's first turn (no baseline, lower confidence).
    """
    from training.recipes.fusion.asr import transcripts

    oof = load_oof(runs)
    asr = transcripts()
    words = [asr[str(name)] for name in oof["paths"]]
    text = text_probs(words, "ravdess-asr")
    voice, confidence = _voice_estimates(oof, variant)
    labels = oof["labels"].astype(int)
    turns = _turns(len(labels), labels, oof["actors"].astype(int), f"ravdess {variant}", text=text, voice=voice)
    turns.confidence[:, VOICE] = confidence
    return turns


DIGITS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def calm_callers(variant: str = "studio_first", runs: Path | None = None) -> Turns:
    """Calm, unacted people reading digit strings (FSDD, the voice recipe's leave-one-speaker-out estimates,
    `oof-calm.npz`) with their words (the digits, as an ASR would hear them): every turn is neutral."""
    from training.recipes.voice.calm import fsdd_turns

    path = oof_path(runs).with_name("oof-calm.npz")
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: the voice recipe's cross-validation writes it")
    oof = dict(np.load(path))
    turns = fsdd_turns()
    if [t.parts[0].name for t in turns] != [str(p) for p in oof["paths"]]:
        raise ValueError(f"{path}: its rows are not the FSDD turns of `fsdd_turns()` (re-run the voice recipe)")
    words = [" ".join(DIGITS[int(p.name.split("_")[0])] for p in t.parts) for t in turns]
    text = text_probs(words, "fsdd-digits")
    voice, confidence = _voice_estimates(oof, variant)
    labels = oof["labels"].astype(int)
    speakers = np.asarray(oof["speakers"]).astype(str)
    calm = _turns(len(labels), labels, np.zeros(len(labels), dtype=int), f"fsdd {variant}", text=text, voice=voice)
    calm.confidence[:, VOICE] = confidence
    calm.groups["speaker"] = speakers
    return calm


def synthetic_pairs(voice_turns: Turns, text_turns: Turns, seed: int, per_turn: int = 1) -> Turns:
    """Augmentation only: each voice turn paired with a random text-only turn of the same label (another corpus)."""
    rng = np.random.default_rng(seed)
    by_label = {k: np.flatnonzero(text_turns.labels == k) for k in range(len(LABELS))}
    rows, partners = [], []
    for i, y in enumerate(voice_turns.labels):
        if len(by_label[int(y)]):
            rows += [i] * per_turn
            partners += list(rng.choice(by_label[int(y)], per_turn))
    base = voice_turns.subset(np.array(rows))
    probs, confidence, mask = base.probs.copy(), base.confidence.copy(), base.mask.copy()
    probs[:, TEXT] = text_turns.probs[partners, TEXT]
    confidence[:, TEXT] = text_turns.confidence[partners, TEXT]
    mask[:, TEXT] = True
    return Turns(
        probs,
        confidence,
        mask,
        base.labels,
        base.actors,
        f"synthetic pairs ({voice_turns.source} + {text_turns.source})",
    )


@dataclass(frozen=True)
class FoldReadings:
    """Fused predictions of every RAVDESS clip by the fold fusion that never saw its actor."""

    turns: Turns
    fused: NDArray[Any]  # (n, 7)
    weights: NDArray[Any]  # (n, 3): each modality's contribution to the turn's result


def spoken_estimates(cache: Path | None = None) -> Turns:
    """The contact-centre spoken set (`training.recipes.fusion.spoken`) read as production reads turns: the
    text model on the words, the voice model on the synthetic speech. Cached by both models' weights;
    raises `SynthesisUnavailable` without espeak-ng or flite."""
    from training.recipes.fusion.spoken import SENTENCES, SPOKEN_CACHE, VOICES, build_manifest
    from training.recipes.fusion.turns import ManifestReader, read_rows, turn_arrays

    voices = [f"{v.engine}:{v.name}" for v in VOICES]
    key = _digest(TEXT_MODEL, _digest(VOICE_HEAD, SENTENCES.read_text(), *voices))
    path = (cache or CACHE) / f"spoken-{key}.npz"
    if not path.exists():
        rows, _ = read_rows(build_manifest(SPOKEN_CACHE))
        read = ManifestReader().read(rows)
        if read.skipped:
            raise ValueError(f"spoken set: rows could not be read: {dict(read.skipped)}")
        probs, confidence, mask = turn_arrays(read.estimates)
        labels = np.array([LABEL_INDEX[r.label] for r in read.rows])
        tags = {k: np.array([r.extra.get(k, "") for r in read.rows]) for k in ("voice", "kind", "sentence")}
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, probs=probs, confidence=confidence, mask=mask, labels=labels, **tags)
    raw = np.load(path)
    groups = {k: raw[k].astype(str) for k in ("voice", "kind", "sentence")}
    n = len(raw["labels"])
    return Turns(raw["probs"], raw["confidence"], raw["mask"], raw["labels"], np.zeros(n, dtype=int), "spoken", groups)
