"""Per-message cost of Toneline's NLU component against Rasa's pipeline without it.

    python -m bench.nlu_component [--messages 300] [--threads N]

Trains (once, cached in ~/.cache/toneline/bench-models) two NLU-only models of
the demo bot: its pipeline as shipped, and the same pipeline without
`plugin.nlu.EmotionRecognizer`. Then parses the same customer messages with
both, in one process, and prints mean/p50/p95 latency and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from scripts.stack import CACHE, RASA_DIR, base_env, model_fingerprint

MESSAGES = [
    "hi",
    "I have a question about my bill",
    "This is the third time I'm calling and nobody has fixed my internet!",
    "Why was I charged twice this month? I want a refund for the wrong charge right now.",
    "thanks, that's great",
    "I want to cancel my subscription, I'm switching to another provider because your service has been "
    "terrible for months and every time I call I have to explain everything again from the beginning.",
    "can I talk to a person",
    "my wifi keeps dropping every evening",
]


def train(config: dict[str, Any], name: str) -> Path:
    out = CACHE / "bench-models"
    model = out / f"{name}.tar.gz"
    if model.exists():
        return model
    out.mkdir(parents=True, exist_ok=True)
    config_file = out / f"{name}.yml"
    config_file.write_text(yaml.safe_dump(config))
    cmd = [
        sys.executable,
        "-m",
        "rasa",
        "train",
        "nlu",
        "--config",
        str(config_file),
        "--nlu",
        "data/nlu.yml",
        "--out",
        str(out),
        "--fixed-model-name",
        name,
    ]
    subprocess.run(cmd, cwd=RASA_DIR, env=base_env(), check=True, capture_output=True)
    return model


def time_parses(model: Path, messages: list[str]) -> list[float]:
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))

    async def run() -> list[float]:
        for text in MESSAGES:  # warm-up: lazy initialisation, caches
            await agent.parse_message(text)
        out = []
        for text in messages:
            start = time.perf_counter()
            await agent.parse_message(text)
            out.append(time.perf_counter() - start)
        return out

    return asyncio.run(run())


def stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_ms": 1000 * statistics.fmean(ordered),
        "p50_ms": 1000 * ordered[len(ordered) // 2],
        "p95_ms": 1000 * ordered[int(0.95 * (len(ordered) - 1))],
    }


def quiet_logs() -> None:
    """Rasa logs every parse at debug level; that I/O would be measured too."""
    import logging

    import structlog

    logging.basicConfig(level=logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    quiet_logs()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    config = yaml.safe_load((RASA_DIR / "config.yml").read_text())
    config.pop("policies", None)
    tag = model_fingerprint()
    with_toneline = train(config, f"nlu-toneline-{tag}")
    config["pipeline"] = [c for c in config["pipeline"] if c["name"] != "plugin.nlu.EmotionRecognizer"]
    baseline = train(config, f"nlu-baseline-{tag}")
    messages = [MESSAGES[i % len(MESSAGES)] for i in range(args.messages)]
    base, tone = stats(time_parses(baseline, messages)), stats(time_parses(with_toneline, messages))
    result = {
        "machine": f"{platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores",
        "messages": args.messages,
        "rasa_pipeline_without_toneline": {k: round(v, 2) for k, v in base.items()},
        "rasa_pipeline_with_toneline": {k: round(v, 2) for k, v in tone.items()},
        "ratio_mean": round(tone["mean_ms"] / base["mean_ms"], 2),
        "ratio_p95": round(tone["p95_ms"] / base["p95_ms"], 2),
        "toneline_added_mean_ms": round(tone["mean_ms"] - base["mean_ms"], 2),
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
