"""Refit the text head on the shipped fine-tuned encoder so that neutral is the common case it is (issue 18).

    python -m training.recipes.text.head [--extract-only] [--out models/weights/text_lora.pt]

The shipped model read 29 % of plain DailyDialog turns as an emotion: its
training mix (MELD x2 + GoEmotions, class weights of inverse frequency) makes
neutral about a third of what it sees, while in everyday conversation (and in a
contact centre) four turns in five are plain. This recipe keeps the fine-tuned
encoder (LoRA delta) exactly as shipped and refits only the 2-layer head on
cached pooled features, read in context as production reads turns:

- train: MELD train, GoEmotions train (same exclusions as stage 2) and the
  training part of the DailyDialog split (`dailydialog_split`), with
  DailyDialog repeated so that it weighs like a corpus of its own;
- loss: cross-entropy, class weights of inverse frequency to a small power
  (grid), then a per-class logit offset (neutral only, grid) folded into the
  head's last bias: a prior correction toward the real share of plain turns;
- `--tune-offsets N`: the N best admissible candidates get a logit offset for
  every class, by coordinate ascent on the same pooled objective under the same
  constraints (macro-F1 rewards saying a rare class as often as it is right,
  which a head trained for likelihood does not); `--seeds K` trains K heads per
  configuration and folds them into one head with their mean logits;
- `--dd-folds K`: the DailyDialog train and selection parts pooled and cut into K
  folds by dialogue; per configuration K heads, each trained without one fold, are
  folded into the shipped head (their mean logits), and the DailyDialog part of
  the objective is their out-of-fold macro-F1 over the whole pool. Selection and
  the offsets then read three times the everyday turns (the selection part alone
  holds no fearful or disgusted turn), and the head learns from all of them;
- `--dair fear,sadness,anger`: dair-ai/emotion's sentences of those classes as
  a further training corpus (a grid of weights, `--dair-repeat`);
- `--teacher teacher.npz`: a larger fine-tuned model's logits on the training
  turns (`training.recipes.text.distill`) matched beside the labels, with weight
  `--distill-weight` at `--distill-temperature` (knowledge distillation);
- selection (never one corpus alone): among the configurations that keep
  DailyDialog-selection neutral recall >= `--min-neutral-recall`, MELD dev
  weighted-F1 >= `--min-meld` and the contact-centre sentences (the 48 of
  issue 4, as a guard, never an objective) passing issue 4's test (>= 0.90 by
  family, >= 43 / 48 by top label, at most one polarity flip), the best mean of
  DailyDialog-selection macro-F1, MELD dev weighted-F1 and GoEmotions dev
  macro-F1;
- reported, never selected on: the DailyDialog held-out part, MELD test,
  GoEmotions test, the whole contact-centre suite.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.checkpoint import Checkpoint
from models.emotion import FAMILY_OF_LABEL, LABEL_INDEX, LABELS
from models.text import (
    DEFAULT_MODEL,
    MAX_TOKENS,
    EmotionHead,
    TextEmotionNet,
    collate,
    encode_turn,
    load_tokenizer,
    mean_pool,
    net_from_checkpoint,
    reads_segments,
)
from training import data
from training.metrics import confusion_f1, evaluate
from training.recipes.calibration import fit_temperature, softmax
from training.recipes.text.teacher import Teacher, teacher_logits, turn_key

CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "text-head"
CONTACT_CENTRE = Path(__file__).resolve().parents[3] / "tests" / "models" / "data" / "contact_centre.csv"
# The 48 sentences of issue 4 are the selection guard; rows added after them are reported only.
GUARD_ROWS = 48
SPLIT_SEED = 18
SPLIT_SHARES = {"train": 0.4, "selection": 0.2, "test": 0.4}
NEUTRAL = LABEL_INDEX["neutral"]


def dailydialog_split(seed: int = SPLIT_SEED) -> dict[str, list[data.TextSample]]:
    """DailyDialog validation split by dialogue (seeded permutation of dialogue ids): train / selection / test.

    Whole dialogues go to one part, so no test turn's context or speaker pair was seen in training.
    """
    samples = data.dailydialog_validation()
    ids = sorted({s.dialogue_id for s in samples if s.dialogue_id}, key=lambda d: int(d.split("-")[1]))
    order = np.random.default_rng(seed).permutation(len(ids))
    cut_train = int(len(ids) * SPLIT_SHARES["train"])
    cut_sel = cut_train + int(len(ids) * SPLIT_SHARES["selection"])
    part_of = {}
    for rank, i in enumerate(order):
        part_of[ids[i]] = "train" if rank < cut_train else "selection" if rank < cut_sel else "test"
    parts: dict[str, list[data.TextSample]] = {name: [] for name in SPLIT_SHARES}
    for s in samples:
        parts[part_of[str(s.dialogue_id)]].append(s)
    return parts


def dailydialog_folds(k: int, seed: int = SPLIT_SEED) -> tuple[list[data.TextSample], NDArray[Any]]:
    """The train and selection parts pooled (in that order, as their features are) and each row's fold, by dialogue."""
    parts = dailydialog_split()
    pool = parts["train"] + parts["selection"]
    ids = sorted({str(s.dialogue_id) for s in pool}, key=lambda d: int(d.split("-")[1]))
    order = np.random.default_rng(seed + 1).permutation(len(ids))
    fold_of = {ids[i]: rank % k for rank, i in enumerate(order)}
    return pool, np.array([fold_of[str(s.dialogue_id)] for s in pool])


def write_manifest(samples: Sequence[data.TextSample], path: Path) -> Path:
    """A `python -m models.evaluate text` manifest (text,label,dialogue_id,turn): rows are read in context."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label", "dialogue_id", "turn"])
        writer.writerows([s.text, s.label, s.dialogue_id, s.turn] for s in samples)
    return path


def contact_centre_rows() -> list[dict[str, str]]:
    with CONTACT_CENTRE.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def pooled(net: TextEmotionNet, tokenizer: Any, encoded: list[dict[str, Any]], batch_size: int = 128) -> NDArray[Any]:
    """The head's input (message tokens pooled, context through attention), batched by length."""
    return encoder_pooled(net.encoder, tokenizer, encoded, batch_size)


@torch.inference_mode()
def encoder_pooled(encoder: Any, tokenizer: Any, encoded: list[dict[str, Any]], batch_size: int = 128) -> NDArray[Any]:
    """An encoder's last layer mean-pooled over the message's tokens (segment 0), batched by length."""
    segments = reads_segments(encoder)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    out = np.zeros((len(encoded), encoder.config.hidden_size), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        b = collate(tokenizer, [encoded[i] for i in idx])
        kwargs = {"token_type_ids": b["token_type_ids"]} if segments else {}
        hidden = encoder(input_ids=b["input_ids"], attention_mask=b["attention_mask"], **kwargs).last_hidden_state
        out[idx] = mean_pool(hidden, b["attention_mask"] * (b["token_type_ids"] == 0)).numpy()
    return out


def corpora(goemotions_share: float = 1.0, dair_labels: tuple[str, ...] = ()) -> dict[str, list[data.TextSample]]:
    exclude = ("approval", "desire")  # as stage 2: the Ekman grouping files requests and confirmations under joy
    dd = dailydialog_split()
    cc = [data.TextSample(r["text"], "neutral") for r in contact_centre_rows()]  # labels unused: scored by family
    extra = {"dair_train": data.dair_emotion("train", dair_labels)} if dair_labels else {}
    return {
        **extra,
        "meld_train": data.meld("train"),
        "goemotions_train": share(data.goemotions("train", exclude=exclude), goemotions_share),
        "dd_train": dd["train"],
        "meld_dev": data.meld("dev"),
        "goemotions_dev": data.goemotions("dev", exclude=exclude),
        "dd_selection": dd["selection"],
        "dd_test": dd["test"],
        "meld_test": data.meld("test"),
        "goemotions_test": data.goemotions("test"),
        "contact_centre": cc,
    }


def share(samples: list[data.TextSample], fraction: float) -> list[data.TextSample]:
    """A fixed random `fraction` of `samples` in their order (2 shared cores: fewer features to compute)."""
    if fraction >= 1.0:
        return samples
    keep = np.random.default_rng(SPLIT_SEED).permutation(len(samples))[: int(len(samples) * fraction)]
    return [samples[i] for i in sorted(keep)]


def features(
    weights: Path,
    turns: int,
    goemotions_share: float = 1.0,
    dair_labels: tuple[str, ...] = (),
    pool: Callable[[Any, Any, list[dict[str, Any]]], NDArray[Any]] | None = None,
    prefix: str = "",
    load: Callable[[], tuple[Any, Any]] | None = None,
) -> dict[str, dict[str, NDArray[Any]]]:
    """Pooled features and labels of every corpus, cached by the weights' hash and the texts.

    `pool` reads the encoder's states into features (default: `pooled`, what the
    shipped head reads); another pool caches under its own file `prefix`.
    `load` gives (tokenizer, net) of another encoder (default: the shipped
    checkpoint's net); `weights` is then the file whose bytes key its cache.
    """
    pool = pool or pooled
    load = load or (lambda: (load_tokenizer(), net_from_checkpoint(Checkpoint.load(weights))))
    key = hashlib.sha256(weights.read_bytes()).hexdigest()[:12]
    tokenizer, net = None, None
    out = {}
    for name, samples in corpora(goemotions_share, dair_labels).items():
        texts = "\n".join(f"{s.dialogue_id}|{s.turn}|{s.text}" for s in samples)
        path = CACHE / f"{prefix}{name}-{key}-{hashlib.sha256(texts.encode()).hexdigest()[:12]}.npz"
        if not path.exists():
            if net is None:
                tokenizer, net = load()
            t0 = time.perf_counter()
            ctx = data.contexts(samples, turns)
            encoded = [encode_turn(tokenizer, " ".join(s.text.split()), c, MAX_TOKENS) for s, c in zip(samples, ctx)]
            x = pool(net, tokenizer, encoded)
            y = np.array([LABEL_INDEX[s.label] for s in samples])
            path.parent.mkdir(parents=True, exist_ok=True)
            np.savez(path, x=x, y=y)
            print(f"{name}: {len(samples)} features in {time.perf_counter() - t0:.0f} s", flush=True)
        loaded = np.load(path)
        out[name] = {"x": loaded["x"], "y": loaded["y"]}
    return out


def teacher_targets(
    path: Path, turns: int, goemotions_share: float = 1.0, dair_labels: tuple[str, ...] = ()
) -> dict[str, NDArray[Any]]:
    """A distillation teacher's logits on the training corpora's turns, read in context as the features are."""
    out = {}
    for name, samples in corpora(goemotions_share, dair_labels).items():
        if name in ("meld_train", "goemotions_train", "dd_train"):
            keys = [turn_key(s, c) for s, c in zip(samples, data.contexts(samples, turns))]
            out[name] = teacher_logits(path, keys)[0]
    return out


def train_head(
    x: NDArray[Any],
    y: NDArray[Any],
    power: float,
    epochs: Sequence[int],
    seed: int,
    teacher: Teacher | None = None,
    classes: int = len(LABELS),
) -> dict[int, dict[str, Any]]:
    """Train a fresh head on features; the head's state after each epoch in `epochs`.

    `teacher`: a larger model's logits on the same rows, matched besides the labels (distillation).
    `classes`: the head's outputs (the sentiment head's three families).
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    head = EmotionHead(dim=x.shape[1], classes=classes)  # 384 for the shipped pooling; wider for `alternatives`
    counts = np.bincount(y, minlength=classes).astype(float)
    w = 1.0 / np.maximum(counts, 1.0) ** power
    loss_fn = nn.CrossEntropyLoss(weight=torch.tensor(w / (w * counts).sum() * counts.sum(), dtype=torch.float32))
    opt = torch.optim.AdamW(head.parameters(), lr=2e-3, weight_decay=0.01)
    last = max(epochs)
    steps = last * int(np.ceil(len(y) / 256))
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y).long()
    kept = {}
    for epoch in range(1, last + 1):
        head.train()
        order = torch.from_numpy(rng.permutation(len(y)))
        for start in range(0, len(y), 256):
            idx = order[start : start + 256]
            out = head(xt[idx])
            loss = loss_fn(out, yt[idx])
            if teacher is not None:
                loss = (1 - teacher.weight) * loss + teacher.weight * teacher.loss(out, idx.numpy())
            opt.zero_grad()
            loss.backward()
            opt.step()
            schedule.step()
        if epoch in epochs:
            kept[epoch] = {k: v.detach().clone() for k, v in head.state_dict().items()}
    return kept


def folded(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Heads trained from several seeds as one head whose logits are their mean, exactly.

    Side by side hidden units, second layers scaled by 1/K: one wider head (the
    checkpoint's `hidden`), so inference code is unchanged and the encoder's cost
    dominates as before.
    """
    k = len(states)
    if k == 1:
        return states[0]
    return {
        "net.1.weight": torch.cat([s["net.1.weight"] for s in states], 0),
        "net.1.bias": torch.cat([s["net.1.bias"] for s in states], 0),
        "net.4.weight": torch.cat([s["net.4.weight"] / k for s in states], 1),
        "net.4.bias": torch.stack([s["net.4.bias"] for s in states]).mean(0),
    }


def head_for(state: dict[str, Any]) -> EmotionHead:
    width, dim = state["net.1.weight"].shape  # folded seeds: wider; `alternatives pooling`: longer input
    head = EmotionHead(dim=int(dim), hidden=int(width), classes=int(state["net.4.weight"].shape[0]))
    head.load_state_dict(state)
    return head


@torch.inference_mode()
def logits_with(state: dict[str, Any], x: NDArray[Any], offset: NDArray[Any] | None = None) -> NDArray[Any]:
    head = head_for(state)
    out: NDArray[Any] = head.eval()(torch.from_numpy(x)).numpy()
    return out + offset if offset is not None else out


def with_offset(state: dict[str, Any], offset: NDArray[Any]) -> dict[str, Any]:
    """The head with a per-class logit offset folded into its last bias (what is shipped)."""
    out = {k: v.clone() for k, v in state.items()}
    out["net.4.bias"] += torch.from_numpy(offset).float()
    return out


def family_read(probs: NDArray[Any]) -> list[str]:
    """Per row, the family holding the most probability (Toneline's reading, `EmotionEstimate.family`)."""
    names = ("negative", "neutral", "positive")
    mass = np.stack([probs[:, [LABEL_INDEX[lab] for lab in LABELS if FAMILY_OF_LABEL[lab] == f]].sum(1) for f in names])
    return [names[i] for i in mass.argmax(0)]


def scores(
    logits: dict[str, NDArray[Any]], feats: dict[str, Any], temperature: float, families: Sequence[str]
) -> dict[str, Any]:
    """Everything selection and the card read, for one candidate."""

    def report(name: str) -> Any:
        y = feats[name]["y"]
        return evaluate([LABELS[i] for i in y], [LABELS[i] for i in logits[name].argmax(1)])

    out: dict[str, Any] = {}
    for name in ("dd_selection", "dd_test", "meld_dev", "meld_test", "goemotions_dev", "goemotions_test"):
        r = report(name)
        out[name] = {
            **r.headline(),
            "per_class": {k: {m: round(v[m], 3) for m in ("precision", "recall")} for k, v in r.per_class.items()},
        }
        y, pred = feats[name]["y"], logits[name].argmax(1)
        neg = np.array([FAMILY_OF_LABEL[lab] == "negative" for lab in LABELS])
        plain = y == NEUTRAL
        out[name]["neutral_recall"] = round(float((pred[plain] == NEUTRAL).mean()), 4)
        out[name]["neutral_read_negative"] = round(float(neg[pred[plain]].mean()), 4)
        out[name]["negative_recall"] = round(float(neg[pred[neg[y]]].mean()), 4) if neg[y].any() else None
    return {**out, **contact_centre(logits["contact_centre"], temperature, families)}


def contact_centre(logits: NDArray[Any], temperature: float, families: Sequence[str]) -> dict[str, Any]:
    """Issue 4's test on its 48 guard sentences (family, top label, polarity flips) and the whole suite by family."""
    probs = softmax(logits / temperature)
    read = family_read(probs)
    hits = np.array([r == f for r, f in zip(read, families)])
    top_hits = np.array([FAMILY_OF_LABEL[LABELS[i]] == f for i, f in zip(probs.argmax(1), families)])
    flips = [i for i in range(GUARD_ROWS) if {read[i], families[i]} == {"negative", "positive"}]
    return {
        "contact_centre_guard": round(float(hits[:GUARD_ROWS].mean()), 4),
        "contact_centre_guard_top_label": int(top_hits[:GUARD_ROWS].sum()),
        "contact_centre_guard_flips": len(flips),
        "contact_centre_all": round(float(hits.mean()), 4),
        "contact_centre_n": int(len(hits)),
    }


def objective(s: dict[str, Any]) -> float:
    return float(s["dd_selection"]["macro_f1"] + s["meld_dev"]["weighted_f1"] + s["goemotions_dev"]["macro_f1"]) / 3


def admissible(s: dict[str, Any], args: argparse.Namespace) -> bool:
    return bool(
        s["dd_selection"]["neutral_recall"] >= args.min_neutral_recall
        and s["meld_dev"]["weighted_f1"] >= args.min_meld
        # The contact-centre test of issue 4, whole: family >= 0.9, top label >= 43 / 48, at most one flip.
        and s["contact_centre_guard"] >= 0.9
        and s["contact_centre_guard_top_label"] >= 43
        and s["contact_centre_guard_flips"] <= 1
    )


SELECTION = ("meld_dev", "goemotions_dev", "dd_selection")


def candidate(
    state: dict[str, Any],
    offset: NDArray[Any],
    feats: dict[str, Any],
    families: Sequence[str],
    oof: NDArray[Any] | None = None,
) -> tuple[float, dict[str, Any]]:
    """Temperature and scores of a head; `oof`: the DailyDialog pool's out-of-fold logits, read in place of its own."""
    logits = {name: logits_with(state, f["x"], offset) for name, f in feats.items()}
    if oof is not None:
        logits["dd_selection"] = oof + offset
    temperature = fit_temperature(
        np.concatenate([logits[n] for n in SELECTION]), np.concatenate([feats[n]["y"] for n in SELECTION])
    )
    return temperature, scores(logits, feats, temperature, families)


def mixed(feats: dict[str, Any], repeat: int, dair_repeat: int, key: str, dd: NDArray[Any] | None = None) -> Any:
    """One array (`key`: x, y or a teacher's t) of the training rows: MELD x2, GoEmotions, DailyDialog x`repeat`
    (the train part, or the pool rows `dd`), dair."""
    parts = ["meld_train"] * 2 + ["goemotions_train"] + ["dair_train"] * dair_repeat
    own = feats["dd_train"][key] if dd is None else feats["dd_selection"][key][dd]
    return np.concatenate([*[feats[p][key] for p in parts], *[own] * repeat])


def mix(feats: dict[str, Any], repeat: int, dair_repeat: int, dd: NDArray[Any] | None = None) -> tuple[Any, Any]:
    """Training rows' features and labels (`mixed`)."""
    return mixed(feats, repeat, dair_repeat, "x", dd), mixed(feats, repeat, dair_repeat, "y", dd)


def trained(
    feats: dict[str, Any], repeat: int, dair_repeat: int, power: float, args: argparse.Namespace
) -> dict[int, tuple[dict[str, Any], NDArray[Any] | None]]:
    """Per kept epoch, the (folded) head and, with `--dd-folds`, the pool's out-of-fold logits."""
    if args.dd_folds <= 1:
        x, y = mix(feats, repeat, dair_repeat)
        teacher = None
        if getattr(args, "teacher", None):
            t = mixed(feats, repeat, dair_repeat, "t")
            teacher = Teacher(t, t, args.distill_weight, args.distill_temperature)
        runs = [train_head(x, y, power, args.epochs, args.seed + i, teacher) for i in range(args.seeds)]
        return {epoch: (folded([run[epoch] for run in runs]), None) for epoch in args.epochs}
    fold, fold_ids = args.fold_of, range(args.dd_folds)
    mixes = [mix(feats, repeat, dair_repeat, fold != k) for k in fold_ids]
    runs = [train_head(x, y, power, args.epochs, args.seed + k) for k, (x, y) in zip(fold_ids, mixes)]
    out: dict[int, tuple[dict[str, Any], NDArray[Any] | None]] = {}
    for epoch in args.epochs:
        oof = np.zeros((len(fold), len(LABELS)), dtype=np.float32)
        for k, run in zip(fold_ids, runs):
            oof[fold == k] = logits_with(run[epoch], feats["dd_selection"]["x"][fold == k])
        out[epoch] = (folded([run[epoch] for run in runs]), oof)
    return out


def search(feats: dict[str, Any], families: Sequence[str], args: argparse.Namespace) -> list[dict[str, Any]]:
    """Every (power, DailyDialog weight, epochs, neutral offset) candidate with its scores."""
    results = []
    mixes = [(r, d) for r in args.dd_repeat for d in (args.dair_repeat if args.dair else [0])]
    for repeat, dair_repeat in mixes:
        for power in args.power:
            t0 = time.perf_counter()
            for epoch, (state, oof) in trained(feats, repeat, dair_repeat, power, args).items():
                for shift in args.neutral_offset:
                    offset = np.zeros(len(LABELS), dtype=np.float32)
                    offset[NEUTRAL] = shift
                    temperature, s = candidate(state, offset, feats, families, oof)
                    config = {"dd_repeat": repeat, "power": power, "epochs": epoch, "neutral_offset": shift}
                    if getattr(args, "teacher", None):
                        config["distill"] = {"weight": args.distill_weight, "temperature": args.distill_temperature}
                    if args.seeds > 1:
                        config["seeds"] = args.seeds
                    if args.dd_folds > 1:
                        config["dd_folds"] = args.dd_folds
                    if dair_repeat:
                        config["dair_repeat"] = dair_repeat
                    results.append(
                        {
                            "config": config,
                            "state": with_offset(state, offset),
                            "oof": None if oof is None else oof + offset,
                            "temperature": temperature,
                            "scores": s,
                        }
                    )
                    dd, meld, goemo = s["dd_selection"], s["meld_dev"], s["goemotions_dev"]
                    print(
                        f"{config}: objective {objective(s):.4f}, dd-sel macro-F1 {dd['macro_f1']:.3f} "
                        f"neutral recall {dd['neutral_recall']:.3f}, MELD dev {meld['weighted_f1']:.3f}, "
                        f"GoEmotions dev {goemo['macro_f1']:.3f}, contact-centre {s['contact_centre_guard']:.3f}",
                        flush=True,
                    )
            print(f"  trained in {time.perf_counter() - t0:.0f} s", flush=True)
    return results


def fast_scores(
    logits: dict[str, NDArray[Any]], feats: dict[str, Any], temperature: float, families: Sequence[str]
) -> dict[str, Any]:
    """The numbers `objective` and `admissible` read, without sklearn: offset tuning calls this thousands of times."""
    k = len(LABELS)
    out: dict[str, Any] = {}
    for name in SELECTION:
        y, pred = feats[name]["y"], logits[name].argmax(1)
        r, f1, gold = confusion_f1(np.bincount(y * k + pred, minlength=k * k).reshape(k, k).astype(float))
        present = gold > 0
        out[name] = {
            "macro_f1": float(f1[present].mean()),
            "weighted_f1": float((f1 * gold).sum() / gold.sum()),
            "neutral_recall": float(r[NEUTRAL]),
        }
    return {**out, **contact_centre(logits["contact_centre"], temperature, families)}


OFFSET_GRID = np.round(np.arange(-2.0, 3.01, 0.25), 2)


def best_offset(
    base: dict[str, NDArray[Any]],
    feats: dict[str, Any],
    temperature: float,
    families: Sequence[str],
    args: argparse.Namespace,
) -> NDArray[Any]:
    """A per-class logit offset for `base` (the selection sets' and the guard's logits), by coordinate ascent.

    Steps of `OFFSET_GRID` per class, up to 3 sweeps, on the pooled objective under
    `admissible`; zero where nothing admissible beats it.
    """

    def value(offset: NDArray[Any]) -> float:
        s = fast_scores({n: v + offset for n, v in base.items()}, feats, temperature, families)
        return objective(s) if admissible(s, args) else -1.0

    offset = np.zeros(len(LABELS), dtype=np.float32)
    best = value(offset)
    for _ in range(3):
        moved = False
        for c in range(len(LABELS)):
            for v in OFFSET_GRID:
                trial = offset.copy()
                trial[c] = v
                got = value(trial)
                if got > best + 1e-6:
                    best, offset, moved = got, trial, True
        if not moved:
            break
    return offset


def tuned(
    result: dict[str, Any], feats: dict[str, Any], families: Sequence[str], args: argparse.Namespace
) -> dict[str, Any]:
    """`result` with a per-class logit offset found by coordinate ascent on the pooled objective.

    The head's own prior is one offset (neutral) in the grid; this moves every class's,
    so that a rare class is said as often as the selection sets reward, under the
    same constraints. Only the selection sets and the contact-centre guard are read.
    """
    state, temperature = result["state"], result["temperature"]
    base = {n: logits_with(state, feats[n]["x"]) for n in (*SELECTION, "contact_centre")}
    if result.get("oof") is not None:
        base["dd_selection"] = result["oof"]
    offset = best_offset(base, feats, temperature, families, args)
    temperature, s = candidate(state, offset, feats, families, result.get("oof"))
    config = {**result["config"], "offsets": [round(float(v), 2) for v in offset]}
    print(
        f"tuned {config}: objective {objective(s):.4f} (from {objective(result['scores']):.4f}), "
        f"dd-sel macro-F1 {s['dd_selection']['macro_f1']:.3f}",
        flush=True,
    )
    oof = None if result.get("oof") is None else result["oof"] + offset
    return {"config": config, "state": with_offset(state, offset), "oof": oof, "temperature": temperature, "scores": s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL, help="the shipped delta whose encoder is kept")
    parser.add_argument("--extract-only", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--dd-repeat", type=int, nargs="+", default=[2, 5])
    parser.add_argument("--power", type=float, nargs="+", default=[0.0, 0.25, 0.5])
    parser.add_argument("--epochs", type=int, nargs="+", default=[10, 20, 40])
    parser.add_argument("--neutral-offset", type=float, nargs="+", default=[0.0, 0.5, 1.0, 1.5, 2.0])
    parser.add_argument("--goemotions-share", type=float, default=1.0, help="fixed random share of GoEmotions train")
    parser.add_argument("--dair", default="", help="dair-ai/emotion labels to add to training, e.g. fear,sadness,anger")
    parser.add_argument("--dair-repeat", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--seeds", type=int, default=1, help="heads from this many seeds, folded into one")
    parser.add_argument(
        "--dd-folds",
        type=int,
        default=1,
        help="DailyDialog train+selection parts in K folds: K heads (one seed each, so --seeds is unused), out-of-fold",
    )
    parser.add_argument("--tune-offsets", type=int, default=0, help="tune per-class offsets of the best N candidates")
    parser.add_argument("--teacher", type=Path, default=None, help="distil: a teacher's logits (distill.py) too")
    parser.add_argument("--distill-weight", type=float, default=0.5)
    parser.add_argument("--distill-temperature", type=float, default=2.0)
    parser.add_argument("--min-neutral-recall", type=float, default=0.87)
    parser.add_argument("--min-meld", type=float, default=0.56)
    parser.add_argument("--out", type=Path, default=None, help="write the refitted model here (default: report only)")
    args = parser.parse_args()
    if args.teacher and (args.dd_folds > 1 or args.dair):
        parser.error("--teacher holds the training turns alone: not with --dd-folds or --dair")
    torch.set_num_threads(args.threads)
    checkpoint = Checkpoint.load(args.weights)
    dair = tuple(label for label in args.dair.split(",") if label)
    turns = int(checkpoint.arch.get("context_turns", 0))
    feats = features(args.weights, turns, args.goemotions_share, dair)
    if args.teacher:
        for name, t in teacher_targets(args.teacher, turns, args.goemotions_share).items():
            feats[name]["t"] = t
    if args.dd_folds > 1:
        # "dd_selection" becomes the pool (train part, then selection part, as `dailydialog_folds` orders it).
        pool = {k: np.concatenate([feats["dd_train"][k], feats["dd_selection"][k]]) for k in ("x", "y")}
        feats["dd_selection"] = pool
        _, args.fold_of = dailydialog_folds(args.dd_folds)
    manifest = write_manifest(dailydialog_split()["test"], CACHE / "dailydialog_test.csv")
    print(f"DailyDialog held-out part: {manifest} (python -m models.evaluate text {manifest})")
    if args.extract_only:
        print({k: v["x"].shape for k, v in feats.items()})
        return
    families = [r["family"] for r in contact_centre_rows()]
    shipped = {k[len("head.") :]: v for k, v in checkpoint.state_dict.items() if k.startswith("head.")}
    _, baseline = candidate(shipped, np.zeros(len(LABELS), dtype=np.float32), feats, families)
    # The shipped model's own temperature, for the contact-centre reading as production has it.
    base_logits = {name: logits_with(shipped, f["x"]) for name, f in feats.items()}
    baseline = scores(base_logits, feats, checkpoint.temperature, families)
    print(f"shipped: objective {objective(baseline):.4f} {json.dumps(baseline)}", flush=True)
    results = search(feats, families, args)
    fit = [r for r in results if admissible(r["scores"], args)]
    for r in sorted(fit, key=lambda r: objective(r["scores"]), reverse=True)[: args.tune_offsets]:
        results.append(tuned(r, feats, families, args))
    fit = [r for r in results if admissible(r["scores"], args)]
    if not fit:
        raise SystemExit("no candidate meets the selection constraints")
    best = max(fit, key=lambda r: objective(r["scores"]))
    print(f"selected {best['config']} T={best['temperature']:.3f}: {json.dumps(best['scores'])}", flush=True)
    CACHE.mkdir(parents=True, exist_ok=True)
    (CACHE / "search.json").write_text(
        json.dumps(
            {
                "shipped": baseline,
                "candidates": [{k: v for k, v in r.items() if k not in ("state", "oof")} for r in results],
            }
        )
    )
    if args.out:
        save(checkpoint, best, baseline, args)


def save(checkpoint: Checkpoint, best: dict[str, Any], baseline: dict[str, Any], args: argparse.Namespace) -> None:
    delta = {k: v for k, v in checkpoint.state_dict.items() if not k.startswith("head.")}
    delta.update({f"head.{k}": v.float() for k, v in best["state"].items()})
    info = dict(checkpoint.info)
    info["version"] = time.strftime("%Y%m%d")
    folds = int(best["config"].get("dd_folds", 1))
    dd_rows = (
        f"the train and selection parts in {folds} folds by dialogue, {folds} heads each without one fold, folded"
        if folds > 1
        else "train part"
    )
    info["head_refit"] = {
        "recipe": f"training.recipes.text.head (issue 18): encoder delta of {args.weights.name} as it is, "
        "head refit on cached features",
        "train": f"MELD train x2 + GoEmotions train (no approval/desire, {args.goemotions_share:.0%}) "
        f"+ DailyDialog-validation {dd_rows} "
        f"(dialogue split seed {SPLIT_SEED}, shares {SPLIT_SHARES}) x{best['config']['dd_repeat']}",
        "config": best["config"],
        "selection": {
            "constraints": {
                "dd_selection_neutral_recall": args.min_neutral_recall,
                "meld_dev_weighted_f1": args.min_meld,
                "contact_centre_first_48": "family >= 0.9, top label >= 43/48, flips <= 1",
            },
            "objective": "mean of DD-selection macro-F1, MELD dev weighted-F1, GoEmotions dev macro-F1",
        },
        "results": best["scores"],
        "previous_head_results": baseline,
    }
    arch = {**checkpoint.arch, "hidden": int(best["state"]["net.1.weight"].shape[0])}  # folded seeds: wider
    Checkpoint(delta, LABELS, best["temperature"], arch, info).save(args.out)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
