"""Train, cross-validate and export the voice emotion head (SpeechBrain `Brain`).

    python -m models.recipes.voice.train [--hparams models/recipes/voice/hparams.yaml]
        [--calm neutral|skip] [--set KEY=VALUE ...] [--no-export] [--out models/weights/voice_head.pt] [--runs-dir DIR]

1. Whisper encoder states of every RAVDESS clip, studio and through simulated
   phone lines, come from the feature cache (`models.recipes.voice.features`).
2. Cross-validation over actor folds (5 x 4 actors, speaker-independent): for
   each fold the head is trained on the other 16 actors, with the phone channel
   drawn at random per example and epoch, and scored on the held-out actors'
   studio clips and on the same clips through an unseen telephone draw. A
   linear probe (mean-pooled states, logistic regression) is trained on the
   same examples and scored the same way: the baseline.
3. A temperature is fitted on the pooled out-of-fold logits (honest held-out
   predictions), then the exported head is trained on all 20 actors.

Confusion-matrix PNGs, per-fold JSON and the out-of-fold logits (`oof.npz`,
which the fusion recipe trains on) go to --runs-dir (default
~/.cache/toneline/voice-runs/calm-<calm>), outside the repository.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import speechbrain as sb
import torch
import yaml
from hyperpyyaml import load_hyperpyyaml
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from torch.utils.data import DataLoader, Dataset

from models.emotion import LABEL_INDEX, LABELS, canonical_label
from models.logs import log_event
from models.metrics import Report, evaluate, expected_calibration_error
from models.recipes.calibration import fit_temperature, softmax
from models.recipes.voice.features import (
    EVAL_VARIANT,
    TRAIN_VARIANTS,
    Clip,
    extract,
    extract_fbank,
    ravdess_clips,
)
from models.voice import DEFAULT_HEAD, ENCODER_NAME, VoiceCheckpoint, pad_states

logger = logging.getLogger(__name__)
HERE = Path(__file__).resolve().parent
RUNS = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "voice-runs"
VERSION = "20261201"
OOF_FILE = "oof.npz"  # out-of-fold logits per variant, read by models.recipes.fusion


def label_of(emotion: str, calm: str) -> str | None:
    """Canonical label of a RAVDESS emotion; "calm" becomes neutral or None (skipped) as configured."""
    if emotion == "calm":
        return "neutral" if calm == "neutral" else None
    return canonical_label(emotion)


def actor_folds(n_folds: int) -> list[list[int]]:
    """Actors 1-20 in folds of alternating parity, so each fold holds as many men as women."""
    return [[a for a in range(1, 21) if (a - 1) % n_folds == k] for k in range(n_folds)]


@dataclass(frozen=True)
class Corpus:
    """Labelled clips and their encoder states in every variant (studio, telephone)."""

    clips: list[Clip]
    labels: np.ndarray
    variants: dict[str, list[np.ndarray]]
    fbanks: dict[str, list[np.ndarray]] | None = None

    def where(self, actors: list[int]) -> np.ndarray:
        return np.array([i for i, c in enumerate(self.clips) if c.actor in actors])


def load_corpus(calm: str, fbank: bool = False) -> Corpus:
    """RAVDESS clips with a canonical label and their cached states (and filterbanks when asked)."""
    clips = ravdess_clips()
    kinds = ("studio", *TRAIN_VARIANTS, EVAL_VARIANT)
    keep = [i for i, c in enumerate(clips) if label_of(c.emotion, calm) is not None]
    labels = np.array([LABEL_INDEX[label_of(clips[i].emotion, calm) or ""] for i in keep])
    variants = {v: [s[i] for i in keep] for v, s in ((v, extract(v, clips)) for v in kinds)}
    fbanks = {v: [f[i] for i in keep] for v, f in ((v, extract_fbank(v, clips)) for v in kinds)} if fbank else None
    return Corpus([clips[i] for i in keep], labels, variants, fbanks)


@dataclass
class Batch:
    """Padded encoder states, SpeechBrain relative lengths and label indices."""

    states: torch.Tensor
    lengths: torch.Tensor
    labels: torch.Tensor
    fbank: torch.Tensor | None = None

    def to(self, device: str) -> Batch:
        fbank = None if self.fbank is None else self.fbank.to(device)
        return Batch(self.states.to(device), self.lengths.to(device), self.labels.to(device), fbank)


class StateSet(Dataset):
    """Examples of a set of clips; in training each draw picks a variant at random and crops it."""

    def __init__(self, corpus: Corpus, index: np.ndarray, variants: tuple[str, ...], hp: dict, train: bool) -> None:
        self.corpus, self.index, self.variants, self.train = corpus, index, variants, train
        self.studio_prob, self.crop_min = float(hp["studio_prob"]), float(hp["crop_min"])
        self.rng = np.random.default_rng(int(hp["seed"]))

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray | None, int]:
        clip = int(self.index[i])
        variant = self.variants[0]
        if self.train:
            phone = [v for v in self.variants if v != "studio"]
            variant = "studio" if not phone or self.rng.random() < self.studio_prob else str(self.rng.choice(phone))
        states = self.corpus.variants[variant][clip]
        fbank = None if self.corpus.fbanks is None else self.corpus.fbanks[variant][clip]
        start, keep = 0, len(states)
        if self.train:
            keep = max(5, int(len(states) * self.rng.uniform(self.crop_min, 1.0)))
            start = int(self.rng.integers(0, len(states) - keep + 1))
        if fbank is not None:  # filterbanks run at 100 frames/s, twice the encoder's rate
            fbank = fbank[2 * start : 2 * (start + keep)].astype(np.float32)
        return states[start : start + keep].astype(np.float32), fbank, int(self.corpus.labels[clip])


def collate(items: list[tuple[np.ndarray, np.ndarray | None, int]]) -> Batch:
    states, lengths = pad_states([s for s, _, _ in items])
    fbanks = [f for _, f, _ in items if f is not None]
    fbank = pad_states(fbanks)[0] if len(fbanks) == len(items) else None
    return Batch(states, lengths, torch.tensor([y for _, _, y in items]), fbank)


class VoiceBrain(sb.Brain):
    """The head's training loop: encoder states -> logits, cross-entropy with label smoothing."""

    def compute_forward(self, batch: Batch, stage: sb.Stage) -> torch.Tensor:
        batch = batch.to(self.device)
        logits, _ = self.modules.head(batch.states, batch.lengths, batch.fbank)
        return logits

    def compute_objectives(self, predictions: torch.Tensor, batch: Batch, stage: sb.Stage) -> torch.Tensor:
        return self.hparams.loss(predictions, batch.labels.to(self.device))

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.hparams.epochs)

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        if stage == sb.Stage.TRAIN:
            self.scheduler.step()
            log_event(logger, logging.INFO, "voice.train.epoch", epoch=epoch, loss=round(stage_loss, 4))

    @torch.inference_mode()
    def logits(self, dataset: StateSet, batch_size: int = 64) -> np.ndarray:
        self.modules.eval()
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=False, collate_fn=collate)
        return np.concatenate([self.compute_forward(b, sb.Stage.TEST).numpy() for b in loader])


def load_hparams(path: Path, overrides: dict[str, Any]) -> dict:
    with path.open() as handle:
        return load_hyperpyyaml(handle, overrides)


def train_head(corpus: Corpus, index: np.ndarray, hparams_path: Path, overrides: dict) -> VoiceBrain:
    """A fresh head from the hparams, trained on `index` with telephone augmentation."""
    hp = load_hparams(hparams_path, overrides)
    torch.manual_seed(int(hp["seed"]))
    brain = VoiceBrain(modules=hp["modules"], opt_class=hp["opt_class"], hparams=hp, run_opts={"device": "cpu"})
    train_set = StateSet(corpus, index, ("studio", *TRAIN_VARIANTS), hp, train=True)
    loader = DataLoader(train_set, batch_size=int(hp["batch_size"]), shuffle=True, collate_fn=collate)
    brain.fit(hp["epoch_counter"], loader, progressbar=True)
    return brain


def linear_probe(corpus: Corpus, train_idx: np.ndarray, test_idx: np.ndarray) -> dict[str, np.ndarray]:
    """Baseline: mean-pooled states -> standardised logistic regression, same training examples as the head."""

    def pooled(variant: str, idx: np.ndarray) -> np.ndarray:
        return np.stack([corpus.variants[variant][i].astype(np.float32).mean(axis=0) for i in idx])

    x = np.concatenate([pooled(v, train_idx) for v in ("studio", *TRAIN_VARIANTS)])
    y = np.tile(corpus.labels[train_idx], 1 + len(TRAIN_VARIANTS))
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000)).fit(x, y)
    return {v: probe.predict(pooled(v, test_idx)) for v in ("studio", EVAL_VARIANT)}


def names(idx: np.ndarray) -> list[str]:
    return [LABELS[int(i)] for i in idx]


def save_confusion_png(report: Report, title: str, path: Path) -> None:
    """Confusion matrix (rows gold) as a PNG, normalised per row, counts in the cells."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    counts = report.confusion
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(LABELS)), LABELS, rotation=45, ha="right")
    ax.set_yticks(range(len(LABELS)), LABELS)
    for (r, c), n in np.ndenumerate(counts):
        ax.text(c, r, str(int(n)), ha="center", va="center", color="white" if share[r, c] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    ax.set_title(f"{title}\naccuracy {report.accuracy:.3f}, macro-F1 {report.macro_f1:.3f}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def headline(report: Report) -> dict[str, float]:
    return {"accuracy": round(report.accuracy, 4), "macro_f1": round(report.macro_f1, 4)}


def cross_validate(corpus: Corpus, hparams_path: Path, overrides: dict, runs: Path) -> dict[str, Any]:
    """Per-fold and pooled scores of the head and the probe, studio and telephone, plus the fitted temperature."""
    hp = load_hparams(hparams_path, overrides)
    oof: dict[str, np.ndarray] = {v: np.zeros((len(corpus.labels), len(LABELS))) for v in ("studio", EVAL_VARIANT)}
    probe_pred = {v: np.zeros(len(corpus.labels), dtype=int) for v in ("studio", EVAL_VARIANT)}
    folds = []
    for k, actors in enumerate(actor_folds(int(hp["folds"]))):
        test_idx = corpus.where(actors)
        train_idx = np.setdiff1d(np.arange(len(corpus.labels)), test_idx)
        brain = train_head(corpus, train_idx, hparams_path, overrides)
        probe = linear_probe(corpus, train_idx, test_idx)
        fold: dict[str, Any] = {"fold": k, "actors": actors, "n": int(len(test_idx))}
        for variant, key in (("studio", "studio"), (EVAL_VARIANT, "telephone")):
            logits = brain.logits(StateSet(corpus, test_idx, (variant,), hp, train=False))
            oof[variant][test_idx] = logits
            probe_pred[variant][test_idx] = probe[variant]
            gold = names(corpus.labels[test_idx])
            fold[key] = headline(evaluate(gold, names(logits.argmax(axis=1))))
            fold[f"probe_{key}"] = headline(evaluate(gold, names(probe[variant])))
        log_event(logger, logging.INFO, "voice.cv.fold", **fold)
        folds.append(fold)
    save_oof(corpus, oof, runs / OOF_FILE)
    pooled: dict[str, Any] = {}
    gold = names(corpus.labels)
    for variant, key in (("studio", "studio"), (EVAL_VARIANT, "telephone")):
        report = evaluate(gold, names(oof[variant].argmax(axis=1)))
        save_confusion_png(report, f"voice head, {key}, 5-fold actor CV", runs / f"confusion-{key}.png")
        pooled[key] = {**headline(report), "confusion": report.confusion.tolist()}
        pooled[f"probe_{key}"] = headline(evaluate(gold, names(probe_pred[variant])))
        pooled[f"{key}_per_class_recall"] = {n: round(c["recall"], 3) for n, c in report.per_class.items()}
    logits = np.concatenate([oof["studio"], oof[EVAL_VARIANT]])
    y = np.concatenate([corpus.labels, corpus.labels])
    temperature = fit_temperature(logits, y)
    pooled["temperature"] = round(temperature, 4)
    pooled["ece_before_after"] = [
        round(expected_calibration_error(softmax(logits), y), 4),
        round(expected_calibration_error(softmax(logits / temperature), y), 4),
    ]
    no_calm = np.array([c.emotion != "calm" for c in corpus.clips])
    for variant, key in (("studio", "studio"), (EVAL_VARIANT, "telephone")):
        pred = oof[variant].argmax(axis=1)
        pooled[f"{key}_without_calm_clips"] = headline(evaluate(names(corpus.labels[no_calm]), names(pred[no_calm])))
    return {"folds": folds, "pooled": pooled, "temperature": temperature}


def save_oof(corpus: Corpus, oof: dict[str, np.ndarray], path: Path) -> None:
    """Out-of-fold logits (before temperature) of every clip, for the fusion recipe: each clip's
    logits come from the fold head that never heard its actor."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        paths=np.array([str(c.path.name) for c in corpus.clips]),
        actors=np.array([c.actor for c in corpus.clips]),
        labels=corpus.labels,
        **{f"logits_{v}": logits.astype(np.float32) for v, logits in oof.items()},
    )
    log_event(logger, logging.INFO, "voice.cv.oof_saved", path=str(path), clips=len(corpus.clips))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hparams", type=Path, default=HERE / "hparams.yaml")
    parser.add_argument("--calm", choices=("neutral", "skip"), default=None, help="override hparams 'calm'")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more hparams overrides")
    parser.add_argument("--no-export", action="store_true", help="cross-validate only")
    parser.add_argument(
        "--reuse-cv",
        action="store_true",
        help="export only, with the cv.json an earlier run of the same settings wrote",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD)
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)  # the machine is shared; the head is small
    overrides = {k: v for k, v in (("calm", args.calm), ("epochs", args.epochs)) if v is not None}
    overrides.update({k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)})
    hp = load_hparams(args.hparams, overrides)
    runs = args.runs_dir / f"calm-{hp['calm']}"
    started = time.perf_counter()
    corpus = load_corpus(hp["calm"], fbank=bool(hp["fbank_channels"]))
    if args.reuse_cv:
        cv = json.loads((runs / "cv.json").read_text())
    else:
        cv = cross_validate(corpus, args.hparams, overrides, runs)
        runs.mkdir(parents=True, exist_ok=True)
        (runs / "cv.json").write_text(json.dumps(cv, indent=2) + "\n")
    log_event(logger, logging.INFO, "voice.cv.done", **{k: v for k, v in cv["pooled"].items() if "confusion" not in k})
    if args.no_export:
        return
    brain = train_head(corpus, np.arange(len(corpus.labels)), args.hparams, overrides)
    settings = {k: hp[k] for k in ("seed", "calm", "folds", "epochs", "batch_size", "lr", "weight_decay")}
    settings.update({k: hp[k] for k in ("label_smoothing", "studio_prob", "crop_min")})
    info = {
        "version": VERSION,
        "encoder": ENCODER_NAME,
        "data": "RAVDESS speech, 20 actors (CC BY-NC-SA 4.0)",
        "settings": settings,
        "cv": {"folds": cv["folds"], "pooled": cv["pooled"]},
        "train_seconds": round(time.perf_counter() - started, 1),
    }
    head_state = {k: v.detach().clone() for k, v in brain.modules.head.state_dict().items()}
    VoiceCheckpoint(head_state, LABELS, cv["temperature"], dict(hp["arch"]), info).save(args.out)
    log_event(logger, logging.INFO, "voice.export.done", path=str(args.out), temperature=round(cv["temperature"], 4))


if __name__ == "__main__":
    main()
