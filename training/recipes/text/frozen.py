"""Baseline: the foundation's text head on frozen MiniLM embeddings (no context, no fine-tuning).

    python -m training.recipes.text.frozen [--epochs 40] [--out training/weights/text_head.pt]

Kept as the reference the fine-tuned model (`training.recipes.text.train`) is
measured against, in quality (card) and cost (bench/text.py).

Data (from $TONELINE_DATA, default ../shared/data): MELD train + GoEmotions
(Ekman, single-label) train; MELD dev + GoEmotions dev for model selection and
temperature scaling; MELD test and GoEmotions test are reported, never tuned on.
Embeddings are cached under ~/.cache/toneline/text-emb (outside the repo).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from tqdm import tqdm

from models.checkpoint import Checkpoint
from models.emotion import LABEL_INDEX, LABELS
from models.text import ENCODER_NAME, EmotionHead, MiniLMEncoder
from training import data
from training.baselines import FROZEN_HEAD
from training.metrics import evaluate
from training.recipes.calibration import fit_temperature
from training.recipes.text.train import class_weights, report_split

CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "text-emb"


def embed(encoder: MiniLMEncoder, texts: list[str], tag: str) -> NDArray[Any]:
    """Embeddings of `texts`, cached by content hash."""
    digest = hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]
    path = CACHE / f"{tag}-{digest}.npy"
    if path.exists():
        cached: NDArray[Any] = np.load(path)
        return cached
    CACHE.mkdir(parents=True, exist_ok=True)
    out = []
    for start in tqdm(range(0, len(texts), 256), desc=f"encode {tag}", unit="batch"):
        out.append(encoder.encode(texts[start : start + 256]))
    arr: NDArray[Any] = np.concatenate(out).astype(np.float32)
    np.save(path, arr)
    return arr


def train_head(
    xtr: NDArray[Any], ytr: NDArray[Any], xva: NDArray[Any], yva: NDArray[Any], args: argparse.Namespace
) -> EmotionHead:
    torch.manual_seed(args.seed)
    head = EmotionHead(hidden=args.hidden, dropout=args.dropout)
    opt = torch.optim.AdamW(head.parameters(), lr=args.lr, weight_decay=1e-2)
    loss_fn = nn.CrossEntropyLoss(weight=class_weights(ytr, 0.5), label_smoothing=0.05)
    x, y = torch.from_numpy(xtr), torch.from_numpy(ytr)
    best, best_state, gold_va = -1.0, None, [LABELS[i] for i in yva]
    bar = tqdm(range(args.epochs), desc="train head", unit="epoch")
    for _ in bar:
        head.train()
        for idx in torch.split(torch.randperm(len(x)), args.batch_size):
            opt.zero_grad()
            loss_fn(head(x[idx]), y[idx]).backward()
            opt.step()
        head.eval()
        with torch.no_grad():
            pred = head(torch.from_numpy(xva)).argmax(1).numpy()
        score = evaluate(gold_va, [LABELS[i] for i in pred]).macro_f1
        bar.set_postfix(val_macro_f1=f"{score:.4f}")
        if score > best:
            best, best_state = score, {k: v.clone() for k, v in head.state_dict().items()}
    assert best_state is not None
    head.load_state_dict(best_state)
    return head.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--dropout", type=float, default=0.2)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=FROZEN_HEAD)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    splits = {
        "train": data.meld("train") + data.goemotions("train"),
        "val": data.meld("dev") + data.goemotions("dev"),
        "meld_test": data.meld("test"),
        "goemotions_test": data.goemotions("test"),
        "dailydialog_val": data.dailydialog_validation(),
    }
    encoder = MiniLMEncoder()
    x = {k: embed(encoder, [s.text for s in v], k) for k, v in splits.items()}
    y = {k: np.array([LABEL_INDEX[s.label] for s in v]) for k, v in splits.items()}

    head = train_head(x["train"], y["train"], x["val"], y["val"], args)
    with torch.no_grad():
        logits = {k: head(torch.from_numpy(v)).numpy() for k, v in x.items()}
    temperature = fit_temperature(logits["val"], y["val"])

    splits_reported = ("val", "meld_test", "goemotions_test", "dailydialog_val")
    results = {split: report_split(split, logits[split], y[split], temperature) for split in splits_reported}

    info = {
        "version": time.strftime("%Y%m%d"),
        "encoder": ENCODER_NAME,
        "train": "MELD train + GoEmotions-Ekman train",
        "hyperparameters": {k: v for k, v in vars(args).items() if k != "out"},
        "results": results,
    }
    Checkpoint(head.state_dict(), LABELS, temperature, {"hidden": args.hidden}, info).save(args.out)
    print(json.dumps({"saved": str(args.out), "temperature": round(temperature, 4), **results}))


if __name__ == "__main__":
    main()
