"""Quality and per-message cost of the shipped text model against the previous one and the frozen baseline.

    python -m bench.text [--threads 2] [--repeats 5] [--no-quality]

Quality (skipped with --no-quality or without ../shared/data): the shipped model
(`text_lora.pt`), the previous one (`PREVIOUS_MODEL`) and any `--candidate` on the DailyDialog
held-out part (`training.recipes.text.head.dailydialog_split`, read in context),
MELD test (in context), GoEmotions test and the contact-centre suite by kind:
macro-F1, weighted-F1, neutral recall and the share of plain turns read as
negative.

Cost: all variants read the same contact-centre messages (tests/models/data), one
message per call (as `EmotionRecognizer` does), tokenisation included, after a
warm-up pass, in one process with the same torch/ONNX Runtime thread count:

- baseline: the foundation's frozen MiniLM + head (`text_head.pt`), message alone;
- previous fine-tuned model, message + 2 turns;
- fine-tuned (`text_lora.pt`, adapters merged), message alone and with the two
  turns before it (the production path);
- the production path on other runtimes: PyTorch dynamic int8
  (`quantize_dynamic`), ONNX Runtime fp32 and int8 (`TextEmotionModel.load(runtime=...)`).

Larger encoders (`--encoders`): the per-message cost on ONNX Runtime of
encoders shaped like MiniLM-L6, bge-small-en-v1.5 and all-mpnet-base-v2 (BERT
layers of their depth and width, random weights: cost depends on the shape
only), so a stronger encoder's price is measured even where its weights cannot
be loaded offline (see models/cards/text.md).

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
from numpy.typing import NDArray

from bench.voice import machine
from models.emotion import FAMILY_OF_LABEL
from models.text import DEFAULT_MODEL, TextEmotionModel
from training.baselines import FROZEN_HEAD
from training.baselines import PREVIOUS_TEXT as PREVIOUS_MODEL
from training.metrics import evaluate

FAMILY_KEYS = ("complaints_negative", "neutral_negative", "praise_positive")
MESSAGES = Path(__file__).resolve().parents[1] / "tests" / "models" / "data" / "contact_centre.csv"
# Depth, width and feed-forward width of the encoders compared by cost (their published configurations).
ENCODER_SHAPES = {
    "MiniLM-L6 (shipped)": (6, 384, 1536),
    "bge-small-en-v1.5 shape": (12, 384, 1536),
    "all-mpnet-base-v2 shape": (12, 768, 3072),
}


def corpus_quality(model: TextEmotionModel, samples: list[Any]) -> dict[str, float]:
    """Headline numbers of `model` on labelled samples read in their dialogue context."""
    from training.data import contexts

    context = contexts(samples, model.context_turns)
    predicted = []
    for start in range(0, len(samples), 256):  # bounded batches: one padded batch of thousands would not fit
        chunk = slice(start, start + 256)
        predicted += [e.label for e in model.predict_batch([s.text for s in samples[chunk]], context[chunk])]
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


def quality(models: dict[str, TextEmotionModel], rows: list[dict[str, str]]) -> dict[str, dict[str, Any]]:
    from training import data
    from training.recipes.text.head import dailydialog_split
    from training.recipes.text.sentiment import held_out_sentiment, probe

    corpora = {
        "dailydialog_heldout": dailydialog_split()["test"],
        "meld_test": data.meld("test"),
        "goemotions_test": data.goemotions("test"),
    }
    complaints = {"sentiment_heldout": held_out_sentiment(), "implicit_complaints": probe()}
    out: dict[str, dict[str, Any]] = {}
    for name, model in models.items():
        out[name] = {corpus: corpus_quality(model, samples) for corpus, samples in corpora.items()}
        out[name]["contact_centre"] = suite_quality(model, rows)
        out[name].update({corpus: family_quality(model, samples) for corpus, samples in complaints.items()})
    return out


def family_quality(model: TextEmotionModel, samples: list[Any]) -> dict[str, float]:
    """Issue 31's reading: complaints read negative, neutral messages read negative, praise read positive."""
    read = []
    for start in range(0, len(samples), 256):
        read += [e.family for e in model.predict_batch([s.text for s in samples[start : start + 256]])]

    def share(gold: str, family: str) -> float:
        mine = [r for s, r in zip(samples, read) if s.family == gold]
        return round(sum(r == family for r in mine) / max(len(mine), 1), 4)

    return {
        "complaints_negative": share("negative", "negative"),
        "neutral_negative": share("neutral", "negative"),
        "praise_positive": share("positive", "positive"),
    }


def with_net(model: TextEmotionModel, net: Any, suffix: str) -> TextEmotionModel:
    return TextEmotionModel(
        net, model.tokenizer, model.temperature, model.name + suffix, model.context_turns, model.sentiment
    )


def per_message_ms(
    variants: list[tuple[Callable[[str, list[str]], Any], list[tuple[str, list[str]]]]], repeats: int
) -> list[list[float]]:
    """Per variant, the time of each call; the variants take turns pass by pass.

    Interleaved so that a slow spell of a shared VM (another tenant, a frequency
    change) falls on every variant alike instead of on whichever ran then.
    """
    for predict, items in variants:  # warm-up: lazy initialisation, allocator, caches
        for text, context in items:
            predict(text, context)
    times: list[list[float]] = [[] for _ in variants]
    for _ in range(repeats):
        for (predict, items), out in zip(variants, times):
            for text, context in items:
                start = time.perf_counter()
                predict(text, context)
                out.append((time.perf_counter() - start) * 1e3)
    return times


def drift(reference: TextEmotionModel, other: TextEmotionModel, items: list[tuple[str, list[str]]]) -> dict[str, float]:
    a = [reference.predict(t, c) for t, c in items]
    b = [other.predict(t, c) for t, c in items]
    agree = float(np.mean([x.label == y.label for x, y in zip(a, b)]))
    change = float(max(np.abs(np.array(x.probs) - np.array(y.probs)).max() for x, y in zip(a, b)))
    return {"label_agreement": round(agree, 4), "max_prob_change": round(change, 4)}


def encoder_costs(items: list[tuple[str, list[str]]], threads: int, repeats: int) -> list[dict[str, Any]]:
    """ONNX Runtime cost per message of encoders of each shape in `ENCODER_SHAPES` (random weights, same inputs)."""
    import tempfile

    import onnxruntime as ort
    from transformers import BertConfig, BertModel

    from models.text import MAX_TOKENS, collate, encode_turn, load_tokenizer

    tokenizer = load_tokenizer()
    batches = [collate(tokenizer, [encode_turn(tokenizer, t, c, MAX_TOKENS)]) for t, c in items]
    names = ("input_ids", "attention_mask", "token_type_ids")
    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    out = []
    for label, (layers, width, ffn) in ENCODER_SHAPES.items():
        config = BertConfig(
            num_hidden_layers=layers, hidden_size=width, intermediate_size=ffn, num_attention_heads=width // 32
        )
        net = BertModel(config).eval()
        with tempfile.TemporaryDirectory() as tmp:
            path = f"{tmp}/encoder.onnx"
            torch.onnx.export(
                net,
                tuple(batches[0][n] for n in names),
                path,
                input_names=list(names),
                output_names=["hidden"],
                dynamic_axes={n: {0: "batch", 1: "tokens"} for n in names},
                opset_version=17,
                dynamo=False,
            )
            session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feeds = [{n: b[n].numpy() for n in names} for b in batches]
        (times,) = per_message_ms([(onnx_call(session, feeds), [(str(i), []) for i in range(len(feeds))])], repeats)
        params = sum(p.numel() for p in net.parameters())
        out.append({"encoder": label, "parameters": params, **summary(times)})
    return out


def onnx_call(session: Any, feeds: list[dict[str, NDArray[Any]]]) -> Callable[[str, list[str]], Any]:
    """`per_message_ms`'s predict for a bare encoder: the item's text is the index of its prepared inputs."""
    return lambda index, _context: session.run(None, feeds[int(index)])


def summary(times: list[float]) -> dict[str, float]:
    return {"mean_ms": statistics.fmean(times), "p95_ms": float(np.percentile(times, 95))}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-onnx", action="store_true", help="skip the ONNX Runtime variants")
    parser.add_argument("--no-quality", action="store_true", help="cost only (no ../shared/data needed)")
    parser.add_argument("--encoders", action="store_true", help="also time encoders of larger shapes on ONNX Runtime")
    parser.add_argument(
        "--candidate",
        type=Path,
        default=None,
        help="a trained delta not shipped: its quality beside the others, and its cost on the production path",
    )
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
    compared = {"shipped": tuned, "previous": previous}
    if args.candidate:
        compared[f"candidate ({args.candidate.name})"] = TextEmotionModel.load(args.candidate)
    scored = {} if args.no_quality else quality(compared, rows_in)
    variants: list[tuple[str, TextEmotionModel, list[tuple[str, list[str]]]]] = [
        ("frozen encoder + head (foundation), message alone", baseline, alone),
        ("previous fine-tuned model, message + 2 turns", previous, in_context),
        ("fine-tuned (LoRA merged), message alone", tuned, alone),
        ("fine-tuned, message + 2 turns (production path)", tuned, in_context),
    ]
    quantized = torch.ao.quantization.quantize_dynamic(  # type: ignore[no-untyped-call]
        tuned.net, {torch.nn.Linear}, dtype=torch.qint8
    )
    others = [("fine-tuned + 2 turns, PyTorch dynamic int8", with_net(tuned, quantized, "+torch-int8"))]
    if not args.no_onnx:
        for runtime in ("onnx", "onnx-int8"):
            name = f"fine-tuned + 2 turns, ONNX Runtime {'int8' if runtime.endswith('int8') else 'fp32'}"
            others.append((name, TextEmotionModel.load(DEFAULT_MODEL, threads=args.threads, runtime=runtime)))
    variants += [(name, model, in_context) for name, model in others]
    if args.candidate and not args.no_onnx:  # the production path with the candidate's weights: before/after cost
        candidate = TextEmotionModel.load(args.candidate, threads=args.threads, runtime="onnx")
        variants.append((f"candidate ({args.candidate.name}) + 2 turns, ONNX Runtime fp32", candidate, in_context))

    timed = per_message_ms([(model.predict, items) for _, model, items in variants], args.repeats)
    rows: list[dict[str, Any]] = [{"variant": name, **summary(t)} for (name, _, _), t in zip(variants, timed)]
    base = rows[0]["mean_ms"]
    for row in rows:
        row["ratio_to_baseline"] = row["mean_ms"] / base
    drifts = {name: drift(tuned, model, in_context) for name, model in others}
    encoders = encoder_costs(in_context, args.threads, args.repeats) if args.encoders else []

    print(f"machine: {machine()}; threads {args.threads}; {len(texts)} messages x {args.repeats}\n")
    if scored:
        print(
            "| model | DailyDialog held-out macro-F1 | neutral recall | plain read negative | MELD test weighted-F1 "
            "| GoEmotions test macro-F1 | contact-centre (issue 4's 48) | contact-centre (all) |"
            "\n|---|---|---|---|---|---|---|---|"
        )
        for name, q in scored.items():
            dd, meld, goemo, cc = q["dailydialog_heldout"], q["meld_test"], q["goemotions_test"], q["contact_centre"]
            print(
                f"| {name} | {dd['macro_f1']:.3f} | {dd['neutral_recall']:.3f} | {dd['neutral_read_negative']:.3f} "
                f"| {meld['weighted_f1']:.3f} | {goemo['macro_f1']:.3f} | {cc['issue-4']:.3f} "
                f"| {cc['all']:.3f} |"
            )
        print(
            "\n| model | held-out tweets: complaints negative | neutral negative | praise positive "
            "| implicit-complaint probe: complaints negative | neutral negative | praise positive |"
            "\n|---|---|---|---|---|---|---|"
        )
        for name, q in scored.items():
            cells = [q[c][k] for c in ("sentiment_heldout", "implicit_complaints") for k in FAMILY_KEYS]
            print(f"| {name} | " + " | ".join(f"{v:.3f}" for v in cells) + " |")
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
    if encoders:
        print("\n| encoder shape (ONNX Runtime, message + 2 turns) | parameters | mean | p95 |\n|---|---|---|---|")
        for e in encoders:
            print(f"| {e['encoder']} | {e['parameters'] / 1e6:.1f} M | {e['mean_ms']:.1f} ms | {e['p95_ms']:.1f} ms |")
    result = {"machine": machine(), "threads": args.threads, "quality": scored, "rows": rows, "runtime_drift": drifts}
    print(json.dumps({**result, "encoders": encoders}))


if __name__ == "__main__":
    main()
