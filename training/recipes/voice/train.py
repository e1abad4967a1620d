"""Train, cross-validate and export the voice emotion head (SpeechBrain `Brain`).

    python -m training.recipes.voice.train [--hparams training/recipes/voice/hparams.yaml]
        [--calm neutral|skip] [--set KEY=VALUE ...] [--no-export] [--out models/weights/voice_head.pt] [--runs-dir DIR]

1. Pooled statistics of the Whisper encoder states (`models.voice.pooled_stats`)
   of every RAVDESS clip and every FSDD digit-string turn (calm, unacted,
   neutral), studio and through simulated phone lines, come from the feature
   cache (`training.recipes.voice.features`, `training.recipes.voice.calm`).
2. Each training example is a turn read beside a baseline: the mean statistics
   of a random handful of the same speaker's other turns in the same channel (as
   a call's earlier turns), sometimes none (a first turn), sometimes only their
   calm ones (a caller who started calm).
3. Cross-validation over speaker folds: 5 x 4 RAVDESS actors, and FSDD leave one
   speaker out (fold k holds out the k-th FSDD speaker; folds 3 and 4 none).
   Every held-out turn is read three ways: as a first turn, in a call (4 other
   turns of the speaker as the baseline) and after a calm start (4 calm ones).
4. From the out-of-fold readings: the temperature, the confidence scales (first
   turn / with a baseline) and the familiar distance of held-out speakers.
5. The exported head is trained on every speaker but `HELD_OUT` (two RAVDESS
   actors, one FSDD speaker), so tests and quality runs have callers it never
   heard; then scored on those and on the probes (`training.recipes.voice.report`).

Per-fold JSON, confusion PNGs and the out-of-fold logits (`oof.npz`, RAVDESS, read
by the fusion recipe; `oof-calm.npz`, FSDD) go to --runs-dir (default
~/.cache/toneline/voice-runs/calm-<calm>), outside the repository.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import speechbrain as sb
import torch
import yaml
from numpy.typing import NDArray
from torch.utils.data import DataLoader, Dataset

from models.emotion import LABEL_INDEX, LABELS, canonical_label
from models.logs import log_event
from models.voice import DEFAULT_HEAD, ENCODER_NAME, HEAD_KIND, HeldOut, VoiceCheckpoint, VoiceHead
from training.metrics import evaluate
from training.recipes.calibration import fit_temperature, softmax
from training.recipes.voice.calm import fsdd_turns
from training.recipes.voice.config import HERE, RUNS, load_hparams
from training.recipes.voice.features import EVAL_VARIANT, TRAIN_VARIANTS, Source, extract_pooled, ravdess_clips
from training.recipes.voice.report import cv_report, headline, names, probe_report, render

logger = logging.getLogger(__name__)
VERSION = "20261207"
OOF_FILE = "oof.npz"  # RAVDESS out-of-fold logits per variant, read by training.recipes.fusion
OOF_CALM_FILE = "oof-calm.npz"  # FSDD out-of-fold logits (leave one speaker out)
EVAL_VARIANTS = ("studio", EVAL_VARIANT)
# Speakers the exported head never hears: one RAVDESS man, one woman, one FSDD speaker.
HELD_OUT = HeldOut(ravdess_actors=(19, 20), fsdd_speakers=("lucas",))
MODES = ("first", "call", "calm_start")  # how a held-out turn is read: no baseline, 4 other turns, 4 calm turns
EVAL_BASELINE_TURNS = 4
UNLABELLED = -1


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
    """Every turn (RAVDESS clips, FSDD turns) with its speaker, label and pooled statistics per variant.

    `labels` is `UNLABELLED` where a turn is no training target (RAVDESS calm when
    skipped) but still a baseline turn; `calm` marks turns a calm start may use.
    """

    sources: list[Source]
    corpus: NDArray[Any]  # "ravdess" / "fsdd"
    speakers: NDArray[Any]
    labels: NDArray[Any]
    calm: NDArray[Any]
    stats: dict[str, NDArray[Any]]

    def where(self, speakers: list[str], labelled: bool = True) -> NDArray[Any]:
        keep = np.isin(self.speakers, speakers) & ((self.labels >= 0) if labelled else True)
        return np.flatnonzero(keep)

    def by_speaker(self) -> dict[str, NDArray[Any]]:
        return {s: np.flatnonzero(self.speakers == s) for s in np.unique(self.speakers)}


def load_corpus(calm: str, variants: tuple[str, ...] = ("studio", *TRAIN_VARIANTS, EVAL_VARIANT)) -> Corpus:
    """RAVDESS and FSDD turns and their cached pooled statistics in every variant."""
    clips, turns = ravdess_clips(), fsdd_turns()
    labels = [
        LABEL_INDEX[label_of(c.emotion, calm) or "neutral"] if label_of(c.emotion, calm) else UNLABELLED for c in clips
    ]
    stats = {v: np.concatenate([extract_pooled(v, clips), extract_pooled(v, turns)]) for v in variants}
    return Corpus(
        sources=[*clips, *turns],
        corpus=np.array(["ravdess"] * len(clips) + ["fsdd"] * len(turns)),
        speakers=np.array([c.speaker for c in clips] + [f"fsdd-{t.speaker}" for t in turns]),
        labels=np.array(labels + [LABEL_INDEX["neutral"]] * len(turns)),
        calm=np.array([c.emotion in ("neutral", "calm") for c in clips] + [True] * len(turns)),
        stats=stats,
    )


def fold_speakers(corpus: Corpus, n_folds: int) -> list[list[str]]:
    """Held-out speakers of each fold: 4 RAVDESS actors, and for the first folds one FSDD speaker each."""
    fsdd = sorted({s for s in corpus.speakers if s.startswith("fsdd-")})
    return [
        [f"ravdess-{a:02d}" for a in actors] + ([fsdd[k]] if k < len(fsdd) else [])
        for k, actors in enumerate(actor_folds(n_folds))
    ]


def baseline_of(
    corpus: Corpus, i: int, variant: str, pool: NDArray[Any], k: int, rng: np.random.Generator
) -> NDArray[Any] | None:
    """Mean statistics of `k` turns drawn from `pool` (never turn `i`), or None when there are none."""
    others = pool[pool != i]
    if k <= 0 or len(others) == 0:
        return None
    chosen = rng.choice(others, size=min(k, len(others)), replace=False)
    return np.asarray(corpus.stats[variant][chosen].mean(axis=0))


# One training draw: a turn's statistics, its baseline (None: a first turn) and its label.
TurnSample = tuple[NDArray[Any], NDArray[Any] | None, int]


class TurnSet(Dataset[TurnSample]):
    """Training turns; each draw picks a channel and a baseline from the same speaker's turns in the set.

    Every turn of `fixed` is drawn once an epoch; then, for each (turns, n) of `sampled`,
    n random turns of that pool (FSDD's digit strings, many and alike, and RAVDESS's acted
    calm when it counts as neutral: a share of each per epoch).
    """

    def __init__(
        self, corpus: Corpus, fixed: NDArray[Any], sampled: list[tuple[NDArray[Any], int]], hp: dict[str, Any]
    ) -> None:
        self.corpus, self.fixed = corpus, fixed
        self.sampled = [(pool, n) for pool, n in sampled if len(pool) and n > 0]
        self.draws = np.concatenate([[k] * n for k, (_, n) in enumerate(self.sampled)] + [[]]).astype(int)
        every = np.concatenate([fixed, *(pool for pool, _ in self.sampled)]).astype(int)
        speakers = list(np.unique(corpus.speakers[every]))
        allowed = np.zeros(len(corpus.labels), dtype=bool)
        allowed[corpus.where(speakers, labelled=False)] = True
        self.pools = {s: idx[allowed[idx]] for s, idx in corpus.by_speaker().items()}
        self.calm_pools = {s: idx[corpus.calm[idx]] for s, idx in self.pools.items()}
        self.hp = hp
        self.rng = np.random.default_rng(int(hp["seed"]))

    def __len__(self) -> int:
        return len(self.fixed) + len(self.draws)

    def __getitem__(self, n: int) -> TurnSample:
        hp, rng = self.hp, self.rng
        if n < len(self.fixed):
            i = int(self.fixed[n])
        else:
            i = int(rng.choice(self.sampled[self.draws[n - len(self.fixed)]][0]))
        phone = rng.random() >= float(hp["studio_prob"]) and len(TRAIN_VARIANTS) > 0
        variant = str(rng.choice(TRAIN_VARIANTS)) if phone else "studio"
        speaker = self.corpus.speakers[i]
        pool = self.calm_pools[speaker] if rng.random() < float(hp["calm_start_prob"]) else self.pools[speaker]
        k = 0 if rng.random() < float(hp["first_turn_prob"]) else int(rng.integers(1, int(hp["baseline_max"]) + 1))
        baseline = baseline_of(self.corpus, i, variant, pool, k, rng)
        return self.corpus.stats[variant][i], baseline, int(self.corpus.labels[i])


@dataclass
class Batch:
    stats: torch.Tensor
    baseline: torch.Tensor
    has_baseline: torch.Tensor
    labels: torch.Tensor


def collate(items: list[tuple[NDArray[Any], NDArray[Any] | None, int]]) -> Batch:
    stats = np.stack([s for s, _, _ in items]).astype(np.float32)
    base = np.stack([s if b is None else b for s, b, _ in items]).astype(np.float32)
    has = torch.tensor([b is not None for _, b, _ in items], dtype=torch.float32)
    return Batch(torch.from_numpy(stats), torch.from_numpy(base), has, torch.tensor([y for _, _, y in items]))


class VoiceBrain(sb.Brain):
    """The head's training loop: a turn beside its baseline -> logits, cross-entropy with label smoothing."""

    def compute_forward(self, batch: Batch, stage: sb.Stage) -> torch.Tensor:
        logits: torch.Tensor
        logits, _ = self.modules.head(batch.stats, batch.baseline, batch.has_baseline)
        return logits

    def compute_objectives(self, predictions: torch.Tensor, batch: Batch, stage: sb.Stage) -> torch.Tensor:
        loss: torch.Tensor = self.hparams.loss(predictions, batch.labels)
        return loss

    def on_fit_start(self) -> None:
        super().on_fit_start()
        self.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(self.optimizer, T_max=self.hparams.epochs)

    def on_stage_end(self, stage: sb.Stage, stage_loss: float, epoch: int | None = None) -> None:
        if stage == sb.Stage.TRAIN:
            self.scheduler.step()
            if epoch is not None and epoch % 10 == 0:
                log_event(logger, logging.INFO, "voice.train.epoch", epoch=epoch, loss=round(stage_loss, 4))


def train_head(corpus: Corpus, index: NDArray[Any], hparams_path: Path, overrides: dict[str, Any]) -> VoiceHead:
    """A fresh head from the hparams, fitted to the statistics of `index`'s speakers and trained on `index`."""
    hp = load_hparams(hparams_path, overrides)
    torch.manual_seed(int(hp["seed"]))
    head: VoiceHead = hp["modules"]["head"]
    speakers = list(np.unique(corpus.speakers[index]))
    seen = corpus.where(speakers, labelled=False)
    head.fit_distribution(np.concatenate([corpus.stats[v][seen] for v in ("studio", *TRAIN_VARIANTS)]))
    fsdd = corpus.corpus[index] == "fsdd"
    acted_calm = np.array([getattr(corpus.sources[int(i)], "emotion", "") == "calm" for i in index])
    sampled = [
        (index[fsdd], int(fsdd.sum() * float(hp["fsdd_share"]))),
        (index[acted_calm], int(acted_calm.sum() * float(hp["calm_share"]))),
    ]
    data = TurnSet(corpus, index[~fsdd & ~acted_calm], sampled, hp)
    loader = DataLoader(data, batch_size=int(hp["batch_size"]), shuffle=True, collate_fn=collate)
    brain = VoiceBrain(modules=hp["modules"], opt_class=hp["opt_class"], hparams=hp, run_opts={"device": "cpu"})
    brain.fit(hp["epoch_counter"], loader, progressbar=False)
    return head.eval()


def eval_baselines(
    corpus: Corpus, index: NDArray[Any], variant: str, mode: str, seed: int
) -> list[NDArray[Any] | None]:
    """The baseline each held-out turn is read against in `mode`, drawn reproducibly from its own speaker."""
    if mode == "first":
        return [None] * len(index)
    rng = np.random.default_rng(seed)
    by_speaker = corpus.by_speaker()
    pools = {s: idx[corpus.calm[idx]] if mode == "calm_start" else idx for s, idx in by_speaker.items()}
    return [baseline_of(corpus, int(i), variant, pools[corpus.speakers[i]], EVAL_BASELINE_TURNS, rng) for i in index]


@torch.inference_mode()
def read_turns(
    head: VoiceHead, stats: NDArray[Any], baselines: list[NDArray[Any] | None]
) -> tuple[NDArray[Any], NDArray[Any]]:
    """Raw logits (before temperature) and distances of turns read against their baselines."""
    x = torch.from_numpy(np.asarray(stats, dtype=np.float32))
    base = torch.from_numpy(np.stack([s if b is None else b for s, b in zip(stats, baselines)]).astype(np.float32))
    has = torch.tensor([b is not None for b in baselines], dtype=torch.float32)
    logits, _ = head(x, base, has)
    return logits.numpy(), head.distance(x).numpy()


@dataclass
class OutOfFold:
    """Every labelled turn's logits and distance from the fold head that never heard its speaker."""

    index: NDArray[Any]  # rows of the corpus
    logits: dict[tuple[str, str], NDArray[Any]]  # (variant, mode) -> (n, 7)
    distance: dict[str, NDArray[Any]]  # variant -> (n,)


def cross_validate(
    corpus: Corpus, hparams_path: Path, overrides: dict[str, Any], heads: list[VoiceHead] | None = None
) -> tuple[OutOfFold, list[dict[str, Any]]]:
    """Out-of-fold readings and per-fold headlines; each fold's head is appended to `heads` when given."""
    hp = load_hparams(hparams_path, overrides)
    index = np.flatnonzero(corpus.labels >= 0)
    row = {int(i): n for n, i in enumerate(index)}
    oof = OutOfFold(
        index,
        {(v, m): np.full((len(index), len(LABELS)), np.nan) for v in EVAL_VARIANTS for m in MODES},
        {v: np.full(len(index), np.nan) for v in EVAL_VARIANTS},
    )
    folds = []
    for k, held in enumerate(fold_speakers(corpus, int(hp["folds"]))):
        test = corpus.where(held)
        train = np.setdiff1d(index, corpus.where(held, labelled=False))
        head = train_head(corpus, train, hparams_path, overrides)
        if heads is not None:
            heads.append(head)
        rows = np.array([row[int(i)] for i in test])
        fold: dict[str, Any] = {"fold": k, "speakers": held, "n": int(len(test))}
        for variant in EVAL_VARIANTS:
            for mode in MODES:
                baselines = eval_baselines(corpus, test, variant, mode, seed=100 * k + MODES.index(mode))
                logits, distance = read_turns(head, corpus.stats[variant][test], baselines)
                oof.logits[(variant, mode)][rows] = logits
                oof.distance[variant][rows] = distance
            rav = corpus.corpus[test] == "ravdess"
            logits = oof.logits[(variant, "call")][rows][rav]
            fold[variant] = headline(evaluate(names(corpus.labels[test][rav]), names(logits.argmax(axis=1))))
        log_event(logger, logging.INFO, "voice.cv.fold", **fold)
        folds.append(fold)
    return oof, folds


def fit_calibration(corpus: Corpus, oof: OutOfFold) -> dict[str, Any]:
    """Temperature, confidence scales and familiar distance from held-out speakers' readings (both corpora)."""
    y = corpus.labels[oof.index]
    logits = np.concatenate([oof.logits[(v, m)] for v in EVAL_VARIANTS for m in ("first", "call")])
    temperature = fit_temperature(logits, np.tile(y, 2 * len(EVAL_VARIANTS)))
    scales = []
    for mode in ("first", "call"):
        probs = softmax(np.concatenate([oof.logits[(v, mode)] for v in EVAL_VARIANTS]) / temperature)
        correct = probs.argmax(axis=1) == np.tile(y, len(EVAL_VARIANTS))
        scales.append(float(correct.mean() / probs.max(axis=1).mean()))
    distance = np.concatenate([oof.distance[v] for v in EVAL_VARIANTS])
    familiar, median = np.quantile(distance, [0.95, 0.5])
    return {
        "temperature": float(temperature),
        "confidence_scale": [round(s, 4) for s in scales],
        "familiar": [round(float(familiar), 4), round(float(familiar - median), 4)],
    }


def save_oof(corpus: Corpus, oof: OutOfFold, runs: Path) -> None:
    """Out-of-fold logits (before temperature): RAVDESS for the fusion recipe (`logits_<variant>` are turns read
    in a call, `logits_<variant>_first` as first turns), FSDD for the calm-speech report."""
    runs.mkdir(parents=True, exist_ok=True)
    for name, which in ((OOF_FILE, "ravdess"), (OOF_CALM_FILE, "fsdd")):
        keep = corpus.corpus[oof.index] == which
        rows = oof.index[keep]
        sources = [corpus.sources[int(i)] for i in rows]
        logits = {}
        for v in EVAL_VARIANTS:
            logits[f"logits_{v}"] = oof.logits[(v, "call")][keep].astype(np.float32)
            for mode in ("first", "calm_start"):
                logits[f"logits_{v}_{mode}"] = oof.logits[(v, mode)][keep].astype(np.float32)
            logits[f"distance_{v}"] = oof.distance[v][keep].astype(np.float32)
        np.savez(
            runs / name,
            paths=np.array([Path(s.key.split("|")[0]).name for s in sources]),
            actors=np.array([getattr(s, "actor", 0) for s in sources]),
            speakers=corpus.speakers[rows],
            labels=corpus.labels[rows],
            **logits,
        )
    log_event(logger, logging.INFO, "voice.cv.oof_saved", path=str(runs / OOF_FILE))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hparams", type=Path, default=HERE / "hparams.yaml")
    parser.add_argument("--calm", choices=("neutral", "skip"), default=None, help="override hparams 'calm'")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="more hparams overrides")
    parser.add_argument("--no-export", action="store_true", help="cross-validate only")
    parser.add_argument("--out", type=Path, default=DEFAULT_HEAD)
    parser.add_argument("--runs-dir", type=Path, default=RUNS)
    parser.add_argument(
        "--fold-heads", action="store_true", help="also save each fold's head under RUNS/calm-*/fold-heads/"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)  # the machine is shared; the head is small
    overrides = {k: v for k, v in (("calm", args.calm), ("epochs", args.epochs)) if v is not None}
    overrides.update({k: yaml.safe_load(v) for k, v in (item.split("=", 1) for item in args.set)})
    hp = load_hparams(args.hparams, overrides)
    runs = args.runs_dir / f"calm-{hp['calm']}"
    started = time.perf_counter()
    corpus = load_corpus(hp["calm"])
    fold_heads: list[VoiceHead] = []
    oof, folds = cross_validate(corpus, args.hparams, overrides, fold_heads if args.fold_heads else None)
    save_oof(corpus, oof, runs)
    calibration = fit_calibration(corpus, oof)
    # Plain JSON types only: the checkpoint is read back with torch's weights-only loader.
    cv = json.loads(json.dumps({"folds": folds, **cv_report(corpus, oof, calibration, runs)}, default=float))
    (runs / "cv.json").write_text(json.dumps(cv, indent=2) + "\n")
    if args.fold_heads:
        save_fold_heads(fold_heads, folds, hp, calibration, cv, runs / "fold-heads", started)
    if args.no_export:
        print(render(cv, None))
        return
    held = [f"ravdess-{a:02d}" for a in HELD_OUT.ravdess_actors] + [f"fsdd-{s}" for s in HELD_OUT.fsdd_speakers]
    train = np.setdiff1d(np.flatnonzero(corpus.labels >= 0), corpus.where(held, labelled=False))
    head = train_head(corpus, train, args.hparams, overrides)
    info = export_info(hp, calibration, cv, HELD_OUT, started)
    save_head(head, hp, calibration, info, args.out)
    # The exported head on what it never heard (held-out speakers, calm read speech, synthetic voices), in its sidecar.
    probes = json.loads(json.dumps(probe_report(args.out), default=float))
    info["probes"] = probes
    save_head(head, hp, calibration, info, args.out)
    print(render(cv, probes))
    log_event(logger, logging.INFO, "voice.export.done", path=str(args.out), **calibration)


def export_info(
    hp: dict[str, Any], calibration: dict[str, Any], cv: dict[str, Any], held: HeldOut, started: float
) -> dict[str, Any]:
    """The sidecar's description of a head: data, the speakers it never heard, settings, calibration, CV."""
    settings = {k: hp[k] for k in ("seed", "calm", "folds", "epochs", "batch_size", "lr", "weight_decay")}
    settings.update({k: hp[k] for k in ("label_smoothing", "studio_prob", "first_turn_prob", "calm_start_prob")})
    settings.update({k: hp[k] for k in ("baseline_max", "fsdd_share", "calm_share")})
    settings["neutral_offset"] = float(hp.get("neutral_offset", 0.0))
    return {
        "version": VERSION,
        "encoder": ENCODER_NAME,
        "data": "RAVDESS speech, 20 actors (CC BY-NC-SA 4.0); FSDD, 3 speakers, digit strings as neutral turns "
        "(CC BY-SA 4.0)",
        "held_out": dataclasses.asdict(held),
        "settings": settings,
        "calibration": calibration,
        "cv": cv,
        "train_seconds": round(time.perf_counter() - started, 1),
    }


def save_head(
    head: VoiceHead, hp: dict[str, Any], calibration: dict[str, Any], info: dict[str, Any], out: Path
) -> None:
    """A trained head as the runtime loads it: the neutral offset, the calibration, the sidecar."""
    with torch.no_grad():  # chosen on the folds' out-of-fold logits (issue 30): acted calm read upset far less often
        last = head.classify[-1]
        assert isinstance(last, torch.nn.Linear)
        bias = last.bias.detach().clone()
        bias[LABEL_INDEX["neutral"]] += float(hp.get("neutral_offset", 0.0))
        head.confidence_scale.copy_(torch.tensor(calibration["confidence_scale"]))
        head.familiar.copy_(torch.tensor(calibration["familiar"]))
    state = {k: v.detach().clone() for k, v in head.state_dict().items()}
    state[_last_bias_key(head)] = bias
    arch = {"kind": HEAD_KIND, **dict(hp["arch"])}
    VoiceCheckpoint(state, LABELS, calibration["temperature"], arch, info).save(out)


def _last_bias_key(head: VoiceHead) -> str:
    last = head.classify[-1]
    return next(f"classify.{n}.bias" for n, module in enumerate(head.classify) if module is last)


def save_fold_heads(
    heads: list[VoiceHead],
    folds: list[dict[str, Any]],
    hp: dict[str, Any],
    calibration: dict[str, Any],
    cv: dict[str, Any],
    out: Path,
    started: float,
) -> None:
    """Each fold's head as a runtime checkpoint naming the speakers it never heard, so calls can be placed by
    every RAVDESS actor through a head that never heard them (`python -m bench.quality_calls --fold-heads`)."""
    for head, fold in zip(heads, folds):
        speakers = list(fold["speakers"])
        held = HeldOut(
            ravdess_actors=tuple(int(s.split("-")[1]) for s in speakers if s.startswith("ravdess-")),
            fsdd_speakers=tuple(s.split("-", 1)[1] for s in speakers if s.startswith("fsdd-")),
        )
        path = out / f"fold-{fold['fold']}" / "voice_head.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_head(head, hp, calibration, export_info(hp, calibration, cv, held, started), path)
        log_event(logger, logging.INFO, "voice.fold_head.saved", path=str(path), held_out=speakers)


if __name__ == "__main__":
    main()
