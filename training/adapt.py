"""Adapt the text model to one deployment from its supervisors' corrections (training side; production never
imports this).

    python -m plugin.corrections export corrections.jsonl          # from the deployment's Redis
    python -m models.adapt corrections.jsonl --out /srv/toneline/adapted [--force]

What corrections can teach: each keeps the turn's words and the right label (`plugin.corrections`, only where
the deployment retains them), not the turns before it, so the text model's **head** (the small MLP over the
sentence embedding) is refit; the encoder (MiniLM and its LoRA delta) stays as shipped.

1. The corrections are split **by customer** (a seeded hash of the customer id): a customer's turns are all
   in the training part or all held out, so the held-out numbers are about customers the refit never saw.
2. The parent's encoder embeds the corrected turns (message alone) and the standard sets (read as production
   reads them, with their dialogue context); the embeddings are cached by the parent's hash.
3. The head is refit from the parent's: cross-entropy on the training corrections, plus the parent's own
   predictions on a replay set (MELD dev, GoEmotions dev: selection sets, never test) kept by a KL term, plus
   an L2 pull to the parent's weights. The calibration temperature is the parent's.
4. Before/after: the error rate on the held-out corrections, and macro-F1 on the standard evaluation sets
   (MELD test with context, GoEmotions test, the DailyDialog held-out part), each read by both heads.
5. It refuses to write weights that lower any standard set's macro-F1 by more than `--max-drop` (2 points)
   unless `--force`; otherwise it writes `DIR/text.pt` (the parent checkpoint with the new head) and
   `DIR/manifest.json` (data counts, numbers, parent weights and their hash). `adaptation.weights_dir` in
   toneline.yml serves it; setting it back to "" is the rollback.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from models.checkpoint import Checkpoint
from models.emotion import LABELS
from training.metrics import evaluate

MANIFEST = "manifest.json"
WEIGHTS = "text.pt"
HEAD_PREFIX = "head."
CACHE = Path(os.environ.get("TONELINE_CACHE", Path.home() / ".cache" / "toneline")) / "adapt"
LABEL_INDEX = {label: i for i, label in enumerate(LABELS)}


class AdaptError(ValueError):
    """The corrections cannot adapt anything (too few, unreadable); the message says why."""


@dataclass(frozen=True)
class Correction:
    """One supervisor's label for one customer's words."""

    customer_id: str
    text: str
    label: str


@dataclass(frozen=True)
class CustomerSplit:
    train: list[Correction]
    held_out: list[Correction]


@dataclass
class Options:
    """How the head is refit (defaults chosen on simulated deployments, `tests/models/test_adapt.py`)."""

    held_out_share: float = 0.25
    seed: int = 35
    steps: int = 300
    lr: float = 3e-3
    replay_weight: float = 5.0
    anchor_weight: float = 1e-2
    max_drop: float = 0.02
    force: bool = False


@dataclass
class AdaptOutcome:
    """What an adaptation run measured and did."""

    counts: dict[str, int]
    held_out: dict[str, float]
    standard: dict[str, dict[str, float]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    written: Path | None = None


# -- corrections ---------------------------------------------------------------------
def read_corrections(path: Path) -> tuple[list[Correction], int]:
    """The usable corrections of a JSON-lines file and how many lines were skipped (unreadable, no words)."""
    rows, skipped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
            row = Correction(str(item["customer_id"]), str(item["text"]).strip(), str(item["label"]))
        except (ValueError, KeyError, TypeError):
            skipped += 1
            continue
        if row.text and row.label in LABEL_INDEX:
            rows.append(row)
        else:
            skipped += 1
    return rows, skipped


def split_by_customer(rows: Sequence[Correction], share: float, seed: int) -> CustomerSplit:
    """Whole customers to the held-out part, by a seeded hash of their id (stable as corrections grow)."""

    def held(customer: str) -> bool:
        digest = hashlib.sha256(f"{seed}:{customer}".encode()).digest()
        return int.from_bytes(digest[:8], "big") / 2**64 < share

    return CustomerSplit([r for r in rows if not held(r.customer_id)], [r for r in rows if held(r.customer_id)])


# -- the head ------------------------------------------------------------------------
def head_of(checkpoint: Checkpoint) -> nn.Module:
    """The checkpoint's emotion head as a module (the net's `head.*` weights)."""
    from models.text import EmotionHead

    head = EmotionHead(hidden=int(checkpoint.arch["hidden"]))
    state = {k[len(HEAD_PREFIX) :]: v for k, v in checkpoint.state_dict.items() if k.startswith(HEAD_PREFIX)}
    if not state:  # the foundation's frozen-encoder head: the state dict is the head alone
        state = checkpoint.state_dict
    head.load_state_dict(state)
    return head.eval()


def predict(head: nn.Module, embeddings: NDArray[np.float32]) -> NDArray[np.int64]:
    with torch.inference_mode():
        logits = head(torch.from_numpy(embeddings))
    return np.asarray(logits.argmax(dim=1).numpy(), dtype=np.int64)


def refit(
    parent: nn.Module, train: NDArray[np.float32], labels: NDArray[np.int64], replay: NDArray[np.float32], o: Options
) -> nn.Module:
    """The parent head refit on the corrections, held near the parent on the replay set and in weight space."""
    torch.manual_seed(o.seed)
    student = head_copy(parent)
    anchor = [p.detach().clone() for p in parent.parameters()]
    x, y, r = torch.from_numpy(train), torch.from_numpy(labels), torch.from_numpy(replay)
    with torch.no_grad():
        teacher = torch.log_softmax(parent(r), dim=1)
    optimiser = torch.optim.Adam(student.parameters(), lr=o.lr)
    for _ in range(o.steps):
        optimiser.zero_grad()
        loss = nn.functional.cross_entropy(student(x), y)
        kept = nn.functional.kl_div(
            torch.log_softmax(student(r), dim=1), teacher, log_target=True, reduction="batchmean"
        )
        pull = torch.stack([((p - a) ** 2).sum() for p, a in zip(student.parameters(), anchor)]).sum()
        total: torch.Tensor = loss + o.replay_weight * kept + o.anchor_weight * pull
        total.backward()  # type: ignore[no-untyped-call]
        optimiser.step()
    return student.eval()


def head_copy(parent: nn.Module) -> nn.Module:
    import copy

    student = copy.deepcopy(parent)
    student.train(False)  # dropout off: the embeddings are fixed, the noise would only slow the fit
    for p in student.parameters():
        p.requires_grad_(True)
    return student


# -- embeddings ----------------------------------------------------------------------
Embedder = Callable[[Sequence[str], Sequence[Sequence[str]]], NDArray[np.float32]]


def embedder(checkpoint: Checkpoint) -> tuple[Embedder, int]:
    """The parent's sentence embedding (the head's input), read as `TextEmotionModel` reads a turn."""
    from models.text import TextEmotionModel, load_tokenizer, net_from_checkpoint

    net = net_from_checkpoint(checkpoint)
    net.head = nn.Identity()  # type: ignore[assignment]
    net.sentiment = None  # the sentiment branch (issue 31) is not refit: its logits are no part of the embedding
    model = TextEmotionModel(
        net, load_tokenizer(), checkpoint.temperature, "adapt", int(checkpoint.arch.get("context_turns", 0))
    )

    def embed(texts: Sequence[str], contexts: Sequence[Sequence[str]]) -> NDArray[np.float32]:
        chunks = [np.zeros((0, 384), np.float32)]
        for start in range(0, len(texts), 64):
            batch = model.preprocess(texts[start : start + 64], contexts[start : start + 64])
            chunks.append(np.asarray(model.forward(batch), dtype=np.float32))
        return np.concatenate(chunks)

    return embed, model.context_turns


def cached(key: str, compute: Callable[[], NDArray[np.float32]]) -> NDArray[np.float32]:
    path = CACHE / f"{key}.npy"
    if path.exists():
        return np.asarray(np.load(path), dtype=np.float32)
    values = compute()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, values)
    return values


def standard_sets(context_turns: int) -> dict[str, tuple[list[str], list[list[str]], list[str]]]:
    """The standard evaluation sets as production reads them: texts, contexts, gold labels."""
    from training import data
    from training.recipes.text.head import dailydialog_split

    sets = {"meld_test": data.meld("test"), "goemotions_test": data.goemotions("test")}
    sets["dailydialog_heldout"] = dailydialog_split()["test"]
    out = {}
    for name, samples in sets.items():
        out[name] = ([s.text for s in samples], data.contexts(samples, context_turns), [s.label for s in samples])
    return out


REPLAY = "meld_dev+goemotions_dev+dailydialog_selection"


def replay_texts(context_turns: int) -> tuple[list[str], list[list[str]]]:
    """Selection sets (never test), with their context: what the refit head must keep reading as the parent does."""
    from training import data
    from training.recipes.text.head import dailydialog_split

    samples = data.meld("dev") + data.goemotions("dev") + dailydialog_split()["selection"]
    return [s.text for s in samples], data.contexts(samples, context_turns)


# -- the run -------------------------------------------------------------------------
def error_rate(head: nn.Module, embeddings: NDArray[np.float32], gold: Sequence[str]) -> float:
    if not len(gold):
        return math.nan
    predicted = predict(head, embeddings)
    return float(np.mean([LABELS[int(p)] != g for p, g in zip(predicted, gold)]))


def adapt(corrections: Path, parent_path: Path, out: Path | None, o: Options, standard: bool = True) -> AdaptOutcome:
    """Refit, measure, and write (unless refused); `standard=False` skips the standard sets (and so never writes)."""
    rows, skipped = read_corrections(corrections)
    split = split_by_customer(rows, o.held_out_share, o.seed)
    if len(split.train) < 20 or not split.held_out:
        raise AdaptError(f"{len(split.train)} training and {len(split.held_out)} held-out corrections: need 20 and 1")
    checkpoint = Checkpoint.load(parent_path)
    parent_hash = hashlib.sha256(parent_path.read_bytes()).hexdigest()[:16]
    embed, turns = embedder(checkpoint)
    parent = head_of(checkpoint)
    train_x = embed([r.text for r in split.train], [()] * len(split.train))
    held_x = embed([r.text for r in split.held_out], [()] * len(split.held_out))
    texts, contexts = replay_texts(turns) if standard else ([r.text for r in split.train], [()] * len(split.train))
    replay = cached(f"{parent_hash}-{REPLAY}", lambda: embed(texts, contexts)) if standard else train_x
    labels = np.array([LABEL_INDEX[r.label] for r in split.train], dtype=np.int64)
    student = refit(parent, train_x, labels, replay, o)
    held_gold = [r.label for r in split.held_out]
    outcome = AdaptOutcome(
        counts=_counts(rows, skipped, split),
        held_out={"before": error_rate(parent, held_x, held_gold), "after": error_rate(student, held_x, held_gold)},
    )
    if not standard:
        return outcome
    outcome.standard = compare_standard(parent, student, embed, turns, parent_hash)
    outcome.refused = [name for name, s in outcome.standard.items() if s["before"] - s["after"] > o.max_drop]
    if out is not None and (o.force or not outcome.refused):
        outcome.written = write(out, checkpoint, student, parent_path, parent_hash, outcome, o)
    return outcome


def compare_standard(
    parent: nn.Module, student: nn.Module, embed: Embedder, turns: int, parent_hash: str
) -> dict[str, dict[str, float]]:
    scores = {}
    for name, (texts, contexts, gold) in standard_sets(turns).items():
        x = cached(f"{parent_hash}-{name}", lambda t=texts, c=contexts: embed(t, c))  # type: ignore[misc]
        before = evaluate(gold, [LABELS[int(i)] for i in predict(parent, x)]).macro_f1
        after = evaluate(gold, [LABELS[int(i)] for i in predict(student, x)]).macro_f1
        scores[name] = {"n": len(gold), "before": round(before, 4), "after": round(after, 4)}
    return scores


def _counts(rows: Sequence[Correction], skipped: int, split: CustomerSplit) -> dict[str, int]:
    return {
        "corrections": len(rows),
        "skipped": skipped,
        "customers": len({r.customer_id for r in rows}),
        "train": len(split.train),
        "held_out": len(split.held_out),
        "held_out_customers": len({r.customer_id for r in split.held_out}),
    }


def write(
    out: Path,
    checkpoint: Checkpoint,
    head: nn.Module,
    parent: Path,
    parent_hash: str,
    outcome: AdaptOutcome,
    o: Options,
) -> Path:
    """The deployment weights directory: the parent checkpoint with the refit head, and its manifest.

    Everything else of the parent is kept as it was: its state dict (the encoder's delta and any `sentiment.*`
    branch weights) and its arch (`arch["sentiment"]` included), so an adapted model reads sentiment as its
    parent did."""
    out.mkdir(parents=True, exist_ok=True)
    state = dict(checkpoint.state_dict)
    prefix = HEAD_PREFIX if any(k.startswith(HEAD_PREFIX) for k in state) else ""
    for name, value in head.state_dict().items():
        state[prefix + name] = value.detach().clone()
    version = f"{checkpoint.info.get('version', 'dev')}+adapted.{time.strftime('%Y%m%d%H%M%S', time.gmtime())}"
    info = {**checkpoint.info, "version": version, "adapted_from": parent_hash}
    Checkpoint(state, checkpoint.labels, checkpoint.temperature, checkpoint.arch, info).save(out / WEIGHTS)
    manifest = {
        "kind": "toneline-adapted-weights",
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "text": WEIGHTS,
        "version": version,
        "parent": {"path": str(parent), "sha256_16": parent_hash},
        "data": outcome.counts,
        "held_out_error_rate": outcome.held_out,
        "standard_macro_f1": outcome.standard,
        "refused_by": outcome.refused,
        "forced": bool(o.force and outcome.refused),
        "options": {k: v for k, v in vars(o).items() if k != "force"},
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return out / WEIGHTS


def main(argv: list[str] | None = None) -> int:
    from models.text import DEFAULT_MODEL

    parser = argparse.ArgumentParser(prog="python -m models.adapt", description=__doc__.split("\n\n")[0])
    parser.add_argument("corrections", type=Path, help="JSON lines from `python -m plugin.corrections export`")
    parser.add_argument("--out", type=Path, required=True, help="the deployment weights directory to write")
    parser.add_argument("--parent", type=Path, default=DEFAULT_MODEL, help="the text weights to adapt")
    parser.add_argument("--force", action="store_true", help="write even if a standard set drops too far")
    parser.add_argument("--max-drop", type=float, default=Options.max_drop)
    args = parser.parse_args(argv)
    try:
        outcome = adapt(args.corrections, args.parent, args.out, Options(max_drop=args.max_drop, force=args.force))
    except AdaptError as exc:
        print(f"nothing adapted: {exc}")
        return 2
    print(report(outcome))
    return 0 if outcome.written else 1


def report(outcome: AdaptOutcome) -> str:
    lines = [f"corrections: {json.dumps(outcome.counts)}"]
    held = outcome.held_out
    lines.append(f"held-out customers' error rate: before {held['before']:.3f}, after {held['after']:.3f}")
    for name, s in outcome.standard.items():
        lines.append(f"{name} (n={s['n']}) macro-F1: before {s['before']:.4f}, after {s['after']:.4f}")
    if outcome.refused:
        lines.append(
            f"refused: macro-F1 fell more than allowed on {', '.join(outcome.refused)} (--force writes anyway)"
        )
    lines.append(f"written: {outcome.written}" if outcome.written else "nothing written")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
