"""Does the head hold up on encoder states from an ASR pass (30 s window) instead of the clip alone?

    python -m models.recipes.voice.features --variants studio-asr tel-eval-asr --actors 1 6 11 16
    python -m models.recipes.voice.asr_check

Trains a head exactly as the recipe does on folds 1-4 (16 actors) and scores
fold 0's actors (1, 6, 11, 16) on four encodings of the same clips: studio and
telephone, each encoded over the clip only (as `predict` does) and over
Whisper's padded 30 s window (as faster-whisper's ASR pass does, whose states
the telephony connector hands to `predict_from_encoder`).
"""

from __future__ import annotations

import argparse
import json
import logging

import numpy as np
import torch

from models.metrics import evaluate
from models.recipes.voice.features import ASR_SUFFIX, EVAL_VARIANT, extract
from models.recipes.voice.train import (
    HERE,
    RUNS,
    Corpus,
    StateSet,
    actor_folds,
    headline,
    load_corpus,
    load_hparams,
    names,
    train_head,
)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    torch.set_num_threads(1)
    overrides = {} if args.epochs is None else {"epochs": args.epochs}
    hp = load_hparams(HERE / "hparams.yaml", overrides)
    corpus = load_corpus(hp["calm"], fbank=bool(hp["fbank_channels"]))
    held_out = actor_folds(int(hp["folds"]))[0]
    test_idx = corpus.where(held_out)
    clips = [corpus.clips[i] for i in test_idx]
    variants = dict(corpus.variants)
    for base in ("studio", EVAL_VARIANT):  # ASR-window states exist for the held-out actors only
        states = extract(base + ASR_SUFFIX, clips)
        full = [np.zeros((1, 1))] * len(corpus.labels)
        for i, s in zip(test_idx, states):
            full[i] = s
        variants[base + ASR_SUFFIX] = full
    fbanks = None
    if corpus.fbanks is not None:  # the filterbank branch reads the same audio whatever the encoder window
        fbanks = {**corpus.fbanks, **{v + ASR_SUFFIX: corpus.fbanks[v] for v in ("studio", EVAL_VARIANT)}}
    corpus = Corpus(corpus.clips, corpus.labels, variants, fbanks)
    brain = train_head(corpus, np.setdiff1d(np.arange(len(corpus.labels)), test_idx), HERE / "hparams.yaml", overrides)
    gold = names(corpus.labels[test_idx])
    out: dict[str, object] = {}
    preds: dict[str, np.ndarray] = {}
    for variant in ("studio", "studio" + ASR_SUFFIX, EVAL_VARIANT, EVAL_VARIANT + ASR_SUFFIX):
        preds[variant] = brain.logits(StateSet(corpus, test_idx, (variant,), hp, train=False)).argmax(axis=1)
        out[variant] = headline(evaluate(gold, names(preds[variant])))
    for base in ("studio", EVAL_VARIANT):
        out[f"{base}_agreement_clip_vs_asr_window"] = round(float(np.mean(preds[base] == preds[base + ASR_SUFFIX])), 4)
    (RUNS / "asr-check.json").write_text(json.dumps({"actors": held_out, **out}, indent=2) + "\n")
    print(json.dumps({"actors": held_out, **out}))


if __name__ == "__main__":
    main()
