"""Per-turn cost of the evidence fusion against the hand-set attention it replaces.

    python -m bench.fusion [--turns 20000] [--weights models/weights/fusion.json]

Both fuse the same pre-built `EmotionEstimate`s (text + voice, text + voice +
face, text only), one turn per call, in one process: `fuse(estimates) ->
TurnEmotion`, exactly what `EmotionRecognizer` calls per message. The evidence
fusion's cost includes each modality's contribution (a Shapley share: every
coalition of the present modalities is fused, 3 for two modalities, 7 for
three). Prints a markdown table (mean and p99 microseconds per turn, and the
fitted / hand-set ratio) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.voice import machine
from models.emotion import LABELS, EmotionEstimate
from models.fusion import AttentionFusion, EvidenceFusion, Fuser

SUBSETS = {"text + voice": ("text", "voice"), "text + voice + face": ("text", "voice", "face"), "text only": ("text",)}


def turns(modalities: tuple[str, ...], n: int, seed: int) -> list[list[EmotionEstimate]]:
    rng = np.random.default_rng(seed)
    return [
        [EmotionEstimate.from_probs(m, rng.dirichlet(np.ones(len(LABELS)) * 0.5)) for m in modalities] for _ in range(n)
    ]


def per_turn_us(fusion: Fuser, batch: list[list[EmotionEstimate]]) -> tuple[float, float]:
    """Mean and p99 microseconds of one `fuse` call, after a warm-up pass."""
    for estimates in batch[:200]:
        fusion.fuse(estimates)
    times = []
    for estimates in batch:
        start = time.perf_counter()
        fusion.fuse(estimates)
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.fmean(times), float(np.percentile(times, 99))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--turns", type=int, default=20_000)
    parser.add_argument("--weights", type=Path, default=None)
    args = parser.parse_args(argv)
    trained, hand_set = EvidenceFusion.load(args.weights), AttentionFusion()
    rows: list[dict[str, Any]] = []
    for name, modalities in SUBSETS.items():
        batch = turns(modalities, args.turns, seed=len(rows))
        t_mean, t_p99 = per_turn_us(trained, batch)
        h_mean, h_p99 = per_turn_us(hand_set, batch)
        rows.append(
            {
                "turn": name,
                "trained_us": t_mean,
                "trained_p99_us": t_p99,
                "hand_set_us": h_mean,
                "hand_set_p99_us": h_p99,
            }
        )
    print(f"machine: {machine()}; turns per case: {args.turns}\n")
    print("| turn | evidence fusion | p99 | hand-set fusion | p99 | evidence / hand-set |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['turn']} | {r['trained_us']:.0f} us | {r['trained_p99_us']:.0f} us | {r['hand_set_us']:.0f} us "
            f"| {r['hand_set_p99_us']:.0f} us | {r['trained_us'] / r['hand_set_us']:.2f}x |"
        )
    print(json.dumps({"machine": machine(), "turns": args.turns, "rows": rows}))


if __name__ == "__main__":
    main()
