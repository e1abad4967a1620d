"""Fine-tune MiniLM for contact-centre emotion: LoRA adapters, dialogue context, calibrated.

    python -m training.recipes.text.train [--epochs 2] [--rank 8] [--context-turns 2]
        [--out models/weights/text_lora.pt]

Data (from $TONELINE_DATA, default ../shared/data):
- train: MELD train (each utterance with the two before it in its dialogue; the
  context is dropped at random so the model also reads lone messages) and
  GoEmotions train (Ekman mapping, single-label comments; no context);
- model selection (mean of MELD dev weighted-F1 and GoEmotions dev macro-F1)
  and temperature scaling: MELD dev + GoEmotions dev;
- reported, never tuned on: MELD test (with and without context), GoEmotions
  test, DailyDialog validation (with context), and the contact-centre sentences
  of tests/models/data (by family).

The encoder stays frozen; rank-`r` adapters on every attention and feed-forward
projection, the layer norms and the head train. Only those are saved (a few MB),
so the shipped file is a delta on the PyPI encoder.

The shipped model is two runs (`make train-text`): a general stage (defaults,
2 epochs), then `--init` from it for one MELD-heavier epoch without the
GoEmotions comments labelled approval/desire (which the Ekman grouping calls
joy); see models/cards/text.md.

On a GPU (`--device auto` takes one when there is one) a full epoch takes about two
minutes instead of two hours on 2 cores. `--max-minutes` gives a run a time budget:
after the first steps the schedule is laid over the steps that fit, and the last
state is scored, so a cut run still ends with a decayed learning rate and a pick.
`TONELINE_TEXT_ENCODER` points at a copy of the encoder on a machine without the
PyPI package. `--teacher` distils a larger fine-tuned model's logits
(`training.recipes.text.distill`) into the run, beside the labels.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn
from tqdm import tqdm

from models.checkpoint import Checkpoint
from models.emotion import LABEL_INDEX, LABELS
from models.text import (
    CONTEXT_TURNS,
    DEFAULT_MODEL,
    ENCODER_NAME,
    TextEmotionNet,
    adapted_net,
    collate,
    encode_turn,
    load_delta,
    load_tokenizer,
    trained_delta,
)
from training import data
from training.metrics import evaluate, expected_calibration_error
from training.recipes.calibration import fit_temperature, softmax
from training.recipes.text.head import dailydialog_split
from training.recipes.text.teacher import Teacher, turn_key

TARGETS = ("query", "key", "value", "attention.output.dense", "intermediate.dense", "output.dense")
CONTACT_CENTRE = Path(__file__).resolve().parents[3] / "tests" / "models" / "data" / "contact_centre.csv"
FAMILY = {"neutral": "neutral", "surprised": "neutral", "happy": "positive"}  # every other label is negative


class Split:
    """Tokenised samples of one split: with context, and (for training) without."""

    def __init__(self, tokenizer: Any, samples: list[data.TextSample], turns: int, max_tokens: int) -> None:
        ctx = data.contexts(samples, turns)
        self.with_context = [encode_turn(tokenizer, s.text, c, max_tokens) for s, c in zip(samples, ctx)]
        self.alone = [
            encode_turn(tokenizer, s.text, (), max_tokens) if c else e
            for s, c, e in zip(samples, ctx, self.with_context)
        ]
        self.has_context = np.array([bool(c) for c in ctx])
        self.y = np.array([LABEL_INDEX[s.label] for s in samples])
        # Which turn each row is (text, context, label): a teacher's logits (`--teacher`) are found by it.
        self.keys = [turn_key(s, c) for s, c in zip(samples, ctx)]

    def __len__(self) -> int:
        return len(self.y)


def batches(lengths: Sequence[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (sorted within chunks of 64 batches): less padding, same randomness."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * 64
    out = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        out += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    rng.shuffle(out)
    return out


def device_of(net: nn.Module) -> torch.device:
    return next(net.parameters()).device


def batch_on(tokenizer: Any, encoded: Sequence[dict[str, Any]], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in collate(tokenizer, encoded).items()}


@torch.inference_mode()
def logits_of(
    net: TextEmotionNet, tokenizer: Any, encoded: list[dict[str, Any]], batch_size: int = 128
) -> NDArray[Any]:
    net.eval()
    device = device_of(net)
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    out = np.zeros((len(encoded), len(LABELS)), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        b = batch_on(tokenizer, [encoded[i] for i in idx], device)
        out[idx] = net(b["input_ids"], b["attention_mask"], b["token_type_ids"]).float().cpu().numpy()
    return out


def class_weights(y: NDArray[Any], power: float) -> torch.Tensor:
    """Inverse frequency to the `power` (0.5: rare classes count more without drowning neutral; 0: none)."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(float)
    w = 1.0 / np.maximum(counts, 1.0) ** power
    return torch.tensor(w / w.mean(), dtype=torch.float32)


# Each selection corpus and the metric it is scored by; the selection score is their mean (never one corpus alone).
SELECTION_METRICS = {"meld_dev": "weighted_f1", "goemotions_dev": "macro_f1", "dd_selection": "macro_f1"}


def selection_score(net: TextEmotionNet, tokenizer: Any, dev: dict[str, Split]) -> dict[str, float]:
    out = {}
    for name, split in dev.items():
        pred = logits_of(net, tokenizer, split.with_context).argmax(1)
        report = evaluate([LABELS[i] for i in split.y], [LABELS[i] for i in pred])
        out[f"{name}_{SELECTION_METRICS[name]}"] = getattr(report, SELECTION_METRICS[name])
        if name == "dd_selection":  # reported beside the score: plain turns must stay plain
            plain = split.y == LABEL_INDEX["neutral"]
            out["dd_selection_neutral_recall"] = float((pred[plain] == LABEL_INDEX["neutral"]).mean())
    metrics = [v for k, v in out.items() if k.endswith(("_weighted_f1", "_macro_f1"))]
    return {**out, "score": sum(metrics) / len(metrics)}


# A --max-minutes run times its steps from PLAN_WARM_STEPS (the first steps of a GPU run take seconds each:
# kernels load and tune) to PLAN_AFTER_STEPS, then lays its schedule over the steps that fit.
PLAN_WARM_STEPS = 20
PLAN_AFTER_STEPS = 70


def fitted_total(step: int, started: float, deadline: float, total: int, since_step: int = 0) -> int:
    """The planned steps that fit before `deadline` at the rate since `since_step` (timed from `started`).

    15 % of the time left is kept for the dev evaluations.
    """
    rate = (step - since_step) / max(time.monotonic() - started, 1e-6)
    fits = step + int(rate * max(deadline - time.monotonic(), 0.0) * 0.85)
    if fits < total:
        tqdm.write(f"--max-minutes: {rate:.1f} steps/s, the schedule now ends at step {fits} of {total}")
    return min(total, fits)


def train(
    net: TextEmotionNet,
    tokenizer: Any,
    train_split: Split,
    dev: dict[str, Split],
    args: argparse.Namespace,
    teacher: Teacher | None = None,
) -> dict[str, Any]:
    rng = random.Random(args.seed)
    torch.manual_seed(args.seed)
    head_params = [p for n, p in net.named_parameters() if p.requires_grad and n.startswith("head.")]
    body_params = [p for n, p in net.named_parameters() if p.requires_grad and not n.startswith("head.")]
    opt = torch.optim.AdamW(
        [{"params": body_params, "lr": args.lr}, {"params": head_params, "lr": args.head_lr}], weight_decay=0.01
    )
    device = device_of(net)
    weight = class_weights(train_split.y, args.class_weight_power).to(device)
    loss_fn = nn.CrossEntropyLoss(weight=weight, label_smoothing=0.05)
    # bf16 on a GPU: the matrix units' fast path; the loss and the optimiser stay in fp32.
    half = bool(getattr(args, "bf16", False)) and device.type == "cuda"
    deadline = time.monotonic() + args.max_minutes * 60 if args.max_minutes else math.inf
    lengths = [len(e["input_ids"]) for e in train_split.with_context]
    steps_per_epoch = math.ceil(len(train_split) / args.batch_size)
    total = steps_per_epoch * args.epochs
    if args.max_steps:  # a shorter stage (2 shared cores): the schedule is laid over the steps actually run
        total = min(total, args.max_steps)
        steps_per_epoch = min(steps_per_epoch, total)
    warmup = max(1, int(0.06 * total))
    plan = {"total": total}  # shortened once the step rate is known, when --max-minutes would cut the schedule
    # Linear warm-up, then cosine decay to zero: the usual schedule for fine-tuning a pre-trained encoder.
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, s / plan["total"])))
    )
    eval_every = max(1, int(steps_per_epoch * args.eval_every))
    best: dict[str, Any] = {"score": -1.0}
    # The starting point competes too: a second stage must not make things worse (with --encoder-only the
    # comparison is the head recipe's, on the refit head, so the start is not scored here).
    if args.init and not args.encoder_only:
        start = {**selection_score(net, tokenizer, dev), "step": 0, "delta": trained_delta(net)}
        tqdm.write(f"start ({args.init.name}): score {start['score']:.4f}")
        # A start whose head was tuned on the selection sets scores high there; --no-start-competes keeps the
        # best trained state anyway (the head recipe then refits and compares on equal terms).
        if args.start_competes:
            best = start
    step, warm = 0, time.monotonic()
    bar = tqdm(total=total, desc="fine-tune", unit="batch")
    for _epoch in range(args.epochs):
        for idx in batches(lengths, args.batch_size, rng):
            if step >= plan["total"] or (step and time.monotonic() > deadline):  # a run always trains a step
                break
            net.train()
            alone = [rng.random() < args.context_dropout for _ in idx]
            encoded = [train_split.alone[i] if a else train_split.with_context[i] for i, a in zip(idx, alone)]
            b = batch_on(tokenizer, encoded, device)
            target = torch.from_numpy(train_split.y[idx]).to(device)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=half):
                out = net(b["input_ids"], b["attention_mask"], b["token_type_ids"])
            loss = loss_fn(out.float(), target)
            if teacher is not None:
                loss = (1 - teacher.weight) * loss + teacher.weight * teacher.loss(out, idx, alone)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(body_params + head_params, 1.0)
            opt.step()
            schedule.step()
            step += 1
            bar.update(1)
            if step == PLAN_WARM_STEPS:
                warm = time.monotonic()
            if step == PLAN_AFTER_STEPS and deadline < math.inf:
                plan["total"] = fitted_total(step, warm, deadline, plan["total"], since_step=PLAN_WARM_STEPS)
                eval_every = min(eval_every, max(1, plan["total"] // 8))
            if step % 50 == 0:  # .item() waits for the device: not every step
                bar.set_postfix(loss=f"{loss.item():.3f}", best=f"{best['score']:.4f}")
            if args.encoder_only:  # the head recipe scores this encoder on the pooled selection sets
                continue
            # A time limit (--max-minutes) ends the run early: its last state is scored like the planned last step.
            if step % eval_every == 0 or step == plan["total"] or time.monotonic() > deadline:
                scores = selection_score(net, tokenizer, dev)
                tqdm.write(f"step {step}/{plan['total']}: " + ", ".join(f"{k} {v:.4f}" for k, v in scores.items()))
                if scores["score"] > best["score"]:
                    best = {**scores, "step": step, "delta": trained_delta(net)}
    bar.close()
    best["steps_run"] = step
    if "delta" in best:
        net.load_state_dict(best["delta"], strict=False)
    return best


def report_split(name: str, logits: NDArray[Any], y: NDArray[Any], temperature: float) -> dict[str, Any]:
    raw, cal = softmax(logits), softmax(logits / temperature)
    report = evaluate([LABELS[i] for i in y], [LABELS[i] for i in cal.argmax(1)], LABELS)
    result = {
        **report.headline(),
        "ece_before": round(expected_calibration_error(raw, y), 4),
        "ece_after": round(expected_calibration_error(cal, y), 4),
    }
    print(f"\n== {name} ==\n{report.render()}\nECE {result['ece_before']} -> {result['ece_after']}")
    return result


def contact_centre(net: TextEmotionNet, tokenizer: Any, max_tokens: int) -> dict[str, Any]:
    """Family accuracy on the hand-written contact-centre sentences (never trained or selected on)."""
    with CONTACT_CENTRE.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    pred = logits_of(net, tokenizer, [encode_turn(tokenizer, r["text"], (), max_tokens) for r in rows]).argmax(1)
    misses = [(r["text"], LABELS[p]) for r, p in zip(rows, pred) if FAMILY.get(LABELS[p], "negative") != r["family"]]
    accuracy = 1 - len(misses) / len(rows)
    print(f"\n== contact-centre sentences ==\nfamily accuracy {accuracy:.3f}; misses: {misses}")
    return {"n": len(rows), "family_accuracy": round(accuracy, 4), "misses": misses}


def report(
    net: TextEmotionNet, tokenizer: Any, dev: dict[str, Split], tests: dict[str, Split], args: argparse.Namespace
) -> tuple[float, dict[str, Any]]:
    """Temperature fitted on the pooled dev sets, and every test split's numbers with it."""
    val_logits = np.concatenate([logits_of(net, tokenizer, s.with_context) for s in dev.values()])
    val_y = np.concatenate([s.y for s in dev.values()])
    temperature = fit_temperature(val_logits, val_y)
    results = {"val": report_split("pooled dev sets", val_logits, val_y, temperature)}
    for name, split in tests.items():
        results[name] = report_split(name, logits_of(net, tokenizer, split.with_context), split.y, temperature)
    meld = tests["meld_test"]
    results["meld_test_without_context"] = report_split(
        "meld_test without context", logits_of(net, tokenizer, meld.alone), meld.y, temperature
    )
    results["contact_centre"] = contact_centre(net, tokenizer, args.max_tokens)
    return temperature, results


def load_splits(tokenizer: Any, args: argparse.Namespace) -> tuple[Split, dict[str, Split], dict[str, Split]]:
    meld_train = data.meld("train")
    exclude = tuple(args.goemotions_exclude)
    goemo_train = data.goemotions("train", exclude=exclude)
    if args.goemotions_share < 1.0:  # a fixed random subset: GoEmotions is Reddit, MELD is the conversational target
        keep = np.random.default_rng(args.seed).permutation(len(goemo_train))[
            : int(len(goemo_train) * args.goemotions_share)
        ]
        goemo_train = [goemo_train[i] for i in sorted(keep)]
    if args.limit:
        meld_train, goemo_train = meld_train[: args.limit], goemo_train[: args.limit]
    # MELD is the conversational target but a fifth of the pool: it is repeated `--meld-repeat` times.
    train_samples = meld_train * args.meld_repeat + goemo_train
    turns, tokens = args.context_turns, args.max_tokens
    dev = {
        "meld_dev": Split(tokenizer, data.meld("dev"), turns, tokens),
        "goemotions_dev": Split(tokenizer, data.goemotions("dev", exclude=exclude), 0, tokens),
    }
    tests = {
        "meld_test": Split(tokenizer, data.meld("test"), turns, tokens),
        "goemotions_test": Split(tokenizer, data.goemotions("test"), 0, tokens),
    }
    if args.dailydialog_repeat:  # issue 18: everyday conversation, split by dialogue (the held-out part never selects)
        dd = dailydialog_split()
        train_samples += dd["train"][: args.limit or None] * args.dailydialog_repeat
        dev["dd_selection"] = Split(tokenizer, dd["selection"], turns, tokens)
        tests["dd_heldout"] = Split(tokenizer, dd["test"], turns, tokens)
    else:
        tests["dailydialog_val"] = Split(tokenizer, data.dailydialog_validation(), turns, tokens)
    t0 = time.perf_counter()
    train_split = Split(tokenizer, train_samples, turns, tokens)
    print(f"tokenised {len(train_split)} training samples in {time.perf_counter() - t0:.1f} s", flush=True)
    return train_split, dev, tests


def build_parser(description: str | None = __doc__) -> argparse.ArgumentParser:
    """The recipe's options (the distillation teacher trains with the same ones)."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--alpha", type=float, default=16.0)
    parser.add_argument("--lora-dropout", type=float, default=0.1)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--lr", type=float, default=5e-4)
    parser.add_argument("--head-lr", type=float, default=2e-3)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=96)
    parser.add_argument("--context-turns", type=int, default=CONTEXT_TURNS)
    parser.add_argument("--context-dropout", type=float, default=0.3)
    parser.add_argument("--meld-repeat", type=int, default=2)
    parser.add_argument("--goemotions-share", type=float, default=1.0, help="fraction of GoEmotions train used")
    parser.add_argument("--class-weight-power", type=float, default=0.5)
    parser.add_argument(
        "--dailydialog-repeat",
        type=int,
        default=0,
        help="add the DailyDialog train part this many times (and select on its selection part too)",
    )
    parser.add_argument("--max-steps", type=int, default=0, help="stop (and end the schedule) after this many steps")
    parser.add_argument(
        "--goemotions-exclude",
        type=lambda v: [x for x in v.split(",") if x],
        default=[],
        help="comma-separated original GoEmotions labels whose comments are left out of train and dev",
    )
    parser.add_argument("--eval-every", type=float, default=0.25, help="fraction of an epoch between dev evaluations")
    parser.add_argument("--limit", type=int, default=0, help="use only the first N samples of each training corpus")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N; auto: the GPU when there is one")
    parser.add_argument(
        "--max-minutes", type=float, default=0, help="stop training after this long (the best scored state is kept)"
    )
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--init", type=Path, default=None, help="start from this delta (a second training stage)")
    parser.add_argument(
        "--start-competes",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="with --init: the starting point is scored and kept if nothing trained beats it",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--no-export", action="store_true", help="report only; do not write the weights")
    parser.add_argument(
        "--encoder-only",
        action="store_true",
        help="with --init: keep the last step, score nothing (training.recipes.text.head refits, selects, reports)",
    )
    parser.add_argument("--bf16", action="store_true", help="on a GPU, run the forward pass in bfloat16")
    parser.add_argument(
        "--teacher", type=Path, default=None, help="distil: a teacher's logits on these training turns (.npz)"
    )
    parser.add_argument("--distill-weight", type=float, default=0.5, help="share of the teacher's loss in the loss")
    parser.add_argument("--distill-temperature", type=float, default=2.0)
    return parser


def main() -> None:
    parser = build_parser()
    args = parser.parse_args()
    if args.encoder_only and not args.init:
        parser.error("--encoder-only continues a model: give --init")
    torch.set_num_threads(args.threads)

    tokenizer = load_tokenizer()
    train_split, dev, tests = load_splits(tokenizer, args)
    adapter = {"targets": list(TARGETS), "rank": args.rank, "alpha": args.alpha, "dropout": args.lora_dropout}
    net = adapted_net(adapter, args.hidden)
    first_stage: dict[str, Any] | None = None
    if args.init:  # a second stage: start from an earlier run's delta (same adapter settings)
        start = Checkpoint.load(args.init)
        if start.arch.get("adapter") != adapter or int(start.arch["hidden"]) != args.hidden:
            raise SystemExit(f"--init {args.init} was trained with {start.arch}, not {adapter}")
        load_delta(net, start.state_dict)
        # The chain of earlier stages stays readable in the json: each stage records the one it started from.
        first_stage = {
            k: start.info.get(k) for k in ("version", "train", "hyperparameters", "first_stage", "head_refit")
        }
        if first_stage["head_refit"]:  # its settings only; its numbers are in the card
            first_stage["head_refit"] = {k: first_stage["head_refit"][k] for k in ("train", "config")}
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    net.to(device)
    trainable = sum(p.numel() for p in net.parameters() if p.requires_grad)
    total = sum(p.numel() for p in net.parameters())
    print(f"trainable parameters: {trainable:,} of {total:,}, on {device}", flush=True)
    teacher = None
    if args.teacher:
        teacher = Teacher.load(args.teacher, train_split.keys, args.distill_weight, args.distill_temperature)
    best = train(net, tokenizer, train_split, dev, args, teacher)

    selection = {k: round(v, 4) for k, v in best.items() if k not in ("delta",)}
    selection["device"] = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    if args.encoder_only:  # training.recipes.text.head refits head and temperature and reports every split
        temperature, results = float(start.temperature), {"selection": selection}
    else:
        temperature, results = report(net, tokenizer, dev, tests, args)
        results["selection"] = selection

    info = {
        "version": time.strftime("%Y%m%d"),
        "encoder": ENCODER_NAME,
        "train": f"MELD train (x{args.meld_repeat}, with context) + GoEmotions-Ekman train (single-label, "
        f"{args.goemotions_share:.0%})"
        + (f" + DailyDialog-validation train part (x{args.dailydialog_repeat})" if args.dailydialog_repeat else ""),
        "hyperparameters": {k: v for k, v in vars(args).items() if k not in ("out", "init", "teacher")},
        "teacher": Teacher.describe(args.teacher) if args.teacher else None,
        "first_stage": first_stage,
        "trainable_parameters": trainable,
        "results": results,
    }
    arch = {"hidden": args.hidden, "adapter": adapter, "context_turns": args.context_turns}
    summary = {"temperature": round(temperature, 4), **{k: v for k, v in results.items()}}
    if not args.no_export:
        delta = {k: v.to("cpu", torch.float32) for k, v in trained_delta(net).items()}
        Checkpoint(delta, LABELS, temperature, arch, info).save(args.out)
        summary["saved"] = str(args.out)
    print(json.dumps(summary, default=str))


if __name__ == "__main__":
    main()
