"""Per-turn cost of the voice emotion model against a wav2vec2-base sequence classifier.

    python -m bench.voice [--threads 1] [--repeats 10]

For 1 s, 4 s and 10 s turns, in one process and on the same threads:
- `voice (encoder + head)`: `VoiceEmotionModel.predict(pcm)`, Whisper tiny.en
  encoder over the turn only, then the head;
- `voice (head only)`: `predict_from_encoder(states)`, when the telephony
  connector reuses the encoder pass of its ASR (a first turn: no baseline);
- `head + baseline`: the same, read against the caller's `CallerBaseline`
  (the connector's case from the second turn on);
- `encoder, 30 s window`: the encoder as faster-whisper's ASR runs it (input
  padded to 30 s), the cost an ASR pass pays anyway;
- `wav2vec2-base classifier`: `Wav2Vec2ForSequenceClassification` built from
  `Wav2Vec2Config(num_labels=7)` (the standard base architecture; random
  weights, which do not change its cost).
Prints a markdown table (mean ms per turn and the wav2vec2 / ours ratios) and a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from typing import Callable

import numpy as np
import torch

from models.voice import CallerBaseline, VoiceEmotionModel, pooled_stats

DURATIONS = (1.0, 4.0, 10.0)


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Mean wall time in ms over `repeats` calls, after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.fmean(times)


def wav2vec2_classifier() -> torch.nn.Module:
    from transformers import Wav2Vec2Config, Wav2Vec2ForSequenceClassification

    net: torch.nn.Module = Wav2Vec2ForSequenceClassification(Wav2Vec2Config(num_labels=7)).eval()
    return net


def machine() -> str:
    cpu = platform.processor() or "cpu"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {platform.system()} {platform.release()}, torch {torch.__version__}"


def bench_turn(model: VoiceEmotionModel, w2v: torch.nn.Module, seconds: float, repeats: int) -> dict[str, float]:
    rng = np.random.default_rng(0)
    pcm = (0.1 * rng.standard_normal(int(seconds * 16_000))).astype(np.float32)
    states = model.encode(pcm)
    baseline = CallerBaseline()
    baseline.add(pooled_stats(states))  # one earlier turn, joined whatever it reads (noise may not read calm)
    wave = torch.from_numpy(pcm)[None]

    @torch.inference_mode()
    def run_w2v() -> object:
        return w2v(wave).logits

    row = {
        "seconds": seconds,
        "voice_ms": timed(lambda: model.predict(pcm), repeats),
        "head_only_ms": timed(lambda: model.predict_from_encoder(states), repeats),
        "head_baseline_ms": timed(lambda: model.predict_from_encoder(states, baseline=baseline, learn=False), repeats),
        "encoder_30s_window_ms": timed(lambda: model.encoder.encode(pcm, full_window=True), max(3, repeats // 3)),
        "wav2vec2_ms": timed(run_w2v, repeats),
    }
    row["ratio_w2v_over_voice"] = row["wav2vec2_ms"] / row["voice_ms"]
    row["ratio_w2v_over_head_only"] = row["wav2vec2_ms"] / row["head_only_ms"]
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1, help="torch and CTranslate2 threads (per call)")
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args(argv)
    model = VoiceEmotionModel.load(threads=args.threads)
    torch.set_num_threads(args.threads)
    w2v = wav2vec2_classifier()
    rows = [bench_turn(model, w2v, s, args.repeats) for s in DURATIONS]
    print(f"machine: {machine()}; threads: {args.threads}; repeats: {args.repeats}\n")
    print(
        "| turn | voice: encoder + head | voice: head only (reused encoder) | head + caller baseline "
        "| encoder, 30 s window (ASR pass) | wav2vec2-base classifier | wav2vec2 / voice | wav2vec2 / head only |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['seconds']:.0f} s | {r['voice_ms']:.1f} ms | {r['head_only_ms']:.2f} ms "
            f"| {r['head_baseline_ms']:.2f} ms "
            f"| {r['encoder_30s_window_ms']:.0f} ms | {r['wav2vec2_ms']:.0f} ms "
            f"| {r['ratio_w2v_over_voice']:.1f}x | {r['ratio_w2v_over_head_only']:.0f}x |"
        )
    print(json.dumps({"machine": machine(), "threads": args.threads, "rows": rows}))


if __name__ == "__main__":
    main()
