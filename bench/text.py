"""Quality and per-message cost of the shipped text model against the previous one and the frozen baseline.

    python -m bench.text [--threads 2] [--repeats 5] [--no-quality]

Quality (skipped with --no-quality or without ../shared/data): the shipped model
(`text_lora.pt`) and the previous one (`text_lora_20261123.pt`, same encoder
delta, the head before issue 18) on the DailyDialog held-out part
(`models.recipes.text.head.dailydialog_split`, read in context), MELD test (in
context) and the contact-centre suite by kind: macro-F1, weighted-F1, neutral
recall and the share of plain turns read as negative.

Cost: all variants read the same contact-centre messages (tests/models/data), one
message per call (as `EmotionRecognizer` does), tokenisation included, after a
warm-up pass, in one process with the same torch/ONNX Runtime thread count:

- baseline: the foundation's frozen MiniLM + head (`text_head.pt`), message alone;
- previous fine-tuned model, message + 2 turns;
- fine-tuned (`text_lora.pt`, adapters merged), message alone and with the two
  turns before it (the production path);
- the production path on other runtimes: PyTorch dynamic int8
  (`quantize_dynamic`), ONNX Runtime fp32 and int8 (`TextEmotionModel.load(runtime=...)`).

Prints a markdown table (mean and p95 ms per message, ratio to the baseline)
and, for the other runtimes, how often they agree with PyTorch fp32 on the
label and the largest probability change; then a JSON line.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from bench.voice import machine
from models.emotion import FAMILY_OF_LABEL
from models.metrics import evaluate
from models.text import DEFAULT_MODEL, FROZEN_HEAD, WEIGHTS_DIR, TextEmotionModel

MESSAGES = Path(__file__).resolve().parents[1] / "tests" / "models" / "data" / "contact_centre.csv"
PREVIOUS_MODEL = WEIGHTS_DIR / "text_lora_20261123.pt"


def corpus_quality(model: TextEmotionModel, samples: list[Any]) -> dict[str, float]:
    """Headline numbers of `model` on labelled samples read in their dialogue context."""
    from models.data import contexts

    context = contexts(samples, model.context_turns)
    predicted = [e.label for e in model.predict_batch([s.text for s in samples], context)]
    gold = [s.label for s in samples]
    report = evaluate(gold, predicted)
    plain = [p for g, p in zip(gold, predicted) if g == "neutral"]
    return {
        "n": report.n,
        "macro_f1": round(report.macro_f1, 4),
        "weighted_f1": round(report.weighted_f1, 4),
        "neutral_recall": round(sum(p == "neutral" for p in plain) / len(plain), 4),
        "neutral_read_negative": round(sum(FAMILY_OF_LABEL[p] == "negative" for p in plain) / len(plain), 4),
    }


def suite_quality(model: TextEmotionModel, rows: list[dict[str, str]]) -> dict[str, float]:
    """Family accuracy on the contact-centre suite, by kind of sentence and overall."""
    families = [e.family for e in model.predict_batch([r["text"] for r in rows])]
    out = {}
    for kind in ["all", *dict.fromkeys(r["kind"] for r in rows)]:
        hits = [f == r["family"] for r, f in zip(rows, families) if kind in ("all", r["kind"])]
        out[kind] = round(sum(hits) / len(hits), 4)
    return out


def quality(models: dict[str, TextEmotionModel], rows: list[dict[str, str]]) -> dict[str, dict]:
    from models import data
    from models.recipes.text.head import dailydialog_split

    corpora = {"dailydialog_heldout": dailydialog_split()["test"], "meld_test": data.meld("test")}
    out: dict[str, dict] = {}
    for name, model in models.items():
        out[name] = {corpus: corpus_quality(model, samples) for corpus, samples in corpora.items()}
        out[name]["contact_centre"] = suite_quality(model, rows)
    return out


def with_net(model: TextEmotionModel, net: Any, suffix: str) -> TextEmotionModel:
    return TextEmotionModel(net, model.tokenizer, model.temperature, model.name + suffix, model.context_turns)


def per_message_ms(
    predict: Callable[[str, list[str]], Any], items: list[tuple[str, list[str]]], repeats: int
) -> list[float]:
    for text, context in items:  # warm-up: lazy initialisation, allocator, caches
        predict(text, context)
    times = []
    for _ in range(repeats):
        for text, context in items:
            start = time.perf_counter()
            predict(text, context)
            times.append((time.perf_counter() - start) * 1e3)
    return times


def drift(reference: TextEmotionModel, other: TextEmotionModel, items: list[tuple[str, list[str]]]) -> dict[str, float]:
    a = [reference.predict(t, c) for t, c in items]
    b = [other.predict(t, c) for t, c in items]
    agree = float(np.mean([x.label == y.label for x, y in zip(a, b)]))
    change = float(max(np.abs(np.array(x.probs) - np.array(y.probs)).max() for x, y in zip(a, b)))
    return {"label_agreement": round(agree, 4), "max_prob_change": round(change, 4)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime variants")
    parser.add_argument("--no-quality", action="store_true", help="cost only (no ../shared/data needed)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    with MESSAGES.open(newline="", encoding="utf-8") as handle:
        rows_in = list(csv.DictReader(handle))
    texts = [row["text"] for row in rows_in]
    # Each message's context: the two messages before it in the file (stand-ins for earlier turns).
    in_context = [(t, texts[max(0, i - 2) : i] or texts[-2:]) for i, t in enumerate(texts)]
    alone: list[tuple[str, list[str]]] = [(t, []) for t in texts]

    baseline = TextEmotionModel.load(FROZEN_HEAD)
    tuned = TextEmotionModel.load(DEFAULT_MODEL)
    previous = TextEmotionModel.load(PREVIOUS_MODEL)
    scored = {} if args.no_quality else quality({"shipped": tuned, "previous": previous}, rows_in)
    variants: list[tuple[str, TextEmotionModel, list[tuple[str, list[str]]]]] = [
        ("frozen encoder + head (foundation), message alone", baseline, alone),
        ("previous fine-tuned model (20261123), message + 2 turns", previous, in_context),
        ("fine-tuned (LoRA merged), message alone", tuned, alone),
        ("fine-tuned, message + 2 turns (production path)", tuned, in_context),
    ]
    quantized = torch.ao.quantization.quantize_dynamic(tuned.net, {torch.nn.Linear}, dtype=torch.qint8)
    others = [("fine-tuned + 2 turns, PyTorch dynamic int8", with_net(tuned, quantized, "+torch-int8"))]
    if not args.no_onnx:
        for runtime in ("onnx", "onnx-int8"):
            name = f"fine-tuned + 2 turns, ONNX Runtime {'int8' if runtime.endswith('int8') else 'fp32'}"
            others.append((name, TextEmotionModel.load(DEFAULT_MODEL, threads=args.threads, runtime=runtime)))
    variants += [(name, model, in_context) for name, model in others]

    rows: list[dict[str, Any]] = []
    for name, model, items in variants:
        times = per_message_ms(model.predict, items, args.repeats)
        rows.append({"variant": name, "mean_ms": statistics.fmean(times), "p95_ms": float(np.percentile(times, 95))})
    base = rows[0]["mean_ms"]
    for row in rows:
        row["ratio_to_baseline"] = row["mean_ms"] / base
    drifts = {name: drift(tuned, model, in_context) for name, model in others}

    print(f"machine: {machine()}; threads {args.threads}; {len(texts)} messages x {args.repeats}\n")
    if scored:
        print(
            "| model | DailyDialog held-out macro-F1 | neutral recall | plain read negative | MELD test weighted-F1 "
            "| contact-centre (all) |\n|---|---|---|---|---|---|"
        )
        for name, q in scored.items():
            dd, meld = q["dailydialog_heldout"], q["meld_test"]
            print(
                f"| {name} | {dd['macro_f1']:.3f} | {dd['neutral_recall']:.3f} | {dd['neutral_read_negative']:.3f} "
                f"| {meld['weighted_f1']:.3f} | {q['contact_centre']['all']:.3f} |"
            )
        print()
    print("| variant | mean | p95 | vs baseline |\n|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['variant']} | {row['mean_ms']:.1f} ms | {row['p95_ms']:.1f} ms | {row['ratio_to_baseline']:.2f}x |"
        )
    print()
    for name, q in drifts.items():
        agreement, change = q["label_agreement"], q["max_prob_change"]
        print(f"{name}: label agreement with PyTorch fp32 {agreement:.3f}, max probability change {change:.3f}")
    print(
        json.dumps(
            {"machine": machine(), "threads": args.threads, "quality": scored, "rows": rows, "runtime_drift": drifts}
        )
    )


if __name__ == "__main__":
    main()
